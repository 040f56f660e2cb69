"""Caption loader: WebVTT (.vtt) and SubRip (.srt) files become timestamped passages.

- WebVTT follows the W3C WebVTT syntax: a ``WEBVTT`` header (its text after the signature, if any, is the
  title candidate), then blocks separated by blank lines. ``NOTE``, ``STYLE`` and ``REGION`` blocks are skipped;
  a cue is an optional identifier line, a timing line ``[hh:]mm:ss.ttt --> [hh:]mm:ss.ttt [settings]`` and its
  payload. A voice span ``<v Speaker>`` / ``<v.loud Speaker>`` (its end tag may be left out) gives the cue's
  speaker; other tags (``<c>``, ``<i>``, ``<b>``, ``<u>``, ``<ruby>``, ``<lang>``, inline timestamps) are dropped,
  entities decoded.
- SubRip: blocks of a counter line, ``hh:mm:ss,ttt --> hh:mm:ss,ttt`` and text lines; ``<i>``/``<b>``/``<font>``
  tags are dropped.
- Speakers are not words anybody said: the voice span's name and a label opening a line (``Amara:``,
  ``AMARA:``, ``[Amara]``, after a ``-`` or ``>>`` turn marker) become the cue's speaker and leave the text, and
  so do sound cues (``[music]``, ``(laughs)``, ``♪``, a cue that only says ``Laughs``). A line like ``Note: ...``
  or ``Step 2: ...`` keeps its words (see ``spoken``), as do ``10:30`` and a colon inside a sentence.
- Cues are merged into passages that end at a sentence boundary (once ~``target_chars`` are collected, or when
  the speaker changes after a full sentence); a passage never exceeds ``max_chars`` (then it is cut at a cue).
  Each passage is one Section whose ``start`` is its first cue's start time, in seconds.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.core.errors import LoaderError
from assistant.core.types import LoadedDocument, Section
from ingest.loaders import LoaderLimits, check_text_size, clean_inline, decode_text, prettify_stem, register

# Media a caption file can belong to; they are companions of their captions, not modules of their own.
MEDIA_SUFFIXES = frozenset({".mp4", ".m4v", ".webm", ".ogv", ".mov", ".mp3", ".m4a", ".ogg", ".oga", ".wav"})
CAPTION_SUFFIXES = frozenset({".vtt", ".srt"})

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]*)>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^>]*>|<\d[\d:.]*>")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Sound cues of captions for the deaf and hard of hearing, in brackets, parentheses or alone ('(laughs nervously)',
# '[upbeat music]', WebVTT's own example `<v Neil deGrasse Tyson><i>Laughs</i>`): every word is one of these.
_SOUNDS = _word_set(
    "laugh laughs laughing laughter chuckle chuckles chuckling giggle giggles music applause applauding clapping "
    "claps cheering cheers sigh sighs sighing cough coughs coughing sneezes inaudible indistinct unintelligible "
    "crosstalk silence pause pauses beep beeps ringing rings phone door closes opens slams knocking knocks "
    "footsteps noise gasps groans whispers whispering murmuring mumbles mumbling yawns screams shouting crying "
    "humming hums singing whistling thud bang crash typing chirping wind rain thunder engine traffic bell alarm "
    "buzzer siren horn barking softly quietly loudly nervously playing plays continues fades in out up down upbeat "
    "gentle soft dramatic tense background ambient instrumental theme intro outro lively light distant audience "
    "crowd both everyone and"
)
# Words that open a line of content with a colon ('Note: lift with your legs', 'Key point: ...'): not speakers.
_NOT_SPEAKERS = _word_set(
    "note notes nb ps tip tips hint warning caution danger important remember reminder example examples answer "
    "question step rule key definition summary recap result results goal goals objective outcome agenda action "
    "topic lesson module chapter section part unit source update why how what when where who which yes no so and "
    "but then first second third next finally last today now here there this that these those it fact myth true "
    "false correct wrong problem solution option case scenario exercise activity task quiz review safety also "
    "look listen well okay ok"
)
_NAME = r"[A-Z][A-Za-z'’.\-]*(?:\s+[A-Z][A-Za-z'’.\-]*){0,2}(?:\s+\d{1,2})?"
_LABEL = re.compile(rf"^({_NAME})\s*:(?:\s+|$)")
_BRACKET_LABEL = re.compile(rf"^\[({_NAME})\]\s*")
_TURN = re.compile(r"^(?:[-–—]\s+|>>\s*)")  # '- ' opens a new speaker's line; '-5 degrees' keeps its sign
_BRACKETS = re.compile(r"\[[^\[\]]{0,80}\]")
_PARENS = re.compile(r"\(([^()]{1,60})\)")
_MUSIC = re.compile(r"[♪♫]+")
FIX_CAPTIONS = "export the captions again as WebVTT (.vtt) or SubRip (.srt) from the video tool, then re-add them."


@dataclass
class Cue:
    start: float
    end: float
    text: str
    speaker: str | None = None


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


def _timing(line: str) -> tuple[float, float] | None:
    match = _TIMING.match(line)
    if not match:
        return None
    g = match.groups()
    return _seconds(*g[:4]), _seconds(*g[4:])


def _clean(payload: str) -> str:
    return clean_inline(html.unescape(_TAG.sub("", payload)))


def _is_sound(text: str) -> bool:
    words = re.findall(r"[a-z]+", text.lower())
    return 0 < len(words) <= 6 and all(w in _SOUNDS for w in words)


def _is_speaker(name: str) -> bool:
    return not _is_sound(name) and not any(w.lower().strip(".") in _NOT_SPEAKERS for w in name.split())


def spoken(line: str) -> tuple[str | None, str]:
    """(speaker label or None, the words said) of one caption line, markup already taken off."""
    text = _TURN.sub("", line.strip(), count=1)
    speaker = None
    match = _BRACKET_LABEL.match(text)
    if match and _is_speaker(match.group(1)):
        speaker, text = match.group(1), text[match.end() :]
    text = _MUSIC.sub(" ", _BRACKETS.sub(" ", text))
    text = clean_inline(_PARENS.sub(lambda m: " " if _is_sound(m.group(1)) else m.group(0), text))
    text = _TURN.sub("", text, count=1)  # '[music] - Luis: ...'
    match = _LABEL.match(text)
    if match and _is_speaker(match.group(1)):
        speaker, text = speaker or match.group(1), text[match.end() :]
    return speaker, ("" if _is_sound(text) else text.strip())


def _runs(lines: list[str], voices: bool) -> list[tuple[str | None, str]]:
    """(speaker, text) runs of one cue's lines: a voice span or a label sets the speaker until the next one."""
    runs: list[tuple[str | None, str]] = []
    current: str | None = None

    def add(raw: str) -> None:
        nonlocal current
        label, text = spoken(_clean(raw))
        if label is not None and label != current:
            current = label
        if not text:
            return
        if runs and runs[-1][0] == current:
            runs[-1] = (current, f"{runs[-1][1]} {text}")
        else:
            runs.append((current, text))

    for line in lines:
        pos = 0
        for match in _VOICE.finditer(line) if voices else ():
            add(line[pos : match.start()])
            current = clean_inline(html.unescape(match.group(1))) or None
            pos = match.end()
        add(line[pos:])
    return runs


