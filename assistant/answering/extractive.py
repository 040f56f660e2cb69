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

import itertools
import re
from collections.abc import Sequence

import numpy as np

from assistant.answering.citations import number_citations
from assistant.answering.lists import complete_lead_in, list_block, list_tails, short_items
from assistant.answering.outline_answer import outline_units
from assistant.answering.questions import QuestionKind, question_kind, question_parts
from assistant.answering.sentence_vectors import SentenceMatch, SentenceStore, SentenceVectors
from assistant.answering.units import Unit, chunk_sentences, clean_unit, passage_units
from assistant.core.text import chat_filler_terms, tokenize
from assistant.core.types import Citation, Evidence
from assistant.retrieval.outline import PASSAGES

MAX_SENTENCES = 5
# Passages the answer may quote from (all of the evidence, by default), and how close to the best passage's
# dense score they must be.
_PASSAGES = PASSAGES
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

# A sentence that opens on a word pointing back ("He", "This structure", "The GDPR calls them") or adding to what
# was said ("Also keep out..."), not on the module itself ("This module").
_ANAPHOR = re.compile(
    r"(?:he|she|it|they|this|these|that|those|such)\b(?!\s+(?:module|course|section|chapter|lesson|unit)\b)"
    r"|(?:also|additionally|in addition|likewise|similarly|moreover|furthermore|besides)\b"
    r"|(?:\S+\s+){1,4}(?:them|they|these|those)\b",  # "The GDPR calls them special category data"
    re.IGNORECASE,
)
# A sentence on what the course itself covers ("This module walks through...", "In this session we go through...",
# "You will learn..."), and a question that asks just that.
_COURSE_PART = r"(?:module|course|section|chapter|lesson|unit|session|video|presentation|training|workshop|guide)"
_ROADMAP = re.compile(
    rf"^(?:this|the|our|in this|in the next|in the following) {_COURSE_PART}\b(?:[^.]{{0,40}})?\b(?:covers?|walks?|"
    r"explains?|shows?|introduces?|looks? at|describes?|goes through|go through|sets? (?:out|up)|defines?|"
    r"will|we|you|is about|teaches|takes)\b|^you will (?:learn|be able|see|practise|practice)\b|^by the end of this\b",
    re.IGNORECASE,
)
_ABOUT_THE_COURSE = re.compile(rf"\b(?:this|the|that|which) {_COURSE_PART}\b|\b(?:will|do|can) (?:i|we) learn\b", re.I)
_EXAMPLE = re.compile(r"\b(for example|for instance|e\.g\.)[^;]*|\[[^\]]*\]", re.IGNORECASE)
# A question that asks which questions to ask ("What should I ask in the reality stage?"): a passage's list of
# questions is then the answer, not a list of what a chapter will answer.
_ASKS_FOR_QUESTIONS = re.compile(r"\b(?:ask|asks|asking|asked|questions?)\b", re.IGNORECASE)
_QUESTIONS_LEAD = re.compile(r"\bquestions?\b", re.IGNORECASE)


def _announced_questions(sentences: Sequence[tuple[int, str, bool]]) -> set[int]:
    """Positions of a list of questions that a lead-in announces as questions to answer ("After reading this
    chapter, you should be able to answer these questions: How do...? What are...?"), the lead-in included.
    It says what the chapter will answer, not the answer. Questions without such a lead-in are kept: a stage's
    questions ("Goal: what do you want?") or a table's "Question it answers" can be what was asked."""
    out: set[int] = set()
    for k, (position, text, _) in enumerate(sentences):
        if not (text.endswith(":") and _QUESTIONS_LEAD.search(text)):
            continue
        run = list(itertools.takewhile(lambda s: s[1].endswith("?"), sentences[k + 1 :]))
        if run:
            out.update([position, *(p for p, _, _ in run)])
    return out


def _candidates(evidence: Sequence[Evidence], question: str = "") -> list[Unit]:
    if not evidence:
        return []
    # "This module walks through preparing the data..." says what a module covers, not what the learner asked,
    # unless they asked what it covers.
    roadmaps = not _ABOUT_THE_COURSE.search(question)
    skip_question_lists = not _ASKS_FOR_QUESTIONS.search(question)
    head = list(evidence[:_PASSAGES])
    top_dense = max((e.dense_score or 0.0) for e in head)
    units: list[Unit] = []
    for rank, item in enumerate(head):
        # A passage much further from the question than the best one is another topic that shares a word.
        if rank > 0 and (item.dense_score or 0.0) < _PASSAGE_RATIO * top_dense:
            continue
        loc = item.chunk.location
        group = (loc.course_id, loc.module, loc.section)
        sentences = chunk_sentences(item.chunk)
        announced = _announced_questions(sentences) if skip_question_lists else set()
        for position, text, is_item in sentences:
            if position not in announced and not (roadmaps and _ROADMAP.search(text)):
                units.append(Unit(text, is_item, item, rank, position, group))
    return units


def _prescore(units: list[Unit], kind: QuestionKind, query_idf: dict[str, float]) -> None:
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


def _embed_text(unit: Unit) -> str:
    """What the sentence is about: under its heading ("The usual reasons are..." is about its heading's topic),
    without its examples (a sentence on subject lines is not about "[FYI] New expense limits")."""
    section = unit.evidence.chunk.location.section
    heading = section[-1] if section else unit.evidence.chunk.location.module_title
    text = _EXAMPLE.sub(" ", unit.text).strip(" ,;") or unit.text
    return f"{heading}: {text}" if heading else text


