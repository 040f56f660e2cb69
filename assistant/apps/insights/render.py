"""The report as one self-contained HTML page: the package template insights.html on the shared layout."""

from __future__ import annotations

from pathlib import Path

from assistant.apps.insights.charts import charts
from assistant.apps.insights.models import InsightsReport
from evals.html import environment


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def render_html(report: InsightsReport) -> str:
    template = environment("assistant.apps.insights").get_template("insights.html")
    return template.render(r=report, t=report.totals, charts=charts(report), pct=_pct)


def write_html(report: InsightsReport, path: Path) -> Path:
    """A self-contained HTML page (inline CSS and SVG charts, no network) with charts tagged data-chart."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
