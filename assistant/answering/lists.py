"""Lists in an extractive answer: a procedure's steps kept together with their lead-in, a sentence that announces a
list quoted with it, a list cut at a passage's end continued from the next passage, long items shortened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from assistant.answering.units import Unit, chunk_sentences
from assistant.core.text import split_sentences
from assistant.core.types import Evidence

MAX_STEPS = 8
# Words of a lead-in that continues the sentence before it ("They are:", "These include:").
_SHORT_LEAD_IN = 4
# An answer longer than this that holds a list quotes each item's first sentence.
_LONG_ANSWER_WORDS = 120


def list_block(units: list[Unit], anchor: Unit, tails: Mapping[str, list[Unit]] | None = None) -> list[Unit]:
    """The run of list items around `anchor` in its passage, plus the sentence that introduces it; a run that
    reaches the passage's end goes on with the items that open the next passage of its section (`tails`, by
    chunk id: a page break or the chunk size cut the list)."""
    same = sorted((u for u in units if u.evidence is anchor.evidence), key=lambda u: u.position)
    index = next((i for i, u in enumerate(same) if u is anchor), None)
    if index is None:  # not among `units`: nothing around it to read
        return [anchor]
    if not anchor.is_item:  # a lead-in ("Write down:") followed by the steps
        index += 1
        if index >= len(same) or not same[index].is_item:
            return [anchor]
    start = end = index
    while start > 0 and same[start - 1].is_item and same[start - 1].position == same[start].position - 1:
        start -= 1
    while end + 1 < len(same) and same[end + 1].is_item and same[end + 1].position == same[end].position + 1:
        end += 1
    block = same[start : end + 1]
    if end == len(same) - 1 and tails:
        block.extend(tails.get(anchor.evidence.chunk.id, []))
    block = block[:MAX_STEPS]
    lead = same[start - 1] if start > 0 and same[start - 1].position == same[start].position - 1 else None
    if lead is not None and not lead.is_item and lead.text.endswith(":"):
        block.insert(0, lead)
    return block


def short_items(chosen: list[Unit]) -> list[Unit]:
    """A long answer with a list quotes each item's first sentence only ("Scarcity: Money should be scarce
    enough to have some value..."): the list's shape is the answer, and the reader follows the citation for more."""
    if sum(len(u.text.split()) for u in chosen) <= _LONG_ANSWER_WORDS:
        return chosen
    out = []
    for unit in chosen:
        first = split_sentences(unit.text)[0] if unit.is_item else unit.text
        out.append(replace(unit, text=first) if first != unit.text and len(first.split()) >= 3 else unit)
    return out


def list_tails(evidence: Sequence[Evidence], continued: Sequence[Evidence]) -> dict[str, list[Unit]]:
    """By evidence chunk id: the list items that open the next passage of its section (the list goes on there)."""
    out: dict[str, list[Unit]] = {}
    for item in evidence:
        loc = item.chunk.location
        after = next(
            (
                c
                for c in (*evidence, *continued)
                if c.chunk.location.module == loc.module
                and c.chunk.location.section == loc.section
                and c.chunk.ordinal == item.chunk.ordinal + 1
            ),
            None,
        )
        if after is None:
            continue
        group = (loc.course_id, loc.module, loc.section)
        items = []
        for position, text, is_item in chunk_sentences(after.chunk):
            if not is_item:
                break
            items.append(Unit(text, True, after, 0, position, group))
        out[item.chunk.id] = items
    return out


def complete_lead_in(
    chosen: list[Unit], units: list[Unit], tails: Mapping[str, list[Unit]] | None = None
) -> list[Unit]:
    """A chosen sentence that announces a list ("The SMART checklist is the test: ...") is quoted with its list:
    ending on the colon promises an answer the quote does not give. The answer then ends with that list."""
    for n, unit in enumerate(chosen):
        if unit.is_item or not unit.text.endswith(":"):
            continue
        block = list_block(units, unit, tails)
        if sum(u.is_item for u in block) >= 2:
            return [*chosen[:n], *block]
        return chosen
    # The answer's last sentence followed by a short lead-in and its list ("...only under stricter conditions.
    # They are: - racial or ethnic origin ..."): the list is what the sentence is about.
    last = chosen[-1] if chosen else None
    lead = next((u for u in units if last and u.evidence is last.evidence and u.position == last.position + 1), None)
    if last is not None and not last.is_item and lead is not None and not lead.is_item and lead.text.endswith(":"):
        block = list_block(units, lead, tails)
        if len(lead.text.split()) <= _SHORT_LEAD_IN and sum(u.is_item for u in block) >= 2:
            return [*chosen, *block]
    return chosen


__all__ = ["MAX_STEPS", "complete_lead_in", "list_block", "list_tails", "short_items"]
