"""Extractive answers without a model: quote the sentences of the library that answer the question.

1. The question's kind is recognised from its wording: a definition ("what is"), a procedure ("how do I",
   "how should I"), a reason ("why") or a comparison ("difference between", "vs"); and its parts, when it asks
   several things ("What is X? How does it...", "Explain X, Y and Z"; see questions.py).
2. Every sentence (or list item) of all the evidence passages is a candidate. Words, the passage's own match
   (its dense score) and a small cue for the kind (list items for a procedure, "because" for a reason...) rank
   them cheaply; the best of them are then matched by meaning: the cosine of the sentence's vector, stored at
   ingest where the index keeps it, else embedded at query time for the best few only (see
   sentence_vectors.py). Each part of a multi-part question has its best sentence among those matched.
3. The answer is quoted from one place, the section whose sentences match best: 1-5 sentences in source order,
   or, for a procedure, its list of steps kept together. A part of the question that no sentence of that
   place holds is answered by the best on-topic sentence of the same module that holds it.
4. A sentence is quoted only if it is on the topic: its passage is nearly as close to the question as the best
   one, and its blended meaning-match clears a floor chosen on the openstax-intro-business train split (a stored,
   late-chunked vector has its own, higher one: it carries its passage's context).
   An answer with nothing on topic is empty, which the caller turns into a refusal.

Every quoted sentence carries the key of the passage it comes from; citations.number_citations() numbers them,
exactly as for the model's answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.answering.citations import number_citations
from assistant.answering.questions import QuestionKind, question_kind, question_parts
from assistant.answering.sentence_vectors import SentenceMatch, SentenceStore, SentenceVectors
from assistant.core.text import chat_filler_terms, split_sentences, tokenize
from assistant.core.types import Chunk, Citation, Evidence

MAX_SENTENCES = 5
MAX_STEPS = 8
# Passages the answer may quote from (all of the evidence, by default), and how close to the best passage's
# dense score they must be.
_PASSAGES = 6
_PASSAGE_RATIO = 0.85
# Weights of the sentence score: meaning-match of the sentence, of its passage, lexical overlap, kind cue.
_W_SENTENCE = 0.55
_W_PASSAGE = 0.25
_W_LEXICAL = 0.35
_W_CUE = 0.06
# On topic: a blended meaning-match (0.7 sentence + 0.3 passage cosine) of at least TOPIC_FLOOR, or at least
# LOOSE_FLOOR with a content word of the question outside an example. On the openstax-intro-business train
# split the best sentence of the gold section clears TOPIC_FLOOR for 99% of the questions (see README,
# "Extractive answers"); learners' own wording sits lower, hence the looser floor when words are shared.
TOPIC_FLOOR = 0.40
LOOSE_FLOOR = 0.30
# The floors for a sentence whose vector was stored at ingest (late-chunked: pooled from its chunk's model run, so
# it carries its passage's context, and a short list item of a passage near the question sits higher than when
# embedded alone). Chosen on openstax train by the rule the embedded floor meets there: on meaning alone it refuses
# 1 of the 181 answerable questions (TOPIC_FLOOR 0.40 embedded: 1 of 181; the next stored best sentence is at 0.49)
# and 4 of the 43 let through with the gold course left out. The loose floor stays: train figures are the same
# from 0.30 to 0.35 and precision drops at 0.38 (README, "Extractive answers").
STORED_TOPIC_FLOOR = 0.48
STORED_LOOSE_FLOOR = 0.30
# A follow-up's vector is blended with its conversation's topic by this weight before sentences are matched.
TOPIC_WEIGHT = 0.35
# Sentences kept beside the best one must score at least this share of it; a sentence added for a part of a
# multi-part question that no kept sentence answers, at least PART_RATIO of it.
_KEEP_RATIO = 0.72
_PART_RATIO = 0.5

_CUES: dict[str, re.Pattern[str]] = {
    "definition": re.compile(r"\b(is an?|are|is the|means|refers to|is called|is known as|stands for)\b", re.I),
    "reason": re.compile(
        r"\b(because|so that|in order to|helps?|reasons?|why|avoids?|prevents?|matters|otherwise|since)\b", re.I
    ),
    "comparison": re.compile(
        r"\b(whereas|while|unlike|instead|differen\w*|differs?|rather than|both|versus|compared|but|on the other)\b",
        re.I,
    ),
}

_MAX_WORDS = 80
_SLIDE_BULLET_WORDS = 25
# A paragraph's first sentence that is one capitalised word is a run-in label ("Defensiveness.") or a title the
# sentence splitter cut off ("Mr."): either way it is read with the sentence after it.
_LABEL = re.compile(r"[A-Z][a-z]+[.:]")
_EXAMPLE = re.compile(r"\b(for example|for instance|e\.g\.)[^;]*|\[[^\]]*\]", re.IGNORECASE)
_LABEL_PREFIX = re.compile(r"^(speaker notes:\s*|[-*•]\s+|\d+[.)]\s+)+", re.IGNORECASE)
_ITEM = re.compile(r"^([-*•]|\d+[.)])\s+")
_ENDS_LIKE_SENTENCE = re.compile(r"[.!?:)\"'”*]$")


def clean_unit(unit: str) -> tuple[str, bool]:
    """Strip list markers and the 'Speaker notes:' label; report whether it was a list item."""
    cleaned = _LABEL_PREFIX.sub("", unit).strip()
    return cleaned, bool(_ITEM.match(unit))


@dataclass
class _Unit:
    """One candidate sentence or list item, where it sits, and its scores."""

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


def passage_units(text: str, slides: bool = False) -> list[tuple[str, bool]]:
    """(sentence or list item, is a list item) in reading order.

    A list item is one unit however many sentences it has; a line wrapped by the layout (PDF) is joined to
    the line it continues. On a slide, a short line above the speaker notes is a bullet.
    """
    blocks: list[tuple[str, bool]] = []
    notes = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.lower().startswith("speaker notes:"):
            notes = True
            blocks.append((line[len("speaker notes:") :].strip(), False))
            continue
        # A short line on a slide is a bullet; a paragraph on a slide is read as sentences.
        item = bool(_ITEM.match(line)) or (slides and not notes and len(line.split()) <= _SLIDE_BULLET_WORDS)
        previous = blocks[-1] if blocks else None
        if not item and previous is not None and not _ENDS_LIKE_SENTENCE.search(previous[0]) and not slides:
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
        # A fragment with no end punctuation (a line cut by the layout) reads as a broken answer.
        if words < 3 or words > _MAX_WORDS or (not is_item and not _ENDS_LIKE_SENTENCE.search(text)):
            continue
        out.append((position, text, is_item))
    return out


def _candidates(evidence: Sequence[Evidence]) -> list[_Unit]:
    if not evidence:
        return []
    head = list(evidence[:_PASSAGES])
    top_dense = max((e.dense_score or 0.0) for e in head)
    units: list[_Unit] = []
    for rank, item in enumerate(head):
        # A passage much further from the question than the best one is another topic that shares a word.
        if rank > 0 and (item.dense_score or 0.0) < _PASSAGE_RATIO * top_dense:
            continue
        loc = item.chunk.location
        group = (loc.course_id, loc.module, loc.section)
        for position, text, is_item in chunk_sentences(item.chunk):
            units.append(_Unit(text, is_item, item, rank, position, group))
    return units


def _prescore(units: list[_Unit], kind: QuestionKind, query_idf: dict[str, float]) -> None:
    """Everything but the meaning-match: lexical overlap, the passage's dense score, the kind cue, the rank."""
    filler = chat_filler_terms()
    weights = {t: w for t, w in query_idf.items() if t not in filler}
    total = sum(weights.values())
    heading_terms: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for unit in units:
        # Words met only inside an example ("for example [FYI] New expense limits") are not what it is about.
        terms = set(tokenize(_EXAMPLE.sub(" ", unit.text)))
        unit.lexical = sum(w for t, w in weights.items() if t in terms) / total if total > 0 else 0.0
        if unit.group not in heading_terms:
            heading_terms[unit.group] = set(tokenize(" ".join(unit.group[2])))
        on_heading = sum(w for t, w in weights.items() if t in heading_terms[unit.group]) / total if total else 0.0
        if (kind == "procedure" and unit.is_item) or (kind in _CUES and _CUES[kind].search(unit.text)):
            unit.cues.add(kind)
        passage = unit.evidence.dense_score or 0.0
        unit.score = (
            _W_PASSAGE * passage + _W_LEXICAL * unit.lexical + _W_CUE * len(unit.cues) + 0.1 * on_heading
        ) - 0.02 * unit.rank


