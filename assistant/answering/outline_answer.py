"""Quoting an outline: the subsections a short section introduction announces.

"The Co-Active coaching approach describes three levels of listening, which are a useful way to notice where
your attention is." answers "What are the three levels of listening?" only with the three levels, which are the
section's subsections, each under its own heading. When the chosen sentence comes from such an introduction
(assistant/retrieval/outline.py hands its subsections over) and announces them, by their number or with a
colon, the answer quotes it, then each subsection's heading and first sentence, in reading order, each cited to
its own passage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.answering.units import Unit, chunk_sentences
from assistant.core.types import Evidence

_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_COUNT = re.compile(r"\b(two|three|four|five|six|seven|eight|[2-8])\b", re.IGNORECASE)


def announces(sentence: str, question: str, parts: int) -> bool:
    """Whether `sentence` (or, failing that, the question) announces `parts` parts, or a list (a colon)."""
    if sentence.rstrip().endswith(":"):
        return True
    counts = {_NUMBERS.get(m.lower(), int(m) if m.isdigit() else 0) for m in _COUNT.findall(sentence)}
    return parts in counts or (not counts and parts in {_NUMBERS.get(m.lower(), 0) for m in _COUNT.findall(question)})


def outline_units(best: Unit, outline: Sequence[Evidence], question: str) -> list[Unit] | None:
    """`best` and one item per subsection ("Level 1: internal listening. Your attention is on yourself: ..."), or
    None when `best` is not from the introduction that heads `outline` or does not announce it."""
    if not outline or best.is_item or not announces(best.text, question, len(outline)):
        return None
    intro = best.evidence.chunk.location
    items = [best]
    for n, item in enumerate(outline):
        loc = item.chunk.location
        if loc.module != intro.module or tuple(loc.section[:-1]) != tuple(intro.section):
            return None
        sentences = chunk_sentences(item.chunk)
        heading = loc.section[-1]
        first = sentences[0][1] if sentences else ""
        text = f"{heading}{'.' if ':' in heading else ':'} {first}" if first else heading
        group = (loc.course_id, loc.module, tuple(loc.section))
        items.append(Unit(text, True, item, best.rank, n, group))
    return items


__all__ = ["announces", "outline_units"]
