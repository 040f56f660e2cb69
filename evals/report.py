"""report.md (tables) and a self-contained report.html (inline CSS, inline SVG charts; no network)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment

from evals.metrics import HIGHER_IS_BETTER, percentile

if TYPE_CHECKING:
    from evals.runner import CaseResult, RunSummary

__all__ = ["latency_chart_svg", "metrics_chart_svg", "render_html", "render_markdown", "write_reports"]

_BLUE, _GREY, _RED, _INK = "#2563eb", "#b8c0cc", "#dc2626", "#1f2937"


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


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns:(?:dc|cc|rdf)="[^"]*"', "", text)
    return text.strip()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: small, selectable, styled by the page's font
            "font.family": "sans-serif",
            "font.size": 10,
            "axes.edgecolor": "#d1d5db",
            "axes.labelcolor": _INK,
            "xtick.color": _INK,
            "ytick.color": _INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def metrics_chart_svg(summary: RunSummary) -> str:
    """Horizontal bars per metric; baseline bars beside them when a baseline is given; regressions red."""
    plt = _pyplot()
    names = _chart_metrics(summary)
    comparison = summary.baseline
    fig_h = max(2.0, 0.42 * len(names) * (1.6 if comparison else 1.0) + 0.8)
    fig, ax = plt.subplots(figsize=(7.5, fig_h))
    try:
        if not names:
            ax.text(0.5, 0.5, "no metrics", ha="center", va="center")
            ax.set_axis_off()
            return _svg(fig)
        ys = list(range(len(names)))[::-1]
        height = 0.38 if comparison else 0.6
        current = [summary.metrics.get(n) or 0.0 for n in names]
        regressions = set(comparison.regressions) if comparison else set()
        colors = [_RED if n in regressions else _BLUE for n in names]
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
                color=_RED if n in regressions else _INK,
            )
        if comparison:
            base = [(comparison.metrics[n].baseline if n in comparison.metrics else None) or 0.0 for n in names]
            ax.barh([y - offset for y in ys], base, height=height, color=_GREY, label=f"{comparison.name} (baseline)")
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
        return _svg(fig)
    finally:
        plt.close(fig)


def latency_chart_svg(latencies_ms: Sequence[float]) -> str:
    """Histogram of per-case latency with p50/p95 markers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    try:
        if not latencies_ms:
            ax.text(0.5, 0.5, "no timed cases", ha="center", va="center")
            ax.set_axis_off()
            return _svg(fig)
        bins = max(1, min(20, len(latencies_ms)))
        ax.hist(list(latencies_ms), bins=bins, color=_BLUE, edgecolor="white")
        for q, style in ((50, "--"), (95, ":")):
            value = percentile(latencies_ms, q)
            ax.axvline(value, color=_INK, linestyle=style, linewidth=1)
            ax.text(value, ax.get_ylim()[1] * 0.95, f" p{q} {value:,.0f} ms", fontsize=8.5, va="top")
        ax.set_xlabel("latency per case (ms)")
        ax.set_ylabel("cases")
        ax.yaxis.get_major_locator().set_params(integer=True)
        return _svg(fig)
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

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Eval {{ s.name }} · CoursePilot</title>
<style>
  :root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --blue:#2563eb; --red:#dc2626; --green:#15803d; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--ink); font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
  main { max-width:1080px; margin:0 auto; padding:32px 24px 64px; }
  h1 { font-size:26px; margin:0 0 4px; letter-spacing:-.01em; }
  h2 { font-size:18px; margin:36px 0 12px; }
  .sub { color:var(--muted); margin:0 0 20px; }
  .card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 20px; }
  .cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:12px; margin:20px 0; }
  .stat .n { font-size:24px; font-weight:650; } .stat .l { color:var(--muted); font-size:13px; }
  .bad { color:var(--red); } .good { color:var(--green); }
  dl.config { display:grid; grid-template-columns:max-content 1fr; gap:4px 18px; margin:0; font-size:14px; }
  dl.config dt { color:var(--muted); } dl.config dd { margin:0; font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; word-break:break-all; }
  table { width:100%; border-collapse:collapse; background:#fff; font-size:14px; }
  th, td { text-align:left; padding:8px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; background:#fbfcfd; }
  td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
  tr.regression td { background:#fef2f2; }
  .tag { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; background:#fee2e2; color:var(--red); }
  .type { display:inline-block; padding:0 6px; border-radius:4px; font-size:11px; background:#eef2ff; color:#3730a3; }
  figure.chart { margin:0; background:#fff; border:1px solid var(--line); border-radius:10px; padding:14px; }
  figure.chart svg { width:100%; height:auto; display:block; }
  figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
  .answer { white-space:pre-wrap; max-height:12em; overflow:auto; font-size:13px; }
  ul.locs { margin:0; padding-left:16px; font-size:13px; } ul.locs li { margin:2px 0; }
  ul.locs li.hit { color:var(--green); } ul.locs li.miss { color:var(--muted); }
  .reason { color:var(--red); font-size:13px; }
  .wrap { overflow-x:auto; border:1px solid var(--line); border-radius:10px; }
</style>
</head>
<body>
<main>
<header>
  <h1>Eval run <code>{{ s.name }}</code></h1>
  <p class="sub">{{ s.created_at }} · dataset <code>{{ s.dataset.path }}</code> ({{ s.dataset.cases }} cases, fingerprint <code>{{ s.dataset.fingerprint[:12] }}</code>)</p>
  <div class="cards">
    <div class="card stat"><div class="n">{{ pass_rate }}</div><div class="l">pass rate</div></div>
    <div class="card stat"><div class="n good">{{ s.counts.passed }}</div><div class="l">passed</div></div>
    <div class="card stat"><div class="n {{ 'bad' if s.counts.failed else '' }}">{{ s.counts.failed }}</div><div class="l">failed ({{ s.counts.errors }} errors)</div></div>
    <div class="card stat"><div class="n">{{ s.counts.answer }}/{{ s.counts.find }}/{{ s.counts.playlist }}</div><div class="l">answer / find / playlist</div></div>
    {% if s.baseline %}<div class="card stat"><div class="n {{ 'bad' if s.baseline.regressions else 'good' }}">{{ s.baseline.regressions|length }}</div><div class="l">regressions vs <code>{{ s.baseline.name }}</code></div></div>{% endif %}
  </div>
  <div class="card"><dl class="config">{% for k, v in config %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl></div>
</header>

<section>
  <h2>Metrics</h2>
  <figure class="chart" id="chart-metrics" data-chart="metrics">
    {{ metrics_svg|safe }}
    <figcaption>Scores in [0, 1] (higher is better){% if s.baseline %}; grey bars: baseline <code>{{ s.baseline.name }}</code>; red hatched: regression (drop &gt; 0.02){% endif %}.</figcaption>
  </figure>
  <p></p>
  <div class="wrap"><table id="metrics-table">
    <thead><tr><th>Metric</th><th class="num">Value</th><th class="num">Cases</th>{% if s.baseline %}<th class="num">Baseline</th><th class="num">Δ</th>{% endif %}<th>Note</th></tr></thead>
    <tbody>
    {% for r in rows %}<tr class="{{ 'regression' if r.regression else '' }}" data-metric="{{ r.name }}">
      <td><code>{{ r.name }}</code> <span title="{{ 'higher is better' if r.direction == '↑' else 'lower is better' }}">{{ r.direction }}</span></td>
      <td class="num">{{ r.value }}</td><td class="num">{{ r.cases }}</td>
      {% if s.baseline %}<td class="num">{{ r.baseline }}</td><td class="num">{{ r.delta }}</td>{% endif %}
      <td>{% if r.regression %}<span class="tag">regression</span> {{ r.reason }}{% else %}{{ r.note or r.reason }}{% endif %}</td>
    </tr>{% endfor %}
    </tbody>
  </table></div>
</section>

<section>
  <h2>Latency</h2>
  <figure class="chart" id="chart-latency" data-chart="latency">
    {{ latency_svg|safe }}
    <figcaption>Per-case latency of the CoursePilot call (judge time excluded). p50 {{ p50 }}, p95 {{ p95 }}.</figcaption>
  </figure>
</section>

<section>
  <h2>Failing cases ({{ failing|length }})</h2>
  {% if failing %}
  <div class="wrap"><table id="failing-cases">
    <thead><tr><th>Case</th><th>Question</th><th>Answer</th><th>Expected</th><th>Cited (✓ = expected location)</th><th>Reason</th></tr></thead>
    <tbody>
    {% for f in failing %}<tr data-case="{{ f.id }}">
      <td><code>{{ f.id }}</code><br><span class="type">{{ f.type }}</span>{% if f.refused %} <span class="type">refused</span>{% endif %}</td>
      <td>{{ f.question }}</td>
      <td><div class="answer">{{ f.answer }}</div></td>
      <td><ul class="locs">{% for e in f.expected %}<li>{{ e }}</li>{% else %}<li>–</li>{% endfor %}</ul></td>
      <td><ul class="locs">{% for c in f.cited %}<li class="{{ 'hit' if c.startswith('✓') else 'miss' if c.startswith('✗') else '' }}">{{ c }}</li>{% else %}<li>–</li>{% endfor %}</ul></td>
      <td class="reason">{{ f.reason }}</td>
    </tr>{% endfor %}
    </tbody>
  </table></div>
  {% else %}<p class="card good">All cases passed.</p>{% endif %}
</section>
</main>
</body>
</html>
"""


def render_html(summary: RunSummary, results: Sequence[CaseResult]) -> str:
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    env = Environment(autoescape=True)
    template = env.from_string(_TEMPLATE)
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
