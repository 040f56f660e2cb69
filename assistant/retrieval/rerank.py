"""Glue of the ranking step: features for the head of the fused list, the learned order, the refusal decision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assistant.index.library import LibraryIndex
from assistant.retrieval.features import FEATURES, CandidateSet, candidate_features
from assistant.retrieval.library_scale import library_scale
from assistant.retrieval.ranker import LinearModel, shipped_ranker, shipped_refusal
from assistant.retrieval.refusal import REFUSAL_FEATURES, RefusalInputs, refusal_inputs, refusal_signals
from assistant.retrieval.retriever import CandidateLists
from assistant.retrieval.section_vote import distinct_sections_first, section_keys


@dataclass
class Reranked:
    fused: list[tuple[str, float]]
    candidates: CandidateSet
    logits: np.ndarray
    answer_probability: float
    supported: bool
    calibrated: bool = True  # False: the library's scale could not be measured, the decision is not to be used


def features_for(query: str, lists: CandidateLists, index: LibraryIndex, pool: int) -> CandidateSet:
    """Feature rows for the first `pool` ids of the fused list."""
    head = [cid for cid, _ in lists.fused[:pool]]
    return candidate_features(
        query,
        lists.vector,
        (lists.dense.ids, lists.dense.scores),
        (lists.lexical.ids, lists.lexical.scores),
        head,
        index.lexical(),
        index.sections(),
        lists.course_ids,
        index.sentence_store,
    )


def inputs_for(query: str, lists: CandidateLists, index: LibraryIndex, cands: CandidateSet) -> RefusalInputs:
    """The refusal model's inputs beyond the ranker's features (term evidence, library-relative cosines)."""
    sections = index.sections()
    return refusal_inputs(
        query,
        cands.ids,
        max(lists.dense.scores, default=0.0),
        cands.best_heading_dense,
        index.lexical(),
        sections,
        library_scale(index, sections),
    )


def order_by(
    lists: CandidateLists,
    cands: CandidateSet,
    logits: np.ndarray,
    keys: list[int] | None = None,
    distinct: int = 0,
) -> list[tuple[str, float]]:
    """The pool by logit (ties by id), then the rest of the fused list in its order, below every pool score.

    With `distinct` > 0 and the pool's section `keys`, the first `distinct` places go to the best chunks of that
    many distinct sections (`section_vote`); the scores stay decreasing, so callers may keep sorting by them.
    """
    pool = sorted(zip(cands.ids, logits.tolist(), strict=True), key=lambda item: (-item[1], item[0]))
    if distinct > 0 and keys is not None:
        key_of = dict(zip(cands.ids, keys, strict=True))
        positions = distinct_sections_first([c for c, _ in pool], [key_of[c] for c, _ in pool], distinct)
        scores = [s for _, s in pool]
        pool = [(pool[p][0], scores[i]) for i, p in enumerate(positions)]
    floor = min(logits.tolist(), default=0.0) - 1.0
    rest = [(cid, floor - i * 1e-6) for i, (cid, _) in enumerate(lists.fused[len(cands.ids) :])]
    return pool + rest


def rerank(
    query: str,
    lists: CandidateLists,
    index: LibraryIndex,
    pool: int,
    ranker: LinearModel | None = None,
    refusal: LinearModel | None = None,
    distinct: int = 0,
) -> Reranked:
    ranker = ranker or shipped_ranker()
    refusal = refusal or shipped_refusal()
    cands = features_for(query, lists, index, pool)
    logits = ranker.logits(cands.features, FEATURES) if cands.ids else np.zeros(0)
    inputs = inputs_for(query, lists, index, cands)
    signals = refusal_signals(cands, ranker, inputs)
    probability = float(refusal.probability(signals, REFUSAL_FEATURES)[0])
    return Reranked(
        fused=order_by(lists, cands, logits, section_keys(cands.ids, index.sections()), distinct),
        candidates=cands,
        logits=logits,
        answer_probability=probability,
        supported=probability >= refusal.threshold,
        calibrated=inputs.scaled,
    )
