"""The structure around the evidence: the subsections a short section introduction announces, and the passage
where a list cut at a passage's end goes on.

"The Co-Active coaching approach describes three levels of listening" is the best passage for "What are the three
levels of listening?", but the levels are its subsections ("Level 1: internal listening", ...), each a passage
of its own that retrieval need not rank near it. When the best passage is such a short introduction, the lead
passage of each subsection is handed to the answerer too, in reading order, so it can quote the outline.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.core.text import LIST_ITEM
from assistant.core.types import Evidence
from assistant.index.library import LibraryIndex

# The evidence passages the extractive answerer quotes from (it reads this constant).
PASSAGES = 6
# A passage this short (words) that heads subsections introduces them; a longer one is content of its own.
SHORT_INTRO_WORDS = 60
MAX_SUBSECTIONS = 8


def continuations(index: LibraryIndex, evidence: Sequence[Evidence], first_key: int) -> list[Evidence]:
    """The next passage of its section for each of the first PASSAGES evidence passages that ends in a list item
    (a page break or the chunk size cut the list; the answerer may quote the rest), keyed from S<first_key>."""
    sections = None
    ids: list[str] = []
    for item in evidence[:PASSAGES]:
        lines = [line for line in item.chunk.text.splitlines() if line.strip()]
        if not lines or not LIST_ITEM.match(lines[-1]):
            continue
        sections = sections or index.sections()
        after = sections.next_in_section(item.chunk.id)
        if after is not None and after not in ids:
            ids.append(after)
    if not ids:
        return []
    have = {e.chunk.id for e in evidence}
    chunks = index.ledger.get_chunks([cid for cid in ids if cid not in have])
    found = [chunks[cid] for cid in ids if cid in chunks]
    return [Evidence(key=f"S{n}", chunk=chunk, score=0.0) for n, chunk in enumerate(found, start=first_key)]


def outline(index: LibraryIndex, evidence: Sequence[Evidence]) -> list[Evidence]:
    """The lead passages of the subsections under the best passage, when it is a short introduction to two or
    more of them (else []); keyed after the evidence (S7, S8...), so the answer can cite them."""
    if not evidence or len(evidence[0].chunk.text.split()) > SHORT_INTRO_WORDS:
        return []
    top = evidence[0].chunk
    ids = index.sections().subsection_leads(top.id)
    if not 2 <= len(ids) <= MAX_SUBSECTIONS:
        return []
    chunks = [c for c in index.ledger.get_chunks(ids).values() if c.location.module == top.location.module]
    chunks.sort(key=lambda c: c.ordinal)
    return [Evidence(key=f"S{n}", chunk=chunk, score=0.0) for n, chunk in enumerate(chunks, start=len(evidence) + 1)]


__all__ = ["MAX_SUBSECTIONS", "PASSAGES", "SHORT_INTRO_WORDS", "continuations", "outline"]
