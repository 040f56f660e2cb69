"""Pure rendering for the chat UI: answers, course finds, learning paths and progress as markdown + element specs.

Nothing here imports Chainlit, so every function is unit-testable. `app.py` turns SourceSpec into cl.Text /
cl.Pdf elements and ActionSpec into cl.Action buttons.

Citations: each citation becomes a side-panel Text element named "[n] Course › Module › Section (p. N)". The
Sources list repeats that exact name, which Chainlit turns into a link that opens the passage. PDF citations
also get a Pdf element (named "file.pdf, p. N") opening the module at the cited page. Caption citations carry
"(at mm:ss)"; when the media file sits beside the captions in the library they also get a Video element
(named "file.mp4 at mm:ss") that opens at that time; otherwise the timestamp alone tells where to look.

Hostile text: course text, titles, file names, learners' goals and model output all end up in Markdown. Course
and learner text goes through `escape_md` (every Markdown character escaped, URLs not auto-linked); element
names through `plain_name` (no brackets or markup, so Chainlit's name-to-link matching holds); answer text,
which carries the model's formatting, through `neutralise` (images and links become plain text). The page's CSP
(security.py) blocks remote images as a second line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from assistant.answering.answer import NO_ANSWER_TEXT
from assistant.core.errors import CoursePilotError
from assistant.core.types import (
    Answer,
    ChatTurn,
    Citation,
    Course,
    CourseSuggestion,
    Location,
    Playlist,
    format_timestamp,
)

if TYPE_CHECKING:  # heavy imports (index, models) stay out of this module
    from assistant.apps.chat import ProgressView
    from assistant.pilot import FindResult

STEP_DONE_ACTION = "cp_step_done"
SAVE_PATH_ACTION = "cp_save_path"
HISTORY_TURNS = 20

GENERIC_ERROR = (
    "Sorry, something went wrong on my side and I couldn't finish that. Please try again in a moment; "
    "if it keeps happening, let your L&D team know."
)


@dataclass(frozen=True)
class SourceSpec:
    """An element to attach to a message: a cited passage (text) or the cited PDF page (pdf)."""

    kind: Literal["text", "pdf", "video"]
    name: str
    content: str = ""
    path: Path | None = None
    page: int | None = None
    course_id: str = ""
    module: str = ""
    start: float | None = None  # video: seconds to open at


@dataclass(frozen=True)
class ActionSpec:
    """A button under a message."""

    name: str
    label: str
    payload: dict[str, Any] = field(default_factory=dict)
    tooltip: str = ""
    icon: str | None = None


@dataclass
class Rendered:
    """Markdown for the message body and the elements it refers to."""

    markdown: str
    sources: list[SourceSpec] = field(default_factory=list)


# -- hostile text into Markdown ---------------------------------------------------------------------------
_MD_CHAR = re.compile(r"([\\`*_{}\[\]()#!|~<>])")
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))", re.MULTILINE)  # a list, rule or heading of its own
_NAME_DROP = re.compile(r"[\\`*_\[\]<>|~#]")
_IMAGE = re.compile(r"!\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\s?(?:\([^)\n]*\)|\[[^\]\n]*\])")
_LINK = re.compile(r"(?<![\\!])\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\s?\(([^)\n]*)\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*\S.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]{1,20}:[^>\s]*)>", re.IGNORECASE)
_EMAIL_AUTOLINK = re.compile(r"<([^>\s@]+@[^>\s]+)>")


_BARE_URL = re.compile(
    r"(?i)(?:\b[a-z][a-z0-9+.-]{1,20}://|\bwww\.)[^\s<>`]*[^\s<>`.,;:!?)\]'\"]"
    r"|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
)


def _code(url: str) -> str:
    """A URL or address as inline code: shown, never auto-linked (GFM links bare URLs even when escaped)."""
    return f"`{url}`"


def _unlink(text: str) -> str:
    """No scheme://, www. or e-mail address is turned into a link by GFM's autolinking."""
    return _BARE_URL.sub(lambda m: _code(m.group(0)), text)


def escape_md(text: str) -> str:
    """Course or learner text shown as exactly that text: no markup, image, link or list of its own."""
    parts: list[str] = []
    last = 0
    text = str(text)
    for match in _BARE_URL.finditer(text):
        parts.append(_MD_CHAR.sub(r"\\\1", text[last : match.start()]))
        parts.append(_code(match.group(0)))
        last = match.end()
    parts.append(_MD_CHAR.sub(r"\\\1", text[last:]))
    return _LINE_START.sub(_escape_line_start, "".join(parts))


