"""Plain-text loader (.txt): paragraphs, with heading-like lines turned into sections.

A line on its own (blank lines around it), short, without end punctuation and starting with a capital is
taken as a heading: the first one is the document title (level 1), the rest are level 2. Underlined lines
(=== or ---) are headings of level 1 and 2, as in Markdown's setext style.
"""

from __future__ import annotations

import re
from pathlib import Path

from assistant.core.types import LoadedDocument
from ingest.loaders import LoaderLimits, SectionBuilder, check_text_size, decode_text, pick_title, register

_LIST_ITEM = re.compile(r"^\s*(?:[-*•‣◦]|\d+[.)])\s+")
_UNDERLINE = re.compile(r"^(=+|-+)\s*$")


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; soft-wrapped lines are joined, list items keep their lines."""
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        merged: list[str] = [lines[0]]
        for line in lines[1:]:
            if _LIST_ITEM.match(line) or _UNDERLINE.match(line):
                merged.append(line)
            else:
                merged[-1] = f"{merged[-1]} {line}"
        paragraphs.append("\n".join(merged))
    return paragraphs


def _heading_level(paragraph: str, seen_title: bool) -> tuple[int, str] | None:
    """(level, text) when a paragraph reads as a heading, else None."""
    lines = paragraph.split("\n")
    if len(lines) == 2 and _UNDERLINE.match(lines[1]) and len(lines[1].strip()) >= 3:
        return (1 if lines[1].strip().startswith("=") else 2), lines[0].strip()
    if len(lines) != 1:
        return None
    line = lines[0].strip()
    words = line.split()
    if not 1 <= len(words) <= 10 or len(line) > 80 or _LIST_ITEM.match(line):
        return None
    if line[-1] in ".!?:;,\"'”)" or not line[0].isupper():
        return None
    return (2 if seen_title else 1), line


@register(".txt")
def load_text(path: Path, limits: LoaderLimits) -> LoadedDocument:
    text, warnings = decode_text(path, path.read_bytes())
    check_text_size(path, text, limits)
    builder = SectionBuilder(path, limits)
    seen_title = False
    paragraphs = _paragraphs(text)
    for index, paragraph in enumerate(paragraphs):
        heading = _heading_level(paragraph, seen_title)
        # A heading introduces text: a short last line, or one followed by another heading-like line, is body.
        following = paragraphs[index + 1] if index + 1 < len(paragraphs) else None
        if heading is not None and (following is None or _heading_level(following, True) is not None):
            heading = None
        if heading is not None:
            builder.heading(*heading)
            seen_title = True
        else:
            builder.text(paragraph)
    sections = builder.finish()
    if not sections:
        warnings.append("the file contains only whitespace")
    return LoadedDocument(
        path=str(path), kind="text", title=pick_title(path=path), sections=sections, warnings=warnings
    )
