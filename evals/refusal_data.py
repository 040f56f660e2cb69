"""Exclusion-trick instances for the refusal model on a BEIR dataset, and refusal figures for any decision.

SciFact has no unanswerable queries, so each train query is also asked of a library in which its relevant
documents do not exist: they are removed from the dense and BM25 candidate lists before fusion (a doc-id
exclusion, where openstax uses a course filter). SciFact's cosines sit on another scale than openstax's, so a
model fitted on both cannot lean on one library's absolute cosine level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from pydantic import BaseModel

from assistant.index.library import LibraryIndex
from assistant.retrieval.features import FEATURES
from assistant.retrieval.ranker import LinearModel
from assistant.retrieval.retriever import CandidateLists, Ranked, Retriever, fuse_rrf, fuse_weighted
from evals.beir import BeirDataset, chunk_for
from evals.ranking import QueryCase, _case, ranker_logits

Progress = Callable[[int, int], None]


def _without(ranked: Ranked, excluded: set[str]) -> Ranked:
    kept = [(c, s) for c, s in zip(ranked.ids, ranked.scores, strict=True) if c not in excluded]
    return Ranked([c for c, _ in kept], [s for _, s in kept])


def excluded_lists(lists: CandidateLists, excluded: set[str], retriever: Retriever) -> CandidateLists:
    """The candidate lists as if the chunks `excluded` did not exist (fused again the way the retriever fuses)."""
    cfg = retriever.settings
    dense, lexical = _without(lists.dense, excluded), _without(lists.lexical, excluded)
    fused = (
        fuse_rrf([dense, lexical], cfg.rrf_k)
        if cfg.fusion == "rrf"
        else fuse_weighted(dense, lexical, cfg.dense_weight)
    )
    return replace(lists, dense=dense, lexical=lexical, fused=fused)


def beir_excluded_cases(
    index: LibraryIndex, retriever: Retriever, data: BeirDataset, pool: int, progress: Progress | None = None
) -> list[QueryCase]:
    """One case per query, retrieved with its relevant documents removed (every candidate is a non-answer)."""
    chunk_of = {doc.id: chunk_for(data.name, doc).id for doc in data.documents}
    out: list[QueryCase] = []
    for done, query in enumerate(data.queries, start=1):
        relevant = {chunk_of[d] for d, g in data.qrels[query.id].items() if g > 0 and d in chunk_of}
        text = retriever.spell_out_acronyms(query.text)
        lists = excluded_lists(retriever.candidates(text), relevant, retriever)
        out.append(_case(data.name, query.id, text, lists, index, pool, lambda _chunk: 0, {}))
        if progress:
            progress(done, len(data.queries))
    return out


class RefusalScore(BaseModel):
    """One refusal decision on answerable and unanswerable instances (positive class: refuse)."""

    answerable: int
    unanswerable: int
    precision: float | None
    recall: float | None
    false_refusal_rate: float | None


def refusal_score(refused_answerable: np.ndarray, refused_unanswerable: np.ndarray) -> RefusalScore:
    tp, fp = int(np.sum(refused_unanswerable)), int(np.sum(refused_answerable))
    n_ans, n_un = int(refused_answerable.size), int(refused_unanswerable.size)
    return RefusalScore(
        answerable=n_ans,
        unanswerable=n_un,
        precision=round(tp / (tp + fp), 4) if tp + fp else None,
        recall=round(tp / n_un, 4) if n_un else None,
        false_refusal_rate=round(fp / n_ans, 4) if n_ans else None,
    )


def threshold_refused(
    cases: Sequence[QueryCase], ranker: LinearModel, min_dense: float, min_coverage: float
) -> np.ndarray:
    """The previous two-threshold rule on each case: best cosine below `min_dense`, or the best IDF coverage of
    the ranker's top 3 below `min_coverage` (the retriever computes it over the top 3 evidence after
    de-duplication, so this is that rule up to near-duplicates)."""
    out = np.zeros(len(cases), dtype=bool)
    for k, case in enumerate(cases):
        if not case.pool:
            out[k] = True
            continue
        top3 = np.argsort(-ranker_logits(case, ranker), kind="stable")[:3]
        coverage = float(case.features[top3, FEATURES.index("coverage")].max())
        out[k] = case.max_dense < min_dense or coverage < min_coverage
    return out