def _blocks(text: str) -> list[list[str]]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def parse_vtt(text: str, where: str = "captions") -> tuple[str | None, list[Cue]]:
    """(title from the header, cues) of a WebVTT file."""
    text = text.lstrip("\ufeff")
    if not text.startswith("WEBVTT"):
        raise LoaderError(where, "corrupt", "is not a WebVTT file (it must start with 'WEBVTT').", FIX_CAPTIONS)
    blocks = _blocks(text)
    header = blocks[0][0][len("WEBVTT") :].strip(" \t-–—:") if blocks else ""
    cues: list[Cue] = []
    for block in blocks[1:]:
        first = block[0].strip()
        if first.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in first:
            continue
        index = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
        if index is None:
            continue
        timing = _timing(block[index])
        if timing is None:
            continue
        for speaker, run in _runs(block[index + 1 :], voices=True):
            cues.append(Cue(start=timing[0], end=timing[1], text=run, speaker=speaker))
    return (header or None), cues


def parse_srt(text: str, where: str = "captions") -> list[Cue]:
    """Cues of a SubRip file."""
    cues: list[Cue] = []
    timed = False  # a file of sound cues only is still SubRip
    for block in _blocks(text.lstrip("\ufeff")):
        index = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
        if index is None:
            continue
        timing = _timing(block[index])
        if timing is None:
            continue
        for speaker, run in _runs(block[index + 1 :], voices=False):
            cues.append(Cue(start=timing[0], end=timing[1], text=run, speaker=speaker))
        timed = True
    if not timed and text.strip():
        raise LoaderError(where, "corrupt", "has no SubRip cues ('00:00:01,000 --> 00:00:04,000').", FIX_CAPTIONS)
    return cues