def _embed_text(unit: _Unit) -> str:
    """What the sentence is about: under its heading ("The usual reasons are..." is about its heading's topic),
    without its examples (a sentence on subject lines is not about "[FYI] New expense limits")."""
    section = unit.evidence.chunk.location.section
    heading = section[-1] if section else unit.evidence.chunk.location.module_title
    text = _EXAMPLE.sub(" ", unit.text).strip(" ,;") or unit.text
    return f"{heading}: {text}" if heading else text


def _add_meaning(units: list[_Unit], similarities: Sequence[SentenceMatch | None]) -> list[_Unit]:
    """Add the meaning-match to the units that have one; returns those (the others are not matched)."""
    matched = []
    for unit, similarity in zip(units, similarities, strict=True):
        if similarity is None:
            continue
        passage = unit.evidence.dense_score or 0.0
        unit.meaning = 0.7 * similarity.cosine + 0.3 * passage
        unit.stored = similarity.stored
        unit.score += _W_SENTENCE * similarity.cosine
        matched.append(unit)
    return matched


def _on_topic(unit: _Unit) -> bool:
    """The blended meaning-match clears its floor (a looser one with a content word of the question); a stored
    vector has floors of its own."""
    topic, loose = (STORED_TOPIC_FLOOR, STORED_LOOSE_FLOOR) if unit.stored else (TOPIC_FLOOR, LOOSE_FLOOR)
    return unit.meaning >= topic or (unit.meaning >= loose and unit.lexical > 0)


