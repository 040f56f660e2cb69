"""Gates on an eval run: deltas and regressions against a baseline run, and `--fail-under` thresholds."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.core.errors import CoursePilotError
from evals.metrics import HIGHER_IS_BETTER, METRIC_NAMES
from evals.types import BaselineComparison, MetricDelta, RunSummary

__all__ = ["LATENCY_REGRESSION", "REGRESSION_DROP", "check_thresholds", "compare_with_baseline", "load_summary"]

# Baseline regressions: a drop larger than this on a higher-is-better metric ...
REGRESSION_DROP = 0.02
# ... or p95 latency up by more than this fraction.
LATENCY_REGRESSION = 0.25


def compare_with_baseline(
    current: Mapping[str, float | None], baseline: Mapping[str, Any], name: str, path: Path | str
) -> BaselineComparison:
    """Per-metric deltas against a baseline summary.json and the regressions among them.

    Regression: a higher-is-better metric drops by more than 0.02; latency p95 rises by more than 25%;
    the mean prerequisite violations per playlist rise by more than 0.02.
    """
    base_metrics: Mapping[str, Any] = baseline.get("metrics", {}) or {}
    deltas: dict[str, MetricDelta] = {}
    regressions: list[str] = []
    for metric in METRIC_NAMES:
        if metric not in current and metric not in base_metrics:
            continue
        now, then = current.get(metric), base_metrics.get(metric)
        higher = metric in HIGHER_IS_BETTER
        delta = None if now is None or then is None else round(now - then, 4)
        regression, reason = False, ""
        if delta is not None and now is not None and then is not None:
            if higher and delta < -REGRESSION_DROP - 1e-9:
                regression, reason = True, f"dropped by {-delta:.3f} (> {REGRESSION_DROP})"
            elif metric == "latency_p95_ms" and then > 0 and now > then * (1 + LATENCY_REGRESSION):
                regression, reason = True, f"p95 latency up {100 * (now / then - 1):.0f}% (> {LATENCY_REGRESSION:.0%})"
            elif metric == "prerequisite_violations" and delta > REGRESSION_DROP + 1e-9:
                regression, reason = True, f"violations per playlist up by {delta:.3f}"
        elif then is not None and now is None:
            reason = "not measured in this run"
        deltas[metric] = MetricDelta(
            current=now, baseline=then, delta=delta, higher_is_better=higher, regression=regression, reason=reason
        )
        if regression:
            regressions.append(metric)
    return BaselineComparison(
        name=name, path=str(path), created_at=baseline.get("created_at"), metrics=deltas, regressions=regressions
    )


def check_thresholds(summary: RunSummary | Mapping[str, Any], thresholds: Sequence[str]) -> list[str]:
    """Failures of thresholds like 'hit@5=0.8' (at least, for higher-is-better metrics; at most for
    latency/violations), or with an explicit operator: 'hit@5>=0.8', 'latency_p95_ms<=1500'.

    Unknown metric names raise CoursePilotError listing the valid ones; a metric with no value in this run
    (no applicable cases) is a failure.
    """
    values: Mapping[str, Any] = summary.metrics if isinstance(summary, RunSummary) else summary.get("metrics", {})
    failures: list[str] = []
    for spec in thresholds:
        match = re.fullmatch(r"\s*([A-Za-z0-9@_.]+)\s*(>=|<=|=)\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*", spec)
        if match is None:
            raise CoursePilotError(
                f"Threshold '{spec}' is not of the form METRIC=VALUE.", "write e.g. hit@5=0.8 or latency_p95_ms<=2000."
            )
        name, op, raw = match.groups()
        if name not in METRIC_NAMES:
            raise CoursePilotError(
                f"Unknown metric '{name}' in threshold '{spec}'.", f"use one of: {', '.join(METRIC_NAMES)}."
            )
        limit = float(raw)
        if op == "=":
            op = ">=" if name in HIGHER_IS_BETTER else "<="
        value = values.get(name)
        if value is None:
            failures.append(f"{name}: no value in this run (no applicable cases); required {op} {limit:g}")
        elif op == ">=" and value < limit:
            failures.append(f"{name} = {value:g} is below the required {limit:g}")
        elif op == "<=" and value > limit:
            failures.append(f"{name} = {value:g} is above the allowed {limit:g}")
    return failures


def load_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CoursePilotError(f"Baseline summary {path} does not exist.", _existing_runs_hint(path.parent.parent))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CoursePilotError(
            f"Baseline summary {path} is not valid JSON ({exc.msg}).", "re-run the baseline."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise CoursePilotError(f"Baseline summary {path} has no 'metrics'.", "re-run the baseline.")
    return data


def _existing_runs_hint(runs_dir: Path) -> str:
    runs = sorted(p.parent.name for p in runs_dir.glob("*/summary.json")) if runs_dir.is_dir() else []
    if runs:
        return f"pass the name of a finished run in {runs_dir}: {', '.join(runs)}."
    return f"finish a run first (e.g. `coursepilot eval run --name baseline`); {runs_dir} has no finished runs."
