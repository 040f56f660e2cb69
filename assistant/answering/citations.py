"""Citation keys in, locations out. Keys the model invents are dropped; numbering follows first use."""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.core.types import Citation, Evidence

_KEY_GROUP = re.compile(r"\[((?:S\d+)(?:\s*[,;]\s*S\d+)*)\]")
_NUMBERED = re.compile(r"\[(S\d+)\]")


def resolve_keys(text: str, evidence: Sequence[Evidence]) -> tuple[str, list[Evidence]]:
    """Normalise '[S1, S2]' to '[S1][S2]', drop keys that were never given, list the evidence used."""
    by_key = {e.key: e for e in evidence}
    used: list[Evidence] = []

    def replace(match: re.Match[str]) -> str:
        keys = [k.strip() for k in re.split(r"[,;]", match.group(1))]
        kept = [k for k in keys if k in by_key]
        for key in kept:
            if by_key[key] not in used:
                used.append(by_key[key])
        return "".join(f"[{k}]" for k in kept)

    cleaned = _KEY_GROUP.sub(replace, text)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", cleaned)
    return cleaned.strip(), used


def number_citations(text: str, used: Sequence[Evidence]) -> tuple[str, list[Citation]]:
    """Replace [S<k>] keys by [1], [2]... in order of first use, with a Citation per number."""
    order: dict[str, int] = {}
    by_key = {e.key: e for e in used}
    citations: list[Citation] = []

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in by_key:
            return ""
        if key not in order:
            order[key] = len(order) + 1
            item = by_key[key]
            citations.append(
                Citation(
                    key=str(order[key]),
                    location=item.chunk.location,
                    label=item.chunk.location.label(),
                    snippet=item.chunk.text,
                    chunk_id=item.chunk.id,
                )
            )
        return f"[{order[key]}]"

    return _NUMBERED.sub(replace, text), citations