def _promote_parts(ranked: list[_Unit], parts: list[set[str]], budget: int) -> list[_Unit]:
    """`ranked` with, for each part of a multi-part question, its best unit holding the part's words moved into
    the first `budget` (so every part has a sentence matched by meaning)."""
    if not parts or budget <= 0:
        return ranked
    head = ranked[:budget]
    for part in parts:
        if any(part & u.terms for u in head):
            continue
        best = next((u for u in ranked[budget:] if part & u.terms), None)
        if best is not None:
            head = [*head[: budget - 1], best] if len(head) >= budget else [*head, best]
    return head + [u for u in ranked if u not in head]


def _cover_parts(chosen: list[_Unit], place: list[_Unit], parts: list[set[str]], max_sentences: int) -> list[_Unit]:
    """The best sentence, then for each part none holds yet the best sentence of the same place that holds its
    words (if it scores PART_RATIO of the best), then the other chosen ones while there is room."""
    if not parts or not chosen:
        return chosen
    floor = _PART_RATIO * chosen[0].score
    picked = [chosen[0]]
    for part in parts:
        if any(part & u.terms for u in picked):
            continue
        extra = next((u for u in place if u not in picked and u.score >= floor and part & u.terms), None)
        if extra is not None:
            picked.append(extra)
    picked.extend(u for u in chosen if u not in picked)
    return picked[:max_sentences]


def _list_block(units: list[_Unit], anchor: _Unit) -> list[_Unit]:
    """The run of list items around `anchor` in its passage, plus the sentence that introduces it."""
    same = sorted((u for u in units if u.evidence is anchor.evidence), key=lambda u: u.position)
    index = next(i for i, u in enumerate(same) if u is anchor)
    if not anchor.is_item:  # a lead-in ("Write down:") followed by the steps
        index += 1
        if index >= len(same) or not same[index].is_item:
            return [anchor]
    start = end = index
    while start > 0 and same[start - 1].is_item and same[start - 1].position == same[start].position - 1:
        start -= 1
    while end + 1 < len(same) and same[end + 1].is_item and same[end + 1].position == same[end].position + 1:
        end += 1
    block = same[start : end + 1][:MAX_STEPS]
    lead = same[start - 1] if start > 0 and same[start - 1].position == same[start].position - 1 else None
    if lead is not None and not lead.is_item and lead.text.endswith(":"):
        block.insert(0, lead)
    return block


