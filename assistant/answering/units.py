"""The quotable units of a passage: its sentences and list items, read as PDFs, Word files and slides lay them out.

A list item is one unit however many sentences it has; a line the layout wrapped is joined to the line it
continues; a bullet glyph on a line of its own begins the item on the next line; a run-in label is read with
the sentence it introduces; a table row (core.text.TABLE_ROW) is one unit. The extractive answerer quotes these
units, and the sentence vectors stored at ingest are keyed by them (chunk_sentences).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.core.text import LIST_BULLETS, LIST_ITEM, TABLE_ROW, split_sentences, tokenize
from assistant.core.types import Chunk, Evidence

_MAX_WORDS = 80
_SLIDE_BULLET_WORDS = 25
# A paragraph's first sentence that is one capitalised word is a run-in label ("Defensiveness.") or a title the
# sentence splitter cut off ("Mr."): either way it is read with the sentence after it.
_LABEL = re.compile(r"[A-Z][a-z]+[.:]")
_LABEL_PREFIX = re.compile(rf"^(speaker notes:\s*|[{LIST_BULLETS}]\s+|\d+[.)]\s+)+", re.IGNORECASE)
_LONE_BULLET = re.compile(rf"[{LIST_BULLETS}]")
_ENDS_LIKE_SENTENCE = re.compile(r"[.!?:)\"'”*]$")
# A colon the layout broke the line after, mid-sentence: "removes the two things that go wrong:\nvagueness and ...".
_WRAPPED_COLON = re.compile(r"[a-z]:\n[a-z]")


@dataclass
class Unit:
    """One candidate sentence or list item of an evidence passage, where it sits, and the answerer's scores."""

    text: str
    is_item: bool
    evidence: Evidence
    rank: int
    position: int
    group: tuple[str, str, tuple[str, ...]]
    lexical: float = 0.0
    meaning: float = 0.0
    stored: bool = False
    score: float = 0.0
    cues: set[str] = field(default_factory=set)
    terms: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.terms = set(tokenize(self.text))

    @property
    def order(self) -> tuple[int, int]:
        return (self.evidence.chunk.ordinal, self.position)


def clean_unit(unit: str) -> tuple[str, bool]:
    """Strip list markers and the 'Speaker notes:' label; report whether it was a list item."""
    cleaned = _LABEL_PREFIX.sub("", unit).strip()
    return cleaned, bool(LIST_ITEM.match(unit))


def passage_units(text: str, slides: bool = False) -> list[tuple[str, bool]]:
    """(sentence or list item, is a list item) in reading order.

    A list item is one unit however many sentences it has; a line wrapped by the layout (PDF) is joined to
    the line it continues. On a slide, a short line above the speaker notes is a bullet.
    """
    blocks: list[tuple[str, bool]] = []
    notes = bullet = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _LONE_BULLET.fullmatch(line):  # a PDF's bullet glyph on a line of its own: the item is the next line
            bullet = True
            continue
        line, bullet = (f"- {line}" if bullet else line), False
        if line.lower().startswith("speaker notes:"):
            notes = True
            blocks.append((line[len("speaker notes:") :].strip(), False))
            continue
        # A short line on a slide is a bullet; a paragraph on a slide is read as sentences.
        item = bool(LIST_ITEM.match(line) or TABLE_ROW.match(line)) or (
            slides and not notes and len(line.split()) <= _SLIDE_BULLET_WORDS
        )
        previous = blocks[-1] if blocks else ("", False)
        wrapped = not _ENDS_LIKE_SENTENCE.search(previous[0]) or bool(_WRAPPED_COLON.search(f"{previous[0]}\n{line}"))
        # After a list item, a line that starts a sentence is the paragraph after the list, not the item's rest.
        wrapped = wrapped and not (previous[1] and line[:1].isupper())
        if not item and blocks and wrapped and not slides:
            blocks[-1] = (f"{previous[0]} {line}", previous[1])  # a wrapped line
        else:
            blocks.append((line, item))
    units: list[tuple[str, bool]] = []
    for block, item in blocks:
        if item and len(block.split()) <= _MAX_WORDS:
            units.append((block, True))
        else:
            units.extend((sentence, False) for sentence in _run_in(split_sentences(block)))
    return units


def _run_in(sentences: list[str]) -> list[str]:
    """A paragraph's run-in label is read with the sentence it introduces: "Defensiveness. The person argues with
    every detail." Alone, the label is a fragment no answer can quote, and the sentence after it loses the one
    word that says what it is about (a follow-up on defensive reactions found nothing on topic)."""
    if len(sentences) >= 2 and _LABEL.fullmatch(sentences[0]):
        return [f"{sentences[0]} {sentences[1]}", *sentences[2:]]
    return sentences


def chunk_sentences(chunk: Chunk) -> list[tuple[int, str, bool]]:
    """(position, sentence, is a list item) of the units of `chunk` the answerer can quote: the texts a
    SentenceStore is asked about (store vectors under exactly these texts to be found)."""
    slides = chunk.location.module.lower().endswith(".pptx")
    out: list[tuple[int, str, bool]] = []
    for position, (unit, marked) in enumerate(passage_units(chunk.text, slides)):
        text, is_item = clean_unit(unit)
        is_item = is_item or marked
        words = len(text.split())
        # A fragment with no end punctuation (a line cut by the layout) reads as a broken answer; a list item of a
        # word or two ("genetic data") and a short lead-in ("They are:") are kept, for the list.
        short = words < (1 if is_item else 2 if text.endswith(":") else 3)
        if short or words > _MAX_WORDS or (not is_item and not _ENDS_LIKE_SENTENCE.search(text)):
            continue
        out.append((position, text, is_item))
    return out


__all__ = ["Unit", "chunk_sentences", "clean_unit", "passage_units"]
