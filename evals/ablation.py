"""`coursepilot eval ablation`: each retrieval component's contribution, on every visible set, in one run.

One index per set (SciFact test, openstax-intro-business test, the golden set's sample library), one pass of
candidate generation per question, and every row scored from those same candidate lists:

* baselines: dense only, BM25 only, plain reciprocal rank fusion, the z-score fusion (the previous default);
* the shipped learned ranker, and the ranker with one group of features held at its training mean
  (a "without X" row; the model is not refitted, so the row reads as that group's contribution to it), and the
  ranker without the distinct-sections ordering of the head (`section_vote`) and without its boosted trees
  (the linear part alone).

Refusal figures use the shipped calibrated decision, beside the previous two-threshold rule: false refusals on
answerable questions, the share refused with the gold course (openstax) or the gold documents (SciFact) left
out and the precision of refusals, and refusal precision and recall on the golden set.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.settings import Settings
from assistant.core.types import ChatTurn, Chunk
from assistant.retrieval.ranker import LinearModel, shipped_ranker, shipped_refusal
from assistant.retrieval.refusal import REFUSAL_FEATURES
from assistant.retrieval.retriever import Retriever
from evals.ceiling import CeilingRefusal, ceiling_refusal, ceiling_scores
from evals.dataset import ExpectedLocation
from evals.metrics import matches_any
from evals.ranking import BASELINES, QueryCase, beir_cases, hit_rate, library_cases, mean_ndcg, ranked_ids, refusal_rows
from evals.refusal_data import beir_excluded_cases, refusal_score, threshold_refused

Progress = Callable[[int, int], None]

GROUPS: dict[str, frozenset[str]] = {
    "heading trail": frozenset({"heading_dense", "heading_gap", "heading_lexical_rel", "heading_coverage"}),
    "query-term coverage": frozenset({"coverage"}),
    "position in section": frozenset({"first_in_section"}),
    "chunk length": frozenset({"log_length"}),
    "section siblings": frozenset({"parent_share", "parent_best_dense_z"}),
}
ROW_LABELS = {
    "dense": "dense only",
    "bm25": "BM25 only",
    "rrf": "plain RRF (dense + BM25)",
    "fusion": "z-score fusion (previous default)",
    "ranker": "learned ranker (shipped default)",
}


class AblationRow(BaseModel):
    name: str
    scifact_ndcg_at_10: float | None = None
    openstax_hit_at_1: float | None = None
    openstax_hit_at_5: float | None = None
    golden_hit_at_1: float | None = None
    golden_hit_at_5: float | None = None


class RefusalFigures(BaseModel):
    """The shipped calibrated decision's figures; `thresholds` holds the previous two-threshold rule's."""

    openstax_false_refusal_rate: float | None = None
    openstax_excluded_refused: float | None = None
    openstax_refusal_precision: float | None = None
    scifact_false_refusal_rate: float | None = None
    scifact_excluded_refused: float | None = None
    scifact_refusal_precision: float | None = None
    golden_refusal_precision: float | None = None
    golden_refusal_recall: float | None = None
    golden_false_refusal_rate: float | None = None
    thresholds: RefusalFigures | None = None


class AblationResult(BaseModel):
    rows: list[AblationRow]
    refusal: RefusalFigures
    # --ceiling: per set, a refusal model fitted on that set's own instances (evals.ceiling).
    ceiling_refusal: dict[str, CeilingRefusal] = Field(default_factory=dict)
    queries: dict[str, int] = Field(default_factory=dict)
    seconds: float


def _variants(distinct: int, has_trees: bool) -> list[tuple[str, str, frozenset[str], int]]:
    """(label, ranking, features held at their mean, distinct sections first) of every row."""
    out: list[tuple[str, str, frozenset[str], int]] = [(ROW_LABELS[b], b, frozenset(), 0) for b in BASELINES]
    out.append((ROW_LABELS["ranker"], "ranker", frozenset(), distinct))
    out.extend((f"  ranker without {group}", "ranker", drop, distinct) for group, drop in GROUPS.items())
    if distinct > 0:
        out.append(("  ranker without distinct sections first", "ranker", frozenset(), 0))
    if has_trees:
        out.append(("  ranker without its boosted trees", "linear", frozenset(), distinct))
    return out


def _p_answer(cases: list[QueryCase], ranker: LinearModel, refusal: LinearModel) -> np.ndarray:
    rows = refusal_rows(cases, ranker)
    return refusal.probability(rows, REFUSAL_FEATURES) if len(cases) else np.zeros(0)


def _figures(
    name: str,
    answerable: list[QueryCase],
    unanswerable: list[QueryCase],
    refused: Callable[[list[QueryCase]], np.ndarray],
) -> dict[str, float | None]:
    score = refusal_score(refused(answerable), refused(unanswerable))
    if name != "golden":  # the exclusion trick: the unanswerable instances are the excluded ones
        return {
            f"{name}_false_refusal_rate": score.false_refusal_rate,
            f"{name}_excluded_refused": score.recall,
            f"{name}_refusal_precision": score.precision,
        }
    return {
        "golden_refusal_precision": score.precision,
        "golden_refusal_recall": score.recall,
        "golden_false_refusal_rate": score.false_refusal_rate,
    }


def _golden_grade(expected: Sequence[ExpectedLocation], chunk: Chunk) -> int:
    return int(matches_any(chunk.location, expected))


def golden_cases(
    dataset: Path, library: Path, settings: Settings, work_dir: Path, pool: int, progress: Progress | None
) -> tuple[list[QueryCase], list[QueryCase]]:
    """Answer cases of the golden set as QueryCases (follow-ups via the rule rewrite), answerable and not."""
    from assistant.pilot import rule_rewrite
    from evals.dataset import AnswerCase, load_dataset
    from evals.openstax import library_settings, open_library_index
    from evals.ranking import _case

    lib_settings = library_settings(settings, work_dir / "golden-library")
    index = open_library_index(library, lib_settings)
    retriever = Retriever(index, lib_settings.retrieval)
    cases = [c for c in load_dataset(dataset).cases if isinstance(c, AnswerCase)]
    answerable: list[QueryCase] = []
    unanswerable: list[QueryCase] = []
    for done, case in enumerate(cases, start=1):
        history = [ChatTurn(role=t.role, content=t.content) for t in case.history]
        query = retriever.spell_out_acronyms(rule_rewrite(case.question, history) if history else case.question)
        lists = retriever.candidates(query)
        item = _case("golden", case.id, query, lists, index, pool, functools.partial(_golden_grade, case.expected))
        (answerable if case.answerable else unanswerable).append(item)
        if progress:
            progress(done, len(cases))
    return answerable, unanswerable


def run_ablation(
    settings: Settings,
    openstax_dir: Path | None,
    scifact_dir: Path | None,
    golden: Path | None,
    golden_library: Path | None,
    work_dir: Path,
    split: str = "test",
    progress: Progress | None = None,
    ceiling: bool = False,
) -> AblationResult:
    """Every row on every set given; with `ceiling`, the in-sample rows of evals.ceiling after them."""
    from evals.beir import benchmark_settings, load_dataset, open_beir_index
    from evals.openstax import library_settings, load_questions, open_library_index

    started = time.perf_counter()
    pool = settings.retrieval.rerank_pool
    ranker, refusal = shipped_ranker(), shipped_refusal()
    sets: dict[str, list[QueryCase]] = {}
    figures = RefusalFigures()
    refusal_sets: dict[str, tuple[list[QueryCase], list[QueryCase]]] = {}
    if scifact_dir is not None:
        data = load_dataset(scifact_dir, split)
        bench = benchmark_settings(settings, work_dir / "scifact")
        index, _ = open_beir_index(data, bench, progress)
        beir_retriever = Retriever(index, bench.retrieval)
        sets["scifact"] = beir_cases(index, beir_retriever, data, pool, progress)
        refusal_sets["scifact"] = (sets["scifact"], beir_excluded_cases(index, beir_retriever, data, pool, progress))
    if openstax_dir is not None:
        lib_settings = library_settings(settings, work_dir / openstax_dir.name)
        index = open_library_index(openstax_dir / "library", lib_settings)
        retriever = Retriever(index, lib_settings.retrieval)
        questions = load_questions(openstax_dir / "questions.jsonl", split)
        sets["openstax"] = library_cases("openstax", index, retriever, questions, pool, progress=progress)
        refusal_sets["openstax"] = (
            sets["openstax"],
            library_cases("openstax", index, retriever, questions, pool, True, progress),
        )
    if golden is not None and golden_library is not None:
        answerable, unanswerable = golden_cases(golden, golden_library, settings, work_dir, pool, progress)
        sets["golden"] = answerable
        refusal_sets["golden"] = (answerable, unanswerable)
    cfg = settings.retrieval
    thresholds = RefusalFigures()
    for name, (ans, un) in refusal_sets.items():
        for key, value in _figures(name, ans, un, lambda c: _p_answer(c, ranker, refusal) < refusal.threshold).items():
            setattr(figures, key, value)
        rule = functools.partial(
            threshold_refused, ranker=ranker, min_dense=cfg.refusal_min_dense, min_coverage=cfg.refusal_min_coverage
        )
        for key, value in _figures(name, ans, un, rule).items():
            setattr(thresholds, key, value)
    figures.thresholds = thresholds if refusal_sets else None

    rows: list[AblationRow] = []
    linear = ranker.model_copy(update={"trees": None})
    for label, variant, drop, distinct in _variants(settings.retrieval.distinct_sections, ranker.trees is not None):
        model = linear if variant == "linear" else ranker
        row = AblationRow(name=label)
        for name, cases in sets.items():
            rankings = {
                c.qid: ranked_ids(c, "ranker" if model is linear else variant, model, drop, distinct) for c in cases
            }
            if name == "scifact":
                row.scifact_ndcg_at_10 = round(mean_ndcg(cases, rankings), 4)
            else:
                setattr(row, f"{name}_hit_at_1", round(hit_rate(cases, rankings, 1), 4))
                setattr(row, f"{name}_hit_at_5", round(hit_rate(cases, rankings, 5), 4))
        rows.append(row)
    ceiling_refusals: dict[str, CeilingRefusal] = {}
    if ceiling:
        rows.extend(AblationRow(name=label, **scores) for label, scores in ceiling_scores(sets, cfg.distinct_sections))
        ceiling_refusals = ceiling_refusal(refusal_sets, ranker)
    return AblationResult(
        rows=rows,
        refusal=figures,
        ceiling_refusal=ceiling_refusals,
        queries={name: len(cases) for name, cases in sets.items()},
        seconds=round(time.perf_counter() - started, 3),
    )


def markdown_table(result: AblationResult) -> str:
    """The README table."""
    head = "| ranking | SciFact nDCG@10 | openstax hit@1 | openstax hit@5 | golden hit@1 | golden hit@5 |"
    lines = [head, "| --- | --- | --- | --- | --- | --- |"]
    for row in result.rows:
        cells = [
            row.scifact_ndcg_at_10,
            row.openstax_hit_at_1,
            row.openstax_hit_at_5,
            row.golden_hit_at_1,
            row.golden_hit_at_5,
        ]
        lines.append(f"| {row.name.strip()} | " + " | ".join("—" if v is None else f"{v:.3f}" for v in cells) + " |")
    return "\n".join(lines)
