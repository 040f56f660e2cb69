"""The eval harness's data types: one case's result, the run summary and its comparison with a baseline.

The runner writes them (results.jsonl, summary.json) and the report reads them; neither imports the other.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from evals.metrics import MetricValue

__all__ = ["BaselineComparison", "CaseResult", "MetricDelta", "RunSummary"]


class CaseResult(BaseModel):
    """One line of results.jsonl."""

    id: str
    type: str
    question: str
    answer: str = ""
    refused: bool = False
    cited: list[dict[str, Any]] = Field(default_factory=list)
    retrieved: list[dict[str, Any]] = Field(default_factory=list)
    expected: Any = None
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    latency_ms: float | None = None
    passed: bool = False
    failure_reason: str | None = None
    error: str | None = None


class MetricDelta(BaseModel):
    current: float | None
    baseline: float | None
    delta: float | None
    higher_is_better: bool
    regression: bool = False
    reason: str = ""


class BaselineComparison(BaseModel):
    name: str
    path: str
    created_at: str | None = None
    metrics: dict[str, MetricDelta]
    regressions: list[str] = Field(default_factory=list)


class RunSummary(BaseModel):
    """summary.json."""

    name: str
    created_at: str
    dataset: dict[str, Any]
    config: dict[str, Any]
    counts: dict[str, int]
    metrics: dict[str, float | None]
    metric_cases: dict[str, int] = Field(default_factory=dict, description="Cases each metric was averaged over.")
    notes: dict[str, str] = Field(default_factory=dict, description="Reasons for run-level metrics.")
    problems: list[str] = Field(default_factory=list, description="Dataset rows left out, each with its reason.")
    baseline: BaselineComparison | None = None
    run_dir: str
    files: dict[str, str] = Field(default_factory=dict)

    @property
    def regressions(self) -> list[str]:
        return self.baseline.regressions if self.baseline else []
