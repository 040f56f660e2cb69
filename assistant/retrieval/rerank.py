"""Glue of the ranking step: features for the head of the fused list, the learned order, the refusal decision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assistant.index.library import LibraryIndex
from assistant.retrieval.features import FEATURES, CandidateSet, candidate_features
from assistant.retrieval.ranker import LinearModel, shipped_ranker, shipped_refusal
from assistant.retrieval.refusal import REFUSAL_FEATURES, refusal_signals
from assistant.retrieval.retriever import CandidateLists


@dataclass
class Reranked:
    fused: list[tuple[str, float]]
    candidates: CandidateSet
    logits: np.ndarray
    answer_probability: float
    supported: bool


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


def order_by(lists: CandidateLists, cands: CandidateSet, logits: np.ndarray) -> list[tuple[str, float]]:
    """The pool by logit (ties by id), then the rest of the fused list in its order, below every pool score."""
    pool = sorted(zip(cands.ids, logits.tolist(), strict=True), key=lambda item: (-item[1], item[0]))
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
) -> Reranked:
    ranker = ranker or shipped_ranker()
    refusal = refusal or shipped_refusal()
    cands = features_for(query, lists, index, pool)
    logits = ranker.logits(cands.features, FEATURES) if cands.ids else np.zeros(0)
    signals = refusal_signals(cands, logits, max(lists.dense.scores, default=0.0))
    probability = float(refusal.probability(signals, REFUSAL_FEATURES)[0])
    return Reranked(
        fused=order_by(lists, cands, logits),
        candidates=cands,
        logits=logits,
        answer_probability=probability,
        supported=probability >= refusal.threshold,
    )
