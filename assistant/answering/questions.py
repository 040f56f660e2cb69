"""What a question asks for: its kind (definition, procedure, reason, comparison) and its parts.

A question can ask several things: "What is a business cycle? How do businesses adapt to it?" (two sentences),
or "Explain the concepts of revenue, costs, and profit" (a coordinated list). Each part is named by the content
words only it holds, so the answer can quote one sentence for each part.
"""

from __future__ import annotations

import re
from typing import Literal

from assistant.core.text import chat_filler_terms, tokenize

QuestionKind = Literal["definition", "procedure", "reason", "comparison", "other"]

_COMPARISON = re.compile(
    r"\b(differen(ce|t|ces)|differ|distinguish|compare[ds]?|comparison|versus|vs\.?|better than|or should i)\b",
    re.IGNORECASE,
)
_REASON = re.compile(
    r"^\s*(and\s+|but\s+|so\s+)?why\b|\bwhy (do|does|is|are|should|would|did|must)\b|\breasons?\b|"
    r"\bpurpose of\b|\bwhat for\b",
    re.IGNORECASE,
)
_PROCEDURE = re.compile(
    r"\bhow (do|can|should|would|could|to|does one|must)\b|\bhow (i|we)\b|\bsteps?\b|\bwalk me through\b|"
    r"\bwhat (do|should|must) (i|we)( need to| have to)? (do|say|include|put|write|bring|check)\b|\bbest way to\b|\bprocess for\b|\bprocedure\b",
    re.IGNORECASE,
)
_DEFINITION = re.compile(
    r"^\s*(so\s+|and\s+)?(what(\s+is|\s+are|'s|\s+does\s+.+\s+mean|\s+do\s+we\s+mean\s+by)|define|definition of|"
    r"meaning of|who is|explain what)\b",
    re.IGNORECASE,
)

# A question's sentences, and the items of a coordinated list inside one ("A, B, and C"; "A and B").
_QUESTION_END = re.compile(r"(?:(?<=[?!])|(?<=[a-z]{3}\.))\s+(?=[A-Z])")
_COORDINATION = re.compile(r"\s*(?:,\s*(?:and|or)\s+|,\s*|\s+and\s+|\s+or\s+|;\s*)", re.IGNORECASE)
# Items of a coordinated list are short; a longer piece is a clause, and the split is not a list.
_ITEM_WORDS = 4
MAX_PARTS = 4


def question_kind(question: str) -> QuestionKind:
    """What the question asks for, from its wording (comparison and reason before procedure and definition)."""
    text = question.strip()
    if _COMPARISON.search(text):
        return "comparison"
    if _REASON.search(text):
        return "reason"
    if _PROCEDURE.search(text):
        return "procedure"
    if _DEFINITION.search(text):
        return "definition"
    return "other"


def _list_items(sentence: str) -> list[str]:
    """The items of a coordinated list in `sentence` ("revenue", "costs", "profit"), or [sentence]."""
    pieces = [p for p in _COORDINATION.split(sentence.strip().rstrip("?.!")) if p.strip()]
    if len(pieces) < 2:
        return [sentence]
    inner = pieces[1:]
    if any(len(p.split()) > _ITEM_WORDS for p in inner[:-1]):
        return [sentence]
    width = max(len(p.split()) for p in inner)
    last = inner[-1].split()
    if len(last) > _ITEM_WORDS:  # "the advantages and disadvantages of a sole proprietorship": shared tail
        return [sentence]
    # The first piece carries the lead-in ("Explain the concepts of revenue"): its item is its last words.
    first = " ".join(pieces[0].split()[-width:])
    return [first, *inner]


def question_parts(question: str, weights: dict[str, float]) -> list[set[str]]:
    """The parts of a multi-part question, each as the content terms only it holds (IDF-weighted terms in
    `weights`); [] when the question asks one thing."""
    filler = chat_filler_terms()
    pieces: list[str] = []
    for sentence in _QUESTION_END.split(question.strip()):
        pieces.extend(_list_items(sentence))
    if len(pieces) < 2:
        return []
    terms = [{t for t in tokenize(p) if t in weights and t not in filler} for p in pieces]
    parts: list[set[str]] = []
    for i, own in enumerate(terms):
        others = set().union(*(t for j, t in enumerate(terms) if j != i))
        unique = own - others
        if unique:
            parts.append(unique)
    return parts[:MAX_PARTS] if len(parts) >= 2 else []


__all__ = ["MAX_PARTS", "QuestionKind", "question_kind", "question_parts"]