def merge_cues(
    cues: list[Cue], target_chars: int = 500, max_chars: int = 1200, max_seconds: float = 90.0
) -> list[tuple[float, str]]:
    """(start seconds, passage text) pairs; passages end at sentence boundaries; a new speaker starts a line.

    A passage also ends (at a sentence boundary) once it spans `max_seconds`, so a citation's timestamp is
    never far from the words it cites; a cue that would push it past `max_chars` always starts a new one.
    """
    passages: list[tuple[float, str]] = []
    parts: list[str] = []
    start = 0.0
    size = 0
    speaker: str | None = None

    def emit() -> None:
        nonlocal parts, size
        if parts:
            passages.append((start, "".join(parts).strip()))
        parts, size = [], 0

    for cue in sorted(cues, key=lambda c: c.start):
        sentence_done = bool(parts) and bool(_SENTENCE_END.search(parts[-1].rstrip()))
        turn = cue.speaker is not None and cue.speaker != speaker
        full = (size >= target_chars and sentence_done) or size + len(cue.text) > max_chars
        new_turn = turn and sentence_done and size >= target_chars // 2
        too_long = sentence_done and cue.start - start > max_seconds
        if parts and (full or new_turn or too_long):
            emit()
        if not parts:
            start = cue.start
        piece = (("\n" if turn else " ") + cue.text) if parts else cue.text
        if cue.speaker is not None:
            speaker = cue.speaker
        parts.append(piece)
        size += len(piece)
    emit()
    return passages


def parse_captions(where: str, suffix: str, data: bytes) -> tuple[str | None, list[Cue], list[str]]:
    """(title candidate, cues, warnings) from caption bytes; `suffix` is '.vtt' or '.srt'."""
    text, warnings = decode_text(Path(where), data)
    if suffix == ".vtt":
        title, cues = parse_vtt(text, where)
    else:
        title, cues = None, parse_srt(text, where)
    return title, cues, warnings


def caption_sections(cues: list[Cue], trail: tuple[str, ...]) -> list[Section]:
    return [Section(heading_path=trail, text=text, start=start) for start, text in merge_cues(cues)]


def media_for(path: Path) -> Path | None:
    """The media file next to a caption file (same stem, or stem before a language tag: 'talk.en.vtt')."""
    stems = {path.stem, path.stem.rsplit(".", 1)[0]}
    for stem in sorted(stems):
        for suffix in sorted(MEDIA_SUFFIXES):
            candidate = path.with_name(stem + suffix)
            if candidate.is_file():
                return candidate
    return None


@register(".vtt", ".srt")
def load_captions(path: Path, limits: LoaderLimits) -> LoadedDocument:
    data = path.read_bytes()
    check_text_size(path, data.decode("utf-8", "ignore"), limits)
    title_candidate, cues, warnings = parse_captions(str(path), path.suffix.lower(), data)
    title = clean_inline(title_candidate or "") or prettify_stem(Path(path.stem.rsplit(".", 1)[0] + path.suffix))
    sections = caption_sections(cues, (title,))
    if not sections:
        warnings.append("the caption file has no cues")
    if media_for(path) is None:
        warnings.append("no media file next to the captions; citations show the timestamp only")
    return LoadedDocument(path=str(path), kind="captions", title=title, sections=sections, warnings=warnings)
