"""report.md (tables) and a self-contained report.html (inline CSS, inline SVG charts; no network).

The HTML is the package template evals/templates/eval_report.html on the shared layout (evals/html.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.html import BLUE, GREY, INK, RED, environment, pyplot, svg
from evals.metrics import HIGHER_IS_BETTER, percentile
from evals.types import CaseResult, RunSummary

__all__ = ["latency_chart_svg", "metrics_chart_svg", "render_html", "render_markdown", "write_reports"]


def _fmt(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if name.endswith("_ms"):
        return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"
    if name == "prerequisite_violations":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _fmt_delta(name: str, delta: float | None) -> str:
    if delta is None:
        return ""
    if name.endswith("_ms"):
        return f"{delta:+,.0f} ms"
    return f"{delta:+.3f}"


def _expected_labels(result: CaseResult) -> list[str]:
    if isinstance(result.expected, list):
        labels = []
        for e in result.expected:
            parts = [e.get("course", "?")]
            if e.get("module"):
                parts.append(e["module"])
            if e.get("section"):
                parts.append(e["section"])
            text = " › ".join(parts)
            labels.append(f"{text} (p. {', '.join(map(str, e['pages']))})" if e.get("pages") else text)
        return labels
    if isinstance(result.expected, dict):
        exp = result.expected
        out = []
        if exp.get("must_include"):
            out.append("include: " + ", ".join(exp["must_include"]))
        if exp.get("must_exclude"):
            out.append("exclude: " + ", ".join(exp["must_exclude"]))
        if exp.get("order"):
            out.append("order: " + ", ".join(f"{a} → {b}" for a, b in exp["order"]))
        if exp.get("minutes"):
            out.append(f"budget: {exp['minutes']} min")
        return out
    return []


def _cited_labels(result: CaseResult) -> list[str]:
    labels = []
    for c in result.cited:
        label = str(c.get("label") or c.get("item_id") or c.get("course"))
        if "relevant" in c:
            label = ("✓ " if c["relevant"] else "✗ ") + label
        labels.append(label)
    return labels


def _chart_metrics(summary: RunSummary) -> list[str]:
    """Metrics in [0, 1] shown in the bar chart (counts and latency have their own scale)."""
    names = [n for n in summary.metrics if n in HIGHER_IS_BETTER and summary.metrics[n] is not None]
    if summary.baseline:
        names += [
            n
            for n, d in summary.baseline.metrics.items()
            if n in HIGHER_IS_BETTER and n not in names and d.baseline is not None
        ]
    return names


# --------------------------------------------------------------------------------------------- charts


def metrics_chart_svg(summary: RunSummary) -> str:
    """Horizontal bars per metric; baseline bars beside them when a baseline is given; regressions red."""
    plt = pyplot()
    names = _chart_metrics(summary)
    comparison = summary.baseline
    fig_h = max(2.0, 0.42 * len(names) * (1.6 if comparison else 1.0) + 0.8)
    fig, ax = plt.subplots(figsize=(7.5, fig_h))
    try:
        if not names:
            ax.text(0.5, 0.5, "no metrics", ha="center", va="center")
            ax.set_axis_off()
            return svg(fig)
        ys = list(range(len(names)))[::-1]
        height = 0.38 if comparison else 0.6
        current = [summary.metrics.get(n) or 0.0 for n in names]
        regressions = set(comparison.regressions) if comparison else set()
        colors = [RED if n in regressions else BLUE for n in names]
        offset = height / 2 if comparison else 0.0
        bars = ax.barh(
            [y + offset for y in ys], current, height=height, color=colors, label=f"{summary.name} (this run)"
        )
        for bar, n in zip(bars, names, strict=True):
            if n in regressions:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
        for y, v, n in zip(ys, current, names, strict=True):
            label = _fmt(n, summary.metrics.get(n)) + ("  ▼ regression" if n in regressions else "")
            ax.text(
                min(v, 1.0) + 0.01,
                y + offset,
                label,
                va="center",
                fontsize=8.5,
                color=RED if n in regressions else INK,
            )
        if comparison:
            base = [(comparison.metrics[n].baseline if n in comparison.metrics else None) or 0.0 for n in names]
            ax.barh([y - offset for y in ys], base, height=height, color=GREY, label=f"{comparison.name} (baseline)")
            for y, v, n in zip(ys, base, names, strict=True):
                ax.text(min(v, 1.0) + 0.01, y - offset, _fmt(n, v), va="center", fontsize=8, color="#6b7280")
        ax.set_yticks(ys)
        ax.set_yticklabels(names)
        ax.set_xlim(0, 1.22)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.xaxis.grid(True, color="#eef0f3")
        ax.set_axisbelow(True)
        ax.set_xlabel("score (higher is better)")
        if comparison:
            ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False, fontsize=8.5)
        return svg(fig)
    finally:
        plt.close(fig)


def latency_chart_svg(latencies_ms: Sequence[float]) -> str:
    """Histogram of per-case latency with p50/p95 markers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    try:
        if not latencies_ms:
            ax.text(0.5, 0.5, "no timed cases", ha="center", va="center")
            ax.set_axis_off()
            return svg(fig)
        bins = max(1, min(20, len(latencies_ms)))
        ax.hist(list(latencies_ms), bins=bins, color=BLUE, edgecolor="white")
        for q, style in ((50, "--"), (95, ":")):
            value = percentile(latencies_ms, q)
            ax.axvline(value, color=INK, linestyle=style, linewidth=1)
            ax.text(value, ax.get_ylim()[1] * 0.95, f" p{q} {value:,.0f} ms", fontsize=8.5, va="top")
        ax.set_xlabel("latency per case (ms)")
        ax.set_ylabel("cases")
        ax.yaxis.get_major_locator().set_params(integer=True)
        return svg(fig)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------- rows


