"""Calibrate the refusal thresholds (`refusal_min_dense`, `refusal_min_coverage`) on a BEIR dataset.

The product refuses when ``max_dense < refusal_min_dense or coverage < refusal_min_coverage``. BEIR has no
unanswerable questions, so each query is used twice ("exclusion trick"):

* answerable: the query retrieved against the full corpus, exactly as `Retriever.retrieve` does;
* unanswerable: the same query with its relevant documents removed from the dense and lexical candidate lists
  before fusion, so ``max_dense`` is the best non-relevant cosine and ``coverage`` is computed over the top
  non-relevant passages.

Thresholds are chosen on the train split and scored (precision, recall and F1 of refusals, balanced accuracy,
false-refusal rate) on the test split with the same trick. Two criteria:

* ``max_false_refusal`` (default 0.10): the most refusals of unanswerable instances among the thresholds that
  refuse at most that share of answerable ones (Neyman-Pearson). This produced the shipped defaults. The
  exclusion trick makes hard, near-topic negatives, on which the signals separate weakly (AUC about 0.7), and
  unconstrained optima there refuse over 40% of answerable questions (and as many on the product's golden set);
  a wrongly refused learner gets nothing, so the cost of that error is capped instead.
* ``max_false_refusal=None``: maximise ``objective``. Balanced accuracy rather than F1 of the refusal class: F1
  gives no credit for answering an answerable question, so with weak signals it is maximised by refusing nearly
  everything (refusing all scores F1 = 0.67 on these balanced instances), while balanced accuracy scores that 0.5.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.settings import RetrievalSettings, Settings
from assistant.index.library import LibraryIndex
from assistant.retrieval.retriever import Ranked, Retriever, fuse_rrf, fuse_weighted, query_coverage
from evals.beir import BeirDataset, benchmark_settings, chunk_for, load_dataset, open_beir_index

Objective = Literal["balanced_accuracy", "f1"]
Progress = Callable[[int, int], None]

# Threshold grids: cosine similarity in steps of 0.005, coverage in steps of 0.01.
_DENSE_GRID = np.round(np.arange(0.0, 1.0001, 0.005), 3)
_COVERAGE_GRID = np.round(np.arange(0.0, 1.0001, 0.01), 2)


class Signals(BaseModel):
    """The two refusal signals of one retrieval."""

    max_dense: float
    coverage: float


class QuerySignals(BaseModel):
    query_id: str
    answerable: Signals
    unanswerable: Signals


class RefusalStats(BaseModel):
    """How a pair of thresholds does on answerable + unanswerable instances (positive class: refuse)."""

    min_dense: float
    min_coverage: float
    answerable: int
    unanswerable: int
    precision: float = Field(description="Share of refusals that were unanswerable.")
    recall: float = Field(description="Share of unanswerable instances refused.")
    f1: float
    balanced_accuracy: float
    false_refusal_rate: float = Field(description="Share of answerable instances refused.")


class CalibrationResult(BaseModel):
    """Thresholds chosen on the tuning split and their scores on both splits."""

    dataset: str
    tune_split: str
    eval_split: str
    objective: Objective
    max_false_refusal: float | None = Field(description="The false-refusal cap the thresholds were chosen under.")
    refusal_min_dense: float
    refusal_min_coverage: float
    train: RefusalStats
    test: RefusalStats
    previous_train: RefusalStats = Field(description="The thresholds in the settings passed in, on the tune split.")
    previous_test: RefusalStats
    dense_only_test: RefusalStats = Field(description="Best dense-only threshold (coverage off), on the eval split.")
    coverage_only_test: RefusalStats = Field(description="Best coverage-only threshold (dense off), on the eval split.")
    seconds: float


def _fuse(dense: Ranked, lexical: Ranked, cfg: RetrievalSettings) -> list[str]:
    fused = (
        fuse_rrf([dense, lexical], cfg.rrf_k)
        if cfg.fusion == "rrf"
        else fuse_weighted(dense, lexical, cfg.dense_weight)
    )
    return [cid for cid, _ in fused]


def _drop(ranked: Ranked, excluded: set[str]) -> Ranked:
    kept = [(cid, s) for cid, s in zip(ranked.ids, ranked.scores, strict=True) if cid not in excluded]
    return Ranked([c for c, _ in kept], [s for _, s in kept])


def excluded_signals(
    index: LibraryIndex, retriever: Retriever, query: str, excluded: set[str], top: int = 3
) -> Signals:
    """max_dense and coverage of a retrieval in which the chunks `excluded` do not exist.

    Mirrors `Retriever.retrieve` (same candidate lists, same fusion, coverage over the top `top` passages).
    """
    cfg = retriever.settings
    vector = retriever.embedder.embed_query(query)
    dense_hits = index.store.query(vector, cfg.candidates + len(excluded))
    lexical_hits = index.lexical().search(query, cfg.candidates + len(excluded))
    dense = _drop(Ranked([c for c, _ in dense_hits], [s for _, s in dense_hits]), excluded)
    lexical = _drop(Ranked([c for c, _ in lexical_hits], [s for _, s in lexical_hits]), excluded)
    dense = Ranked(dense.ids[: cfg.candidates], dense.scores[: cfg.candidates])
    lexical = Ranked(lexical.ids[: cfg.candidates], lexical.scores[: cfg.candidates])
    ids = _fuse(dense, lexical, cfg)[:top]
    chunks = index.ledger.get_chunks(ids)
    coverage = query_coverage(query, [chunks[c] for c in ids if c in chunks], index)
    return Signals(max_dense=max(dense.scores, default=0.0), coverage=coverage)


def collect_signals(
    data: BeirDataset, index: LibraryIndex, retriever: Retriever, progress: Progress | None = None
) -> list[QuerySignals]:
    """Answerable and unanswerable signals for every query of `data` (its qrels name the relevant docs)."""
    chunk_of = {doc.id: chunk_for(data.name, doc).id for doc in data.documents}
    out: list[QuerySignals] = []
    for done, query in enumerate(data.queries, start=1):
        result = retriever.retrieve(query.text)
        relevant = {chunk_of[d] for d, g in data.qrels[query.id].items() if g > 0 and d in chunk_of}
        out.append(
            QuerySignals(
                query_id=query.id,
                answerable=Signals(max_dense=result.max_dense, coverage=result.coverage),
                unanswerable=excluded_signals(index, retriever, query.text, relevant),
            )
        )
        if progress:
            progress(done, len(data.queries))
    return out


def _arrays(signals: Sequence[QuerySignals]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense, coverage and 'should refuse' label per instance (answerable first, then unanswerable)."""
    dense = np.array([s.answerable.max_dense for s in signals] + [s.unanswerable.max_dense for s in signals])
    coverage = np.array([s.answerable.coverage for s in signals] + [s.unanswerable.coverage for s in signals])
    label = np.array([False] * len(signals) + [True] * len(signals))
    return dense, coverage, label


