"""Caption loader: WebVTT (.vtt) and SubRip (.srt) files become timestamped passages.

- WebVTT follows the W3C WebVTT syntax: a ``WEBVTT`` header (its text after the signature, if any, is the
  title candidate), then blocks separated by blank lines. ``NOTE``, ``STYLE`` and ``REGION`` blocks are skipped;
  a cue is an optional identifier line, a timing line ``[hh:]mm:ss.ttt --> [hh:]mm:ss.ttt [settings]`` and its
  payload. Voice spans ``<v Speaker>`` / ``<v.loud Speaker>`` keep the speaker as ``Speaker: ...``; other tags
  (``<c>``, ``<i>``, ``<b>``, ``<u>``, ``<ruby>``, ``<lang>``, inline timestamps) are dropped, entities decoded.
- SubRip: blocks of a counter line, ``hh:mm:ss,ttt --> hh:mm:ss,ttt`` and text lines; ``<i>``/``<b>``/``<font>``
  tags are dropped, and a leading ``NAME:`` speaker label is kept as written.
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


def _vtt_payload(lines: list[str], speaker: str | None) -> list[tuple[str | None, str]]:
    """(speaker, text) runs of one cue; a voice span sets the speaker until the next one."""
    runs: list[tuple[str | None, str]] = []
    text = " ".join(lines)
    pos = 0
    current = speaker
    for match in _VOICE.finditer(text):
        before = _clean(text[pos : match.start()])
        if before:
            runs.append((current, before))
        current = clean_inline(html.unescape(match.group(1))) or None
        pos = match.end()
    rest = _clean(text[pos:])
    if rest:
        runs.append((current, rest))
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
        for speaker, run in _vtt_payload(block[index + 1 :], None):
            cues.append(Cue(start=timing[0], end=timing[1], text=run, speaker=speaker))
    return (header or None), cues


def parse_srt(text: str, where: str = "captions") -> list[Cue]:
    """Cues of a SubRip file."""
    cues: list[Cue] = []
    for block in _blocks(text.lstrip("\ufeff")):
        index = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
        if index is None:
            continue
        timing = _timing(block[index])
        if timing is None:
            continue
        body = _clean(" ".join(block[index + 1 :]))
        if body:
            cues.append(Cue(start=timing[0], end=timing[1], text=body))
    if not cues and text.strip():
        raise LoaderError(where, "corrupt", "has no SubRip cues ('00:00:01,000 --> 00:00:04,000').", FIX_CAPTIONS)
    return cues


def merge_cues(
    cues: list[Cue], target_chars: int = 500, max_chars: int = 1200, max_seconds: float = 90.0
) -> list[tuple[float, str]]:
    """(start seconds, passage text) pairs; passages end at sentence boundaries; speaker turns start a line.

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
        if turn or (not parts and cue.speaker):
            piece = f"{cue.speaker}: {cue.text}"
            piece = ("\n" + piece) if parts else piece
        else:
            piece = (" " + cue.text) if parts else cue.text
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