def _metric_rows(summary: RunSummary) -> list[dict[str, Any]]:
    rows = []
    comparison = summary.baseline
    names = list(summary.metrics)
    if comparison:
        names += [n for n in comparison.metrics if n not in names]
    for name in names:
        delta = comparison.metrics.get(name) if comparison else None
        rows.append(
            {
                "name": name,
                "value": _fmt(name, summary.metrics.get(name)),
                "cases": summary.metric_cases.get(name, ""),
                "direction": "↑" if name in HIGHER_IS_BETTER else "↓",
                "note": summary.notes.get(name, ""),
                "baseline": _fmt(name, delta.baseline) if delta else "",
                "delta": _fmt_delta(name, delta.delta) if delta else "",
                "regression": bool(delta and delta.regression),
                "reason": delta.reason if delta else "",
            }
        )
    return rows


def _config_rows(summary: RunSummary) -> list[tuple[str, str]]:
    config = summary.config
    retrieval = config.get("retrieval", {})
    fusion = retrieval.get("fusion", "?")
    fusion_detail = (
        f"{fusion} (dense weight {retrieval.get('dense_weight')})"
        if fusion == "weighted"
        else f"{fusion} (k={retrieval.get('rrf_k')})"
    )
    chat = config.get("chat", {})
    embedding = config.get("embedding", {})
    return [
        ("Collection", str(config.get("collection", ""))),
        ("Fusion", fusion_detail),
        ("Evidence k / candidates", f"{retrieval.get('k')} / {retrieval.get('candidates')}"),
        (
            "Refusal thresholds",
            f"dense ≥ {retrieval.get('refusal_min_dense')}, coverage ≥ {retrieval.get('refusal_min_coverage')}",
        ),
        (
            "Embedding",
            f"{embedding.get('provider')}: {embedding.get('model')}"
            + (
                f" ({embedding['backend']})"
                if embedding.get("provider") == "local" and embedding.get("backend")
                else ""
            ),
        ),
        ("Chat", f"{chat.get('provider')}" + (f": {chat.get('model')}" if chat.get("model") else " (extractive)")),
        ("LLM judge", str(config.get("judge") or "off")),
    ]