def _escape_line_start(match: re.Match[str]) -> str:
    lead, mark = match.group(1), match.group(2)
    return f"{lead}{mark}\\" if mark[0].isdigit() else f"{lead}\\{mark}"  # '1\.' / '\-'


def plain_name(text: str) -> str:
    """Text for an element name: Chainlit links the name where it appears, so it must hold no markup."""
    return " ".join(_NAME_DROP.sub("", str(text)).replace("://", ": //").split())


def neutralise(markdown: str) -> str:
    """Answer text (model output, or sentences of course text) with its formatting, but no image and no link.

    Images become '(image not shown: alt)', links their text only, link definitions are dropped, and bare
    URLs stay plain text. Nothing in an answer can make the learner's browser fetch a URL.
    """
    text = _REF_DEF.sub("", markdown)
    for _ in range(3):  # an image inside a link inside ...
        text = _IMAGE.sub(lambda m: f"(image not shown{': ' if m.group(1).strip() else ''}{m.group(1).strip()})", text)
        text = _LINK.sub(lambda m: m.group(1), text)
    text = _AUTOLINK.sub(lambda m: m.group(1), text)
    text = _EMAIL_AUTOLINK.sub(lambda m: m.group(1), text)
    return _unlink(text)


class SafeStream:
    """Streams answer tokens as `neutralise` shows them: an image or link in model output is never rendered,
    not even for the moment between its last token and the final message. A notice heads the message; a reset
    takes back what was streamed; either makes the next token replace the whole content."""

    def __init__(self, msg: Any) -> None:  # a cl.Message
        self.msg = msg
        self.notice = ""
        self.streamed = ""
        self.shown = ""
        self.replace = False

    async def token(self, text: str) -> None:
        self.streamed += text
        safe = neutralise(self.notice + self.streamed)
        if not self.replace and safe.startswith(self.shown):
            if safe != self.shown:
                await self.msg.stream_token(safe[len(self.shown) :])
        else:  # a notice, a reset, or an earlier part changed (a link closed): replace what is shown
            await self.msg.stream_token(safe, is_sequence=True)
            self.replace = False
        self.shown = safe

    def reset(self) -> None:
        self.streamed, self.replace = "", True

    def set_notice(self, text: str) -> None:
        self.notice, self.replace = text, True


# -- answers ----------------------------------------------------------------------------------------------
def source_name(citation: Citation) -> str:
    """The element name shown in the Sources list and as the side panel's title."""
    return f"[{plain_name(citation.key)}] {plain_name(citation.label)}"


def pdf_name(location: Location) -> str:
    return f"{plain_name(Path(location.module).name)}, p. {location.page}"


def short_label(location: Location) -> str:
    """'Module › Section (p. N)' without the course title, escaped for Markdown."""
    parts = [location.module_title]
    if location.section:
        parts.append(location.section[-1])
    text = escape_md(" › ".join(parts))
    if location.timestamp is not None:
        return f"{text} (at {format_timestamp(location.timestamp)})"
    return f"{text} (p. {location.page})" if location.page else text


def passage_markdown(citation: Citation) -> str:
    """The side panel content: the cited passage and exactly where it lives."""
    loc = citation.location
    lines = citation.snippet.strip().splitlines()
    quote = "\n".join(f"> {escape_md(line)}" if line.strip() else ">" for line in lines)
    rows = [
        f"- **Course:** {escape_md(loc.course_title)}",
        f"- **Module:** {escape_md(loc.module_title)} ({escape_md(Path(loc.module).name)})",
    ]
    if loc.section:
        rows.append(f"- **Section:** {' › '.join(escape_md(s) for s in loc.section)}")
    if loc.page:
        rows.append(f"- **Page:** {loc.page}")
    if loc.timestamp is not None:
        rows.append(f"- **At:** {format_timestamp(loc.timestamp)}")
    return f"{quote}\n\n" + "\n".join(rows)