def refusal_stats(signals: Sequence[QuerySignals], min_dense: float, min_coverage: float) -> RefusalStats:
    """Precision/recall/F1 of refusing, balanced accuracy and false-refusal rate for one pair of thresholds."""
    dense, coverage, label = _arrays(signals)
    refused = (dense < min_dense) | (coverage < min_coverage)
    tp = int(np.sum(refused & label))
    fp = int(np.sum(refused & ~label))
    positives = int(label.sum())
    negatives = int((~label).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    false_refusal = fp / negatives if negatives else 0.0
    return RefusalStats(
        min_dense=float(min_dense),
        min_coverage=float(min_coverage),
        answerable=negatives,
        unanswerable=positives,
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        balanced_accuracy=round((recall + 1.0 - false_refusal) / 2, 4),
        false_refusal_rate=round(false_refusal, 4),
    )


def choose_thresholds(
    signals: Sequence[QuerySignals],
    objective: Objective = "balanced_accuracy",
    dense_grid: Sequence[float] | None = None,
    coverage_grid: Sequence[float] | None = None,
    max_false_refusal: float | None = None,
) -> tuple[float, float]:
    """The (min_dense, min_coverage) pair on the grids that maximises `objective`; ties refuse less.

    With `max_false_refusal`, the objective is instead the refusal recall among the pairs that refuse at most
    that share of answerable instances (a Neyman-Pearson choice: cap the cost of wrong refusals).
    """
    dense, coverage, label = _arrays(signals)
    d_grid = np.asarray(_DENSE_GRID if dense_grid is None else dense_grid, dtype=np.float64)
    c_grid = np.asarray(_COVERAGE_GRID if coverage_grid is None else coverage_grid, dtype=np.float64)
    # refused[i, j, n]: instance n is refused under dense threshold i and coverage threshold j.
    refused = (dense[None, None, :] < d_grid[:, None, None]) | (coverage[None, None, :] < c_grid[None, :, None])
    tp = (refused & label).sum(axis=2).astype(np.float64)
    fp = (refused & ~label).sum(axis=2).astype(np.float64)
    positives = max(int(label.sum()), 1)
    negatives = max(int((~label).sum()), 1)
    recall = tp / positives
    if objective == "f1":
        score = np.divide(2 * tp, 2 * tp + fp + (positives - tp), out=np.zeros_like(tp), where=(tp + fp) > 0)
    else:
        score = (recall + 1.0 - fp / negatives) / 2
    if max_false_refusal is not None:
        score = np.where(fp / negatives <= max_false_refusal + 1e-12, recall, -1.0)
    refusals = tp + fp
    # Highest score first, then fewest refusals, then the lowest thresholds.
    best = min(
        zip(*np.nonzero(score >= score.max() - 1e-12), strict=True),
        key=lambda ij: (refusals[ij], d_grid[ij[0]], c_grid[ij[1]]),
    )
    return float(d_grid[best[0]]), float(c_grid[best[1]])


def calibrate_refusal(
    dataset_dir: Path,
    settings: Settings,
    work_dir: Path | None = None,
    objective: Objective = "balanced_accuracy",
    max_false_refusal: float | None = 0.10,
    tune_split: str = "train",
    eval_split: str = "test",
    progress: Progress | None = None,
) -> CalibrationResult:
    """Choose refusal thresholds on `tune_split` with the exclusion trick and score them on `eval_split`.

    Uses the BEIR index `run_beir` builds (same `work_dir`, default `.coursepilot/beir/<dataset>`), and the
    retrieval settings passed in (fusion, candidates, near-duplicate suppression) as the product would.
    Thresholds maximise refusal recall with at most `max_false_refusal` of answerable tune instances refused; with
    `max_false_refusal=None` they maximise `objective` instead. `progress(done, total)` restarts for each split (and for embedding if the index has to be built).
    """
    started = time.perf_counter()
    dataset_dir = Path(dataset_dir)
    tune = load_dataset(dataset_dir, tune_split)
    evaluation = load_dataset(dataset_dir, eval_split)
    work_dir = Path(work_dir) if work_dir is not None else Path(".coursepilot") / "beir" / tune.name
    bench = benchmark_settings(settings, work_dir, dedup=True)
    index, _ = open_beir_index(tune, bench, progress)
    retriever = Retriever(index, bench.retrieval)

    tune_signals = collect_signals(tune, index, retriever, progress)
    eval_signals = collect_signals(evaluation, index, retriever, progress)
    min_dense, min_coverage = choose_thresholds(tune_signals, objective, max_false_refusal=max_false_refusal)
    dense_only = choose_thresholds(tune_signals, objective, coverage_grid=[0.0], max_false_refusal=max_false_refusal)
    coverage_only = choose_thresholds(tune_signals, objective, dense_grid=[-1.0], max_false_refusal=max_false_refusal)
    old = settings.retrieval
    return CalibrationResult(
        dataset=tune.name,
        tune_split=tune_split,
        eval_split=eval_split,
        objective=objective,
        max_false_refusal=max_false_refusal,
        refusal_min_dense=min_dense,
        refusal_min_coverage=min_coverage,
        train=refusal_stats(tune_signals, min_dense, min_coverage),
        test=refusal_stats(eval_signals, min_dense, min_coverage),
        previous_train=refusal_stats(tune_signals, old.refusal_min_dense, old.refusal_min_coverage),
        previous_test=refusal_stats(eval_signals, old.refusal_min_dense, old.refusal_min_coverage),
        dense_only_test=refusal_stats(eval_signals, *dense_only),
        coverage_only_test=refusal_stats(eval_signals, *coverage_only),
        seconds=round(time.perf_counter() - started, 3),
    )


__all__ = [
    "CalibrationResult",
    "QuerySignals",
    "RefusalStats",
    "Signals",
    "calibrate_refusal",
    "choose_thresholds",
    "collect_signals",
    "excluded_signals",
    "refusal_stats",
]