def _failing(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "type": r.type,
            "question": r.question,
            "answer": r.answer or ("(error)" if r.error else "(empty)"),
            "refused": r.refused,
            "expected": _expected_labels(r),
            "cited": _cited_labels(r),
            "reason": r.failure_reason or "",
        }
        for r in results
        if not r.passed
    ]


# --------------------------------------------------------------------------------------------- markdown


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(summary: RunSummary, results: Sequence[CaseResult]) -> str:
    lines = [
        f"# Eval run `{summary.name}`",
        "",
        f"- **Date:** {summary.created_at}",
        f"- **Dataset:** `{summary.dataset.get('path')}` ({summary.dataset.get('cases')} cases, "
        f"fingerprint `{str(summary.dataset.get('fingerprint', ''))[:12]}`)",
        f"- **Cases:** {summary.counts.get('passed', 0)} passed, {summary.counts.get('failed', 0)} failed, "
        f"{summary.counts.get('errors', 0)} errors ({summary.counts.get('answer', 0)} answer, "
        f"{summary.counts.get('find', 0)} find, {summary.counts.get('playlist', 0)} playlist)",
    ]
    lines += [f"- **{k}:** {v}" for k, v in _config_rows(summary)]
    if summary.baseline:
        regs = ", ".join(summary.baseline.regressions) or "none"
        lines.append(f"- **Baseline:** `{summary.baseline.name}`: regressions: {regs}")
    lines += ["", "## Metrics", ""]
    if summary.baseline:
        lines += ["| Metric | Value | Cases | Baseline | Δ | |", "|---|---:|---:|---:|---:|---|"]
        for row in _metric_rows(summary):
            flag = f"**REGRESSION** ({row['reason']})" if row["regression"] else _md(row["reason"])
            lines.append(
                f"| {row['name']} {row['direction']} | {row['value']} | {row['cases']} | {row['baseline']} | "
                f"{row['delta']} | {flag} |"
            )
    else:
        lines += ["| Metric | Value | Cases | Note |", "|---|---:|---:|---|"]
        for row in _metric_rows(summary):
            lines.append(f"| {row['name']} {row['direction']} | {row['value']} | {row['cases']} | {_md(row['note'])} |")
    failing = _failing(results)
    lines += ["", f"## Failing cases ({len(failing)})", ""]
    if failing:
        lines += ["| Case | Question | Answer | Expected | Cited | Reason |", "|---|---|---|---|---|---|"]
        for row in failing:
            lines.append(
                f"| {_md(row['id'])} ({row['type']}) | {_md(row['question'])} | {_md(_clip(row['answer'], 300))} | "
                f"{_md('; '.join(row['expected']) or '-')} | {_md('; '.join(row['cited']) or '-')} | {_md(row['reason'])} |"
            )
    else:
        lines.append("All cases passed.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- html


def render_html(summary: RunSummary, results: Sequence[CaseResult]) -> str:
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    template = environment().get_template("eval_report.html")
    return template.render(
        s=summary,
        pass_rate=_fmt("pass_rate", summary.metrics.get("pass_rate")),
        config=_config_rows(summary),
        rows=_metric_rows(summary),
        metrics_svg=metrics_chart_svg(summary),
        latency_svg=latency_chart_svg(latencies),
        p50=_fmt("latency_p50_ms", summary.metrics.get("latency_p50_ms")),
        p95=_fmt("latency_p95_ms", summary.metrics.get("latency_p95_ms")),
        failing=_failing(results),
    )


def write_reports(summary: RunSummary, results: Sequence[CaseResult], run_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into run_dir."""
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    md_path.write_text(render_markdown(summary, results), encoding="utf-8")
    html_path.write_text(render_html(summary, results), encoding="utf-8")
    return md_path, html_path
