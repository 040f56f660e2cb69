"""Structure-aware, token-budgeted chunking: a chunk never crosses a section, and keeps its location."""

from __future__ import annotations

import hashlib
from collections import Counter

from assistant.core.settings import ChunkingSettings
from assistant.core.text import encoding, split_units
from assistant.core.types import Chunk, Course, LoadedDocument, Location


def _join(units: list[tuple[str, int, bool]]) -> str:
    """Re-join units, keeping line breaks where the source had them (lists, slide bullets)."""
    out = ""
    for i, (unit, _, line_end) in enumerate(units):
        out += unit
        if i < len(units) - 1:
            out += "\n" if line_end else " "
    return out


def _pieces(sentence: str, line_end: bool, budget: int) -> list[tuple[str, int, bool]]:
    """A sentence longer than the budget is cut at token boundaries."""
    tokens = encoding().encode(sentence, disallowed_special=())
    if len(tokens) <= budget:
        return [(sentence, len(tokens), line_end)]
    starts = range(0, len(tokens), budget)
    return [
        (encoding().decode(tokens[i : i + budget]).strip(), len(tokens[i : i + budget]), line_end and i == starts[-1])
        for i in starts
    ]


def pack(text: str, size: int, overlap: int) -> list[tuple[str, int]]:
    """Greedy sentence packing into chunks of at most `size` tokens, sharing up to `overlap` tokens."""
    units: list[tuple[str, int, bool]] = []
    for sentence, line_end in split_units(text):
        units.extend(_pieces(sentence, line_end, size))
    chunks: list[tuple[str, int]] = []
    current: list[tuple[str, int, bool]] = []
    used = 0
    for unit in units:
        if current and used + unit[1] > size:
            chunks.append((_join(current), used))
            carried: list[tuple[str, int, bool]] = []
            carried_tokens = 0
            for prev in reversed(current):
                if carried_tokens + prev[1] > overlap or carried_tokens + prev[1] + unit[1] > size:
                    break
                carried.insert(0, prev)
                carried_tokens += prev[1]
            current, used = carried, carried_tokens
        current.append(unit)
        used += unit[1]
    if current:
        chunks.append((_join(current), used))
    return chunks


def chunk_document(doc: LoadedDocument, course: Course, module_path: str, settings: ChunkingSettings) -> list[Chunk]:
    """Chunks of one loaded document, in reading order, with stable content-derived ids."""
    module_title = next((m.title for m in course.modules if m.path == module_path), None) or doc.title
    chunks: list[Chunk] = []
    seen: Counter[str] = Counter()
    for section in doc.sections:
        heading = tuple(h for h in section.heading_path if h)
        # The module title usually repeats as the first heading; the location already carries it.
        if heading and heading[0].strip().lower() == module_title.strip().lower():
            heading = heading[1:]
        location = Location(
            course_id=course.id,
            course_title=course.title,
            module=module_path,
            module_title=module_title,
            section=heading,
            page=section.page,
            timestamp=section.start,
        )
        # Locations without a timestamp keep the identity (and chunk ids) they had before timestamps existed.
        identity_json = location.model_dump_json(exclude={"timestamp"} if section.start is None else None)
        for text, tokens in pack(section.text, settings.size_tokens, settings.overlap_tokens):
            if not text:
                continue
            content_hash = hashlib.sha1(text.encode()).hexdigest()
            identity = f"{identity_json}\0{content_hash}"
            seen[identity] += 1
            chunk_id = hashlib.sha1(f"{identity}\0{seen[identity]}".encode()).hexdigest()[:24]
            chunks.append(
                Chunk(
                    id=chunk_id,
                    text=text,
                    location=location,
                    ordinal=len(chunks),
                    tokens=tokens,
                    content_hash=content_hash,
                    level=course.level,
                )
            )
    return chunks
