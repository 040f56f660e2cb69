"""The in-sample ceilings of `coursepilot eval ablation --ceiling` (evals.ceiling): on synthetic cases where one
signal separates the gold, and end to end on a real tiny library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import make_settings, small_library, synthetic_case

from assistant.retrieval.features import FEATURES
from assistant.retrieval.ranker import shipped_ranker
from evals.ceiling import CEILING_RANKERS, ceiling_scores
from evals.ranking import QueryCase, hit_rate, ranked_ids


def _case(qid: str, rng: np.random.Generator, gold_at: int, signal: str) -> QueryCase:
    """Ten candidates with random features; the gold one alone has `signal` high and every other feature low."""
    features = rng.normal(0.0, 1.0, size=(10, len(FEATURES)))
    features[gold_at] -= 3.0
    features[:, FEATURES.index(signal)] = 0.0
    features[gold_at, FEATURES.index(signal)] = 2.0
    return synthetic_case(qid, features, gold_at)


def test_the_in_sample_ranker_finds_a_signal_the_shipped_model_does_not_use() -> None:
    rng = np.random.default_rng(0)
    cases = [_case(f"q{i}", rng, int(rng.integers(1, 10)), "log_length") for i in range(40)]
    shipped = hit_rate(cases, {c.qid: ranked_ids(c, "ranker", shipped_ranker()) for c in cases}, 1)
    (label, scores), _ = ceiling_scores({"openstax": cases}, distinct=0)
    assert label == CEILING_RANKERS[0][0]
    assert scores["openstax_hit_at_1"] == 1.0 and scores["openstax_hit_at_5"] == 1.0
    assert shipped < 0.5  # the shipped model reads the other signals, which point away from the gold


def test_ablation_with_ceiling_runs_on_a_tiny_library(tmp_path: Path) -> None:
    from evals.ablation import run_ablation

    bench = tmp_path / "bench"
    small_library(bench)
    questions = [
        ("What does the GROW model stand for?", "coaching-and-mentoring", "02-the-grow-model.pptx", "", [1, 9]),
        (
            "How is coaching different from mentoring?",
            "coaching-and-mentoring",
            "01-coaching-versus-mentoring.md",
            "Three ways to help someone grow",
            None,
        ),
        ("What does SBI stand for in feedback?", "giving-feedback", "02-the-sbi-model.pdf", "The three parts", None),
        (
            "Why do people avoid giving feedback?",
            "giving-feedback",
            "01-why-feedback-matters.md",
            "Why people avoid giving feedback",
            None,
        ),
    ]
    with open(bench / "questions.jsonl", "w", encoding="utf-8") as fh:
        for i, (q, course, file, section, slides) in enumerate(questions):
            row = {"id": f"q{i}", "q": q, "course": course, "file": file, "section": section, "split": "test"}
            if slides:
                row["slides"] = slides
            fh.write(json.dumps(row) + "\n")
    settings = make_settings(tmp_path)
    result = run_ablation(settings, bench, None, None, None, tmp_path / "w", ceiling=True)
    rows = {r.name: r for r in result.rows}
    for label, _ in CEILING_RANKERS:
        row = rows[label]
        assert row.openstax_hit_at_1 is not None and row.openstax_hit_at_1 >= 0.5 and row.scifact_ndcg_at_10 is None
    bound = result.ceiling_refusal["openstax"]
    assert 0.0 <= bound.false_refusal_rate <= 0.25 and 0.0 <= bound.auc <= 1.0
    without = run_ablation(settings, bench, None, None, None, tmp_path / "w")
    assert not without.ceiling_refusal and len(without.rows) == len(result.rows) - len(CEILING_RANKERS)