def pdf_path(location: Location, library_dir: Path | None, folders: Mapping[str, str]) -> Path | None:
    """The module's PDF inside its course folder, or None (not a PDF, missing, or outside the folder)."""
    if library_dir is None or not location.module.lower().endswith(".pdf"):
        return None
    course_dir = (Path(library_dir) / folders.get(location.course_id, location.course_id)).resolve()
    candidate = (course_dir / location.module).resolve()
    if not candidate.is_relative_to(course_dir) or not candidate.is_file():
        return None
    return candidate


def media_path(location: Location, library_dir: Path | None, folders: Mapping[str, str]) -> Path | None:
    """The video/audio file beside cited captions, inside its course folder, or None (not captions, media
    missing, or the course is a zip package whose media cannot be served from the archive)."""
    if library_dir is None or location.timestamp is None:
        return None
    from ingest.loaders.captions import CAPTION_SUFFIXES, media_for

    course_dir = (Path(library_dir) / folders.get(location.course_id, location.course_id)).resolve()
    captions = (course_dir / location.module).resolve()
    if not course_dir.is_dir() or not captions.is_relative_to(course_dir) or captions.suffix not in CAPTION_SUFFIXES:
        return None
    media = media_for(captions)
    if media is None or not media.resolve().is_relative_to(course_dir):
        return None
    return media.resolve()


def cited_media(course: Course, media: str, library_dir: Path | None) -> Path | None:
    """The media file `media` (path in the course folder) if it is the companion of one of the course's
    caption modules; the chat serves only such files, so a cited video can play."""
    for module in course.modules:
        location = Location(course_id=course.id, course_title="", module=module.path, module_title="", timestamp=0.0)
        path = media_path(location, library_dir, {course.id: course.folder or course.id})
        if path is not None and path.name == Path(media).name and Path(module.path).parent == Path(media).parent:
            return path
    return None


def video_source(citation: Citation, library_dir: Path | None, folders: Mapping[str, str]) -> SourceSpec | None:
    """A video element opening the cited media at the cited time, when the media file is in the library."""
    loc = citation.location
    path = media_path(loc, library_dir, folders)
    if path is None or loc.timestamp is None:
        return None
    course_dir = (Path(library_dir or ".") / folders.get(loc.course_id, loc.course_id)).resolve()
    return SourceSpec(
        kind="video",
        name=f"{plain_name(path.name)} at {format_timestamp(loc.timestamp)}",
        path=path,
        course_id=loc.course_id,
        module=path.relative_to(course_dir).as_posix(),
        start=loc.timestamp,
    )


_READ_NEXT = re.compile(r"\n*^Read next:.*$", re.MULTILINE)


def render_answer(
    answer: Answer, library_dir: Path | None = None, folders: Mapping[str, str] | None = None
) -> Rendered:
    """The final answer: text with [n] markers, Read next, and the numbered sources."""
    if answer.refused:
        return Rendered(render_refusal(answer))
    folders = folders or {}
    parts: list[str] = []
    if answer.fallback_reason:
        parts.append(f"> ⚠ {answer.fallback_reason}")
    parts.append(neutralise(_READ_NEXT.sub("", answer.text).strip()))
    if answer.read_next is not None:
        parts.append(f"**Read next:** {escape_md(answer.read_next.label())}")
    sources: list[SourceSpec] = []
    lines: list[str] = []
    pdf_names: set[str] = set()
    for citation in answer.citations:
        name = source_name(citation)
        sources.append(
            SourceSpec(
                kind="text",
                name=name,
                content=passage_markdown(citation),
                course_id=citation.location.course_id,
                module=citation.location.module,
            )
        )
        line = f"- {name}"
        path = pdf_path(citation.location, library_dir, folders)
        if path is not None and citation.location.page:
            pname = pdf_name(citation.location)
            if pname not in pdf_names:
                pdf_names.add(pname)
                sources.append(
                    SourceSpec(
                        kind="pdf",
                        name=pname,
                        path=path,
                        page=citation.location.page,
                        course_id=citation.location.course_id,
                        module=citation.location.module,
                    )
                )
            line += f" · PDF: {pname}"
        video = video_source(citation, library_dir, folders)
        if video is not None:
            if video.name not in pdf_names:
                pdf_names.add(video.name)
                sources.append(video)
            line += f" · Video: {video.name}"
        lines.append(line)
    if lines:
        parts.append("**Sources**\n" + "\n".join(lines))
    return Rendered("\n\n".join(p for p in parts if p), sources)


