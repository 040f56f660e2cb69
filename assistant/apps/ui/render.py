"""Pure rendering for the chat UI: answers and course finds as markdown + element specs.

Nothing here imports Chainlit, so every function is unit-testable. `app.py` turns SourceSpec into cl.Text /
cl.Pdf elements. Learning paths and progress render in learning_paths.py, the fixed replies and a resumed
thread's history in replies.py, and hostile text is made safe for Markdown in safe_markdown.py.

Citations: each citation becomes a side-panel Text element named "[n] Course › Module › Section (p. N)". The
Sources list repeats that exact name, which Chainlit turns into a link that opens the passage. PDF citations
also get a Pdf element (named "file.pdf, p. N") opening the module at the cited page. Caption citations carry
"(at mm:ss)"; when the media file sits beside the captions in the library they also get a Video element
(named "file.mp4 at mm:ss") that opens at that time; otherwise the timestamp alone tells where to look.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from assistant.answering.answer import NO_ANSWER_TEXT
from assistant.apps.ui.safe_markdown import escape_md, neutralise, plain_name
from assistant.core.types import (
    Answer,
    Citation,
    Course,
    CourseSuggestion,
    Location,
    format_timestamp,
)

if TYPE_CHECKING:  # heavy imports (index, models) stay out of this module
    from assistant.pilot import FindResult


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


@dataclass
class Rendered:
    """Markdown for the message body and the elements it refers to."""

    markdown: str
    sources: list[SourceSpec] = field(default_factory=list)


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


def suggestion_line(suggestion: CourseSuggestion) -> str:
    where = f" — {short_label(suggestion.sections[0])}" if suggestion.sections else ""
    return f"- **{escape_md(suggestion.title)}** ({escape_md(suggestion.level)}){where}"


def render_refusal(answer: Answer) -> str:
    """A plain 'not in the library' plus the closest courses."""
    if not answer.suggestions:
        return neutralise(answer.text)
    lines = [NO_ANSWER_TEXT, "", "**Closest material in the library:**"]
    lines += [suggestion_line(s) for s in answer.suggestions[:3]]
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
