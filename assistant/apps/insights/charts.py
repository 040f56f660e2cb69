"""The report's charts, as inline SVG (matplotlib, styled by evals.html)."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.apps.insights.models import InsightsReport, PathCompletion
from evals.html import BLUE, INK, MUTED, pyplot, svg, text_label


def _short(text: str, limit: int = 48) -> str:
    """A chart label from learner or course text: one line, at most `limit` characters, shown literally."""
    text = " ".join(text.split())
    return text_label(text if len(text) <= limit else text[: limit - 1] + "…")


def _barh_svg(labels: Sequence[str], values: Sequence[float], xlabel: str, notes: Sequence[str] | None = None) -> str:
    """Horizontal bars, largest on top, the value (and a note) written at the end of each bar."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, max(1.8, 0.36 * len(labels) + 0.8)))
    try:
        if not labels:
            ax.text(0.5, 0.5, "no data in this period", ha="center", va="center", color=MUTED)
            ax.set_axis_off()
            return svg(fig)
        ys = list(range(len(labels)))[::-1]
        ax.barh(ys, list(values), height=0.62, color=BLUE)
        top = max(values) or 1
        for i, (y, v) in enumerate(zip(ys, values, strict=True)):
            note = f"  {notes[i]}" if notes else ""
            ax.text(v + top * 0.01, y, f"{v:g}{note}", va="center", fontsize=8.5, color=INK)
        ax.set_yticks(ys)
        ax.set_yticklabels([_short(label) for label in labels])
        ax.set_xlim(0, top * 1.3)
        ax.xaxis.grid(True, color="#eef0f3")
        ax.set_axisbelow(True)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(xlabel)
        return svg(fig)
    finally:
        plt.close(fig)


def _completion_svg(completion: PathCompletion) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    try:
        if not completion.playlists:
            ax.text(0.5, 0.5, "no saved paths in this period", ha="center", va="center", color=MUTED)
            ax.set_axis_off()
            return svg(fig)
        labels = [b.label for b in completion.distribution]
        counts = [b.playlists for b in completion.distribution]
        bars = ax.bar(range(len(labels)), counts, color=BLUE, width=0.7)
        for bar, n in zip(bars, counts, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, n, f"{n}", ha="center", va="bottom", fontsize=8.5, color=INK)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_xlabel("share of path steps done")
        ax.set_ylabel("saved paths")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(0, max(counts) * 1.2 + 0.5)
        return svg(fig)
    finally:
        plt.close(fig)


def charts(report: InsightsReport) -> dict[str, str]:
    gaps = report.content_gaps.clusters[:12]
    demand = report.demand
    return {
        "gap-clusters": _barh_svg(
            [c.label for c in gaps],
            [c.count for c in gaps],
            "questions refused or answered with low confidence",
            [f"({c.learners} learner{'s' if c.learners != 1 else ''})" for c in gaps],
        ),
        "skills": _barh_svg(
            [s.skill for s in demand.skills[:12]], [s.questions for s in demand.skills[:12]], "questions"
        ),
        "courses": _barh_svg(
            [c.title for c in demand.courses[:12]],
            [c.questions for c in demand.courses[:12]],
            "answered questions citing the course",
        ),
        "goals": _barh_svg(
            [g.goal for g in demand.goals[:10]], [g.playlists for g in demand.goals[:10]], "saved paths"
        ),
        "path-completion": _completion_svg(demand.path_completion),
    }