def _suggestion_line(suggestion: CourseSuggestion) -> str:
    where = f" — {short_label(suggestion.sections[0])}" if suggestion.sections else ""
    return f"- **{escape_md(suggestion.title)}** ({escape_md(suggestion.level)}){where}"


def render_refusal(answer: Answer) -> str:
    """A plain 'not in the library' plus the closest courses."""
    if not answer.suggestions:
        return neutralise(answer.text)
    lines = [NO_ANSWER_TEXT, "", "**Closest material in the library:**"]
    lines += [_suggestion_line(s) for s in answer.suggestions[:3]]
    return "\n".join(lines)


# -- finding courses --------------------------------------------------------------------------------------
def render_find(result: FindResult) -> str:
    """FindResult: the courses that teach a skill and where."""
    if not result.courses:
        return (
            "I couldn't find a course in the library that teaches this yet. "
            "Try other words for the skill, or ask your L&D team to add material on it."
        )
    lines = ["**Courses that teach this:**", ""]
    for number, course in enumerate(result.courses, start=1):
        lines.append(f"{number}. **{escape_md(course.title)}** · {escape_md(course.level)}")
        seen: list[str] = []
        for loc in course.sections:
            label = short_label(loc)
            if label not in seen:
                seen.append(label)
        if seen:
            lines.append(f"   Taught in: {'; '.join(seen[:3])}")
    lines += ["", "_Ask me a question about any of these, or ask for a learning path._"]
    return "\n".join(lines)


# -- learning paths ---------------------------------------------------------------------------------------
def playlist_counts(playlist: Playlist) -> tuple[int, int]:
    done = sum(1 for item in playlist.items if item.status == "done")
    return done, len(playlist.items)


def progress_line(playlist: Playlist) -> str:
    done, total = playlist_counts(playlist)
    return f"{done} of {total} done"


def render_playlist(playlist: Playlist, saved: bool = False) -> str:
    """An ordered checklist with minutes, reason and source per step, and an 'x of y done' line."""
    if not playlist.covered or not playlist.items:
        text = neutralise(playlist.message or "I couldn't build a learning path for this from the library.")
        if playlist.suggestions:
            text += "\n\n**Closest material in the library:**\n" + "\n".join(
                _suggestion_line(s) for s in playlist.suggestions[:3]
            )
        return text
    goal = escape_md(playlist.goal.strip().rstrip("?.!"))
    done, total = playlist_counts(playlist)
    budget = f" (budget {playlist.budget_minutes} min)" if playlist.budget_minutes else ""
    lines = [f"**Learning path:** {goal}", ""]
    lines.append(f"**{done} of {total} done** · {total} steps · {playlist.total_minutes} min{budget}")
    if playlist.intro:
        lines += ["", neutralise(playlist.intro.strip())]
    lines.append("")
    for number, item in enumerate(playlist.items, start=1):
        box = "[x]" if item.status == "done" else "[ ]"
        title = f"~~{escape_md(item.title)}~~" if item.status == "done" else f"**{escape_md(item.title)}**"
        rows = [f"{number}. {box} {title} · {item.minutes} min"]
        why = item.why.strip()
        if item.is_prerequisite and "prerequisite" not in why.lower():
            why = f"Prerequisite. {why}".strip()
        if why:
            rows.append(f"   {escape_md(why)}")
        if item.evidence is not None:
            rows.append(f"   Source: {escape_md(item.evidence.label)}")
        lines.append("  \n".join(rows))  # two spaces: a line break inside the list item
    if playlist.left_out:
        minutes = sum(i.minutes for i in playlist.left_out)
        names = ", ".join(escape_md(i.title) for i in playlist.left_out)
        lines += ["", f"_Left out to fit your time ({minutes} min):_ {names}"]
    if playlist.skipped_done:
        lines += ["", f"_Skipped {len(playlist.skipped_done)} item(s) you have already completed._"]
    lines += [
        "",
        "Saved to your paths ✓ — ask “show my progress” any time."
        if saved
        else "Mark steps done as you go, and save the path to find it again later.",
    ]
    return "\n".join(lines)


