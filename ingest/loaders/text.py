"""Plain-text loader (.txt): one untitled section of paragraphs."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.types import LoadedDocument
from ingest.loaders import LoaderLimits, SectionBuilder, check_text_size, decode_text, pick_title, register

_LIST_ITEM = re.compile(r"^\s*(?:[-*•‣◦]|\d+[.)])\s+")


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; soft-wrapped lines are joined, list items keep their lines."""
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        merged: list[str] = [lines[0]]
        for line in lines[1:]:
            if _LIST_ITEM.match(line):
                merged.append(line)
            else:
                merged[-1] = f"{merged[-1]} {line}"
        paragraphs.append("\n".join(merged))
    return paragraphs


@register(".txt")
def load_text(path: Path, limits: LoaderLimits) -> LoadedDocument:
    text, warnings = decode_text(path, path.read_bytes())
    check_text_size(path, text, limits)
    builder = SectionBuilder(path, limits)
    for paragraph in _paragraphs(text):
        builder.text(paragraph)
    sections = builder.finish()
    if not sections:
        warnings.append("the file contains only whitespace")
    return LoadedDocument(
        path=str(path), kind="text", title=pick_title(path=path), sections=sections, warnings=warnings
    )