def choose_sentences(
    question: str,
    evidence: Sequence[Evidence],
    query_idf: dict[str, float],
    vectors: SentenceVectors,
    max_sentences: int = MAX_SENTENCES,
    topic: str | None = None,
) -> list[_Unit]:
    """The on-topic sentences that answer the question, in source order (empty: nothing on topic).

    topic: for a follow-up, the conversation's earlier question(s); the question's vector is blended with
    theirs (TOPIC_WEIGHT), so "what about if they get defensive?" is matched as a question about feedback.
    """
    units = _candidates(evidence)
    if not units:
        return []
    kind = question_kind(question)
    # A part is named by its words the passages use ("explain", "name" are the question's wording, not a part).
    used = set().union(*(u.terms for u in units))
    parts = [p & used for p in question_parts(question, query_idf) if p & used]
    parts = parts if len(parts) >= 2 else []
    _prescore(units, kind, query_idf)
    # Words, passage and kind pick the sentences matched by meaning (stored vectors, or a few embedded).
    ranked = _promote_parts(sorted(units, key=lambda u: -u.score), parts, vectors.candidates)
    if vectors.candidates > 0 or vectors.store is not None:
        query = vectors.query(question)
        if topic and topic.strip() and topic.strip() not in question:
            blended = (1 - TOPIC_WEIGHT) * query + TOPIC_WEIGHT * np.asarray(vectors.embedder.embed_query(topic))
            query = (blended / max(float(np.linalg.norm(blended)), 1e-9)).astype(np.float32)
        # A stored vector was pooled over the whole sentence, its examples included ("for example [FYI] New expense
        # limits" pulls a sentence on subject lines towards expenses): such a sentence is embedded without them.
        wanted = [(u.evidence.chunk, "" if _EXAMPLE.search(u.text) else u.text, _embed_text(u)) for u in ranked]
        matched = _add_meaning(ranked, vectors.match(wanted, query))
    else:  # meaning-match switched off: a sentence stands for its passage
        passages = [SentenceMatch(cosine=u.evidence.dense_score or 0.0, stored=False) for u in ranked]
        matched = _add_meaning(ranked, passages)
    on_topic = [u for u in matched if _on_topic(u)]
    if not on_topic:
        return []
    # One coherent place: the section whose two best sentences score highest.
    by_group: dict[tuple[str, str, tuple[str, ...]], list[_Unit]] = {}
    for unit in on_topic:
        by_group.setdefault(unit.group, []).append(unit)

    def group_strength(members: list[_Unit]) -> float:
        best = sorted((u.score for u in members), reverse=True)
        return best[0] + 0.5 * (best[1] if len(best) > 1 else 0.0)

    place = max(by_group.values(), key=group_strength)
    place.sort(key=lambda u: -u.score)
    best = place[0]
    chosen = [u for u in place if u.score >= _KEEP_RATIO * best.score][:max_sentences]
    # Steps stay together: a procedure's best list, or any list two of the chosen sentences come from.
    listed = [u for u in chosen if u.is_item or u.text.endswith(":")]
    if listed and (kind == "procedure" or sum(u.is_item for u in chosen) >= 2):
        block = _list_block([u for u in units if u.group == best.group], listed[0])
        if sum(u.is_item for u in block) > 1:
            return sorted(block, key=lambda u: u.order)
    # A part no sentence of the place answers may be answered next door: the same module, on topic.
    nearby = place + [u for u in sorted(on_topic, key=lambda u: -u.score) if u.group[:2] == best.group[:2]]
    chosen = _cover_parts(chosen, nearby, parts, max_sentences)
    if kind == "definition" and len(chosen) == 1:
        # A definition reads better with the sentence that follows it, when that one is on topic too.
        follower = next((u for u in place if u.evidence is best.evidence and u.position == best.position + 1), None)
        if follower is not None and follower.score >= 0.6 * best.score:
            chosen.append(follower)
    return sorted(chosen, key=lambda u: u.order)


def extract_answer(
    question: str,
    evidence: Sequence[Evidence],
    query_idf: dict[str, float],
    vectors: SentenceVectors,
    max_sentences: int = MAX_SENTENCES,
    topic: str | None = None,
) -> tuple[str, list[Citation]]:
    """Quote the chosen sentences verbatim, each with its citation; ("", []) when nothing is on topic."""
    chosen = choose_sentences(question, evidence, query_idf, vectors, max_sentences, topic)
    if not chosen:
        return "", []
    as_list = len(chosen) > 1 and any(u.is_item for u in chosen)
    parts = []
    for unit in chosen:
        marker = "- " if as_list and unit.is_item else ""
        parts.append(f"{marker}{unit.text} [{unit.evidence.key}]")
    keyed = ("\n" if as_list else " ").join(parts)
    return number_citations(keyed, [u.evidence for u in chosen])


__all__ = [
    "MAX_SENTENCES",
    "TOPIC_FLOOR",
    "SentenceStore",
    "SentenceVectors",
    "choose_sentences",
    "chunk_sentences",
    "extract_answer",
    "question_kind",
]