def playlist_actions(playlist: Playlist, saved: bool = False) -> list[ActionSpec]:
    """'Mark step N done' for each step still to do, and 'Save this path' until it is saved."""
    if not playlist.covered or not playlist.items:
        return []
    actions = [
        ActionSpec(
            name=STEP_DONE_ACTION,
            label=f"Mark step {number} done",
            payload={"step": number, "item_id": item.item_id},
            tooltip=f"{item.title} ({item.minutes} min)",
            icon="circle-check",
        )
        for number, item in enumerate(playlist.items, start=1)
        if item.status != "done"
    ]
    if not saved:
        actions.append(
            ActionSpec(
                name=SAVE_PATH_ACTION,
                label="Save this path",
                payload={},
                tooltip="Keep this path with your progress",
                icon="bookmark",
            )
        )
    return actions


def mark_done(playlist: Playlist, item_id: str) -> bool:
    """Mark every step with this id done; False if the path has no such step."""
    found = False
    for item in playlist.items:
        if item.item_id == item_id:
            item.status = "done"
            found = True
    return found


def apply_progress(playlist: Playlist, completed: set[str]) -> Playlist:
    """Statuses from the learner's current progress."""
    for item in playlist.items:
        item.status = "done" if item.item_id in completed else "todo"
    return playlist


# -- progress ---------------------------------------------------------------------------------------------
def render_progress(view: ProgressView) -> str:
    """ProgressView: completed count and each saved path with 'x of y done'."""
    lines = ["**Your progress**", ""]
    count = len(view.completed)
    lines.append(
        f"You have completed {count} item{'s' if count != 1 else ''}."
        if count
        else "You haven't completed any items yet."
    )
    if not view.playlists:
        lines += [
            "",
            "You haven't saved a learning path yet. Ask for one, e.g. “Build me a 3-hour path to become a "
            "better coach”, then press **Save this path**.",
        ]
        return "\n".join(lines)
    lines += ["", "**Saved learning paths**", ""]
    for number, saved in enumerate(view.playlists, start=1):
        path = saved.playlist
        goal = escape_md(saved.goal.strip().rstrip("?.!"))
        next_item = next((i for i in path.items if i.status != "done"), None)
        nxt = f" · next: {escape_md(next_item.title)}" if next_item else " · complete"
        lines.append(f"{number}. **{goal}** — {progress_line(path)}{nxt} · saved {saved.created_at:%d %b %Y}")
    return "\n".join(lines)


# -- messages and errors ----------------------------------------------------------------------------------
def render_error(exc: BaseException) -> str:
    """A short message for the learner; never a stack trace."""
    if isinstance(exc, CoursePilotError) and exc.learner_message:
        return exc.learner_message
    if isinstance(exc, CoursePilotError):
        text = f"Sorry, I couldn't do that: {exc.message}"
        if exc.fix:
            text += f" Try this: {exc.fix}"
        return text
    return GENERIC_ERROR


NOT_SAVED = (
    "Heads up: your history is not being saved right now, so this conversation, your progress and saved paths "
    "may be gone next time. I can still answer. Please let your L&D team know."
)


def refused_message(reason: str, length: int, limit: int) -> str:
    """The reply to a message the gate refused ('too_long' or 'rate'); the message itself is not stored."""
    if reason == "too_long":
        return too_long(length, limit)
    return f"You're sending messages faster than I can take them (up to {limit} a minute). Please wait a moment."


def too_long(length: int, limit: int) -> str:
    return (
        f"That message is {length:,} characters long and I can take up to {limit:,}. "
        "Please shorten it to the question itself and ask again."
    )


EMPTY_MESSAGE = (
    "Type a question about the course library, ask which course teaches a skill, or ask for a learning path."
)


# -- history ----------------------------------------------------------------------------------------------
def history_turns(steps: Sequence[Mapping[str, Any]], limit: int = HISTORY_TURNS) -> list[ChatTurn]:
    """Conversation turns from a resumed thread's steps (an answer's plain text when its metadata has it)."""
    turns: list[ChatTurn] = []
    for step in steps:
        kind = step.get("type")
        if kind not in ("user_message", "assistant_message"):
            continue
        text = str(step.get("output") or "")
        meta = step.get("metadata")
        if isinstance(meta, Mapping):
            cp = meta.get("cp")
            if isinstance(cp, Mapping) and isinstance(cp.get("history"), str):
                text = cp["history"]
        if not text.strip():
            continue
        turns.append(ChatTurn(role="user" if kind == "user_message" else "assistant", content=text))
    return turns[-limit:]