def _add_meaning(units: list[Unit], similarities: Sequence[SentenceMatch | None]) -> list[Unit]:
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


def _on_topic(unit: Unit) -> bool:
    """The blended meaning-match clears its floor (a looser one with a content word of the question); a stored
    vector has floors of its own."""
    topic, loose = (STORED_TOPIC_FLOOR, STORED_LOOSE_FLOOR) if unit.stored else (TOPIC_FLOOR, LOOSE_FLOOR)
    return unit.meaning >= topic or (unit.meaning >= loose and unit.lexical > 0)


def _promote_parts(ranked: list[Unit], parts: list[set[str]], budget: int) -> list[Unit]:
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


def _cover_parts(chosen: list[Unit], place: list[Unit], parts: list[set[str]], max_sentences: int) -> list[Unit]:
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


def choose_sentences(
    question: str,
    evidence: Sequence[Evidence],
    query_idf: dict[str, float],
    vectors: SentenceVectors,
    max_sentences: int = MAX_SENTENCES,
    topic: str | None = None,
    outline: Sequence[Evidence] = (),
    continued: Sequence[Evidence] = (),
) -> list[Unit]:
    """The on-topic sentences that answer the question, in source order (empty: nothing on topic).

    topic: for a follow-up, the conversation's earlier question(s); the question's vector is blended with
    theirs (TOPIC_WEIGHT), so "what about if they get defensive?" is matched as a question about feedback.
    outline: the subsections under evidence[0] when it is a short introduction (retrieval.outline); quoted when
    the chosen sentence is that introduction's and announces them (outline_answer.py).
    continued: the next passage of an evidence passage's section when that one ends in a list (retrieval.outline):
    a list quoted to the passage's end goes on with the items that open it.
    """
    units = _candidates(evidence, question)
    if not units:
        return []
    tails = list_tails(evidence, continued)
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
    by_group: dict[tuple[str, str, tuple[str, ...]], list[Unit]] = {}
    for unit in on_topic:
        by_group.setdefault(unit.group, []).append(unit)

    def group_strength(members: list[Unit]) -> float:
        best = sorted((u.score for u in members), reverse=True)
        return best[0] + 0.5 * (best[1] if len(best) > 1 else 0.0)

    place = max(by_group.values(), key=group_strength)
    place.sort(key=lambda u: -u.score)
    best = place[0]
    if outline and best.evidence is evidence[0] and (items := outline_units(best, outline, question)):
        return [*_with_antecedent([best], [u for u in units if u.group == best.group]), *items[1:]]
    chosen = [u for u in place if u.score >= _KEEP_RATIO * best.score][:max_sentences]
    # Steps stay together: a procedure's best list, or any list two of the chosen sentences come from.
    listed = [u for u in chosen if u.is_item or u.text.endswith(":")]
    if listed and (kind == "procedure" or sum(u.is_item for u in chosen) >= 2):
        block = list_block([u for u in units if u.group == best.group], listed[0], tails)
        if sum(u.is_item for u in block) > 1:
            return short_items(sorted(block, key=lambda u: u.order))
    # A part no sentence of the place answers may be answered next door: the same module, on topic.
    nearby = place + [u for u in sorted(on_topic, key=lambda u: -u.score) if u.group[:2] == best.group[:2]]
    chosen = _cover_parts(chosen, nearby, parts, max_sentences)
    if kind == "definition" and len(chosen) == 1:
        # A definition reads better with the sentence that follows it, when that one is on topic too.
        follower = next((u for u in place if u.evidence is best.evidence and u.position == best.position + 1), None)
        if follower is not None and follower.score >= 0.6 * best.score:
            chosen.append(follower)
    return short_items(
        # A sentence added for a part of the question can come from another section of the module: each is read
        # in its own passage (all of the candidates).
        complete_lead_in(_with_antecedent(sorted(chosen, key=lambda u: u.order), units), units, tails)
    )


def _with_antecedent(chosen: list[Unit], units: list[Unit]) -> list[Unit]:
    """An answer that would open on "He calls it Theory Z." or "This structure is often called BLUF" opens with
    the sentence before it in the passage, which says who or what that is."""
    first = chosen[0] if chosen else None
    if first is None or first.is_item or not _ANAPHOR.match(first.text) or len(chosen) >= MAX_SENTENCES:
        return chosen
    before = next((u for u in units if u.evidence is first.evidence and u.position == first.position - 1), None)
    return [before, *chosen] if before is not None and not before.is_item else chosen


def extract_answer(
    question: str,
    evidence: Sequence[Evidence],
    query_idf: dict[str, float],
    vectors: SentenceVectors,
    max_sentences: int = MAX_SENTENCES,
    topic: str | None = None,
    outline: Sequence[Evidence] = (),
    continued: Sequence[Evidence] = (),
) -> tuple[str, list[Citation]]:
    """Quote the chosen sentences verbatim, each with its citation; ("", []) when nothing is on topic."""
    chosen = choose_sentences(question, evidence, query_idf, vectors, max_sentences, topic, outline, continued)
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
    "clean_unit",
    "extract_answer",
    "passage_units",
    "question_kind",
]
