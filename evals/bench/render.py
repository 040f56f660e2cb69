"""The benchmark report as a rich table, Markdown, and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evals.bench.models import TARGET_P95_MS, BenchReport, ratio

if TYPE_CHECKING:
    from rich.table import Table


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def _status(passed: bool | None) -> str:
    return "not measured" if passed is None else ("PASS" if passed else "FAIL")


def table_rows(report: BenchReport) -> list[tuple[str, ...]]:
    """(section, measure, library, CoursePilot, baseline, ratio, target/result) rows shared by every renderer."""
    rows: list[tuple[str, ...]] = []
    for ours in (r for r in report.ingest if r.system == "coursepilot"):
        found = next((r for r in report.ingest if r.library == ours.library and r.system == "baseline"), None)
        other = found if found is not None and found.skipped is None and found.chunks else None
        tag = f"{ours.library} [{ours.vectors}]" + ("" if ours.primary else f" [{ours.embedder}, comparison]")
        rows.append(
            (
                "ingest",
                "first ingest, chunks/s",
                tag,
                f"{_fmt(ours.chunks_per_s)} ({ours.chunks or 0:,} ch, {ours.embedder})",
                f"{_fmt(other.chunks_per_s)} ({other.chunks or 0:,} ch, {other.embedder})" if other else "skipped",
                _fmt(ratio(ours.chunks_per_s, other.chunks_per_s if other else None), 2, "x"),
                (found.skipped or "") if found is not None else "",
            )
        )
        rows.append(
            (
                "ingest",
                "first ingest, pages/s",
                tag,
                f"{_fmt(ours.pages_per_s, 2)} ({ours.pages:,.0f} p, {ours.seconds or 0:.1f} s)",
                f"{_fmt(other.pages_per_s, 2)} ({other.seconds or 0:.1f} s)" if other else "skipped",
                _fmt(ratio(ours.pages_per_s, other.pages_per_s if other else None), 2, "x"),
                "",
            )
        )
        rows.append(
            (
                "ingest",
                "index on disk, MB per 1k chunks",
                tag,
                f"{_fmt(ours.disk_mb_per_1k_chunks, 2)} ({_fmt(ours.disk_mb, 1, ' MB')})",
                f"{_fmt(other.disk_mb_per_1k_chunks, 2)} ({_fmt(other.disk_mb, 1, ' MB')})" if other else "skipped",
                _fmt(ratio(ours.disk_mb_per_1k_chunks, other.disk_mb_per_1k_chunks if other else None), 2, "x"),
                "",
            )
        )
    for r in report.reingest:
        tag = f"{r.library} [{r.vectors}]"
        rebuild = _fmt(r.baseline_rebuild_s, 2, " s") if r.baseline_rebuild_s is not None else "skipped"
        rows.append(
            (
                "re-ingest",
                "unchanged",
                tag,
                _fmt(r.ours_unchanged_s, 2, " s"),
                rebuild,
                _fmt(r.unchanged_speedup, 1, "x"),
                r.note,
            )
        )
        rows.append(
            (
                "re-ingest",
                "one file edited",
                tag,
                f"{_fmt(r.ours_edit_s, 2, ' s')} ({r.ours_edit_chunks_embedded} embedded)",
                rebuild,
                _fmt(r.edit_speedup, 1, "x"),
                r.note,
            )
        )
    for lat in report.latency:
        rows.append(
            (
                "latency",
                f"ask p50 / p95 ({lat.mode})"
                if lat.sentence_vectors == "default"
                else f"ask p50 / p95 ({lat.mode}, sentences embedded)",
                f"{lat.library} [{lat.vectors}]",
                f"{lat.p50_ms:.1f} / {lat.p95_ms:.1f} ms ({lat.chunks:,} ch, {lat.queries} q)",
                "",
                "",
                "",
            )
        )
    if report.startup is not None:
        s = report.startup
        rows.append(
            (
                "start-up",
                s.label,
                "sample",
                f"{_fmt(s.seconds_to_first_answer, 1, ' s')}" + ("" if s.ok else f" FAILED: {s.error}"),
                "",
                "",
                f"health after {_fmt(s.seconds_to_health, 1, ' s')}" if s.seconds_to_health else "",
            )
        )
    rows.append(("memory", "ru_maxrss (whole run)", "", f"{report.memory.ru_maxrss_mb:,.0f} MB", "", "", ""))
    for phase, peak in report.memory.phases.items():
        rows.append(("memory", f"peak RSS: {phase}", "", f"{peak:,.0f} MB", "", "", ""))
    if report.memory.chroma_server_peak_mb:
        rows.append(
            ("memory", "Chroma server peak RSS", "", f"{report.memory.chroma_server_peak_mb:,.0f} MB", "", "", "")
        )
    for t in report.targets:
        rows.append(("target", t.name, t.basis, _fmt(t.measured, 1), "", t.target, _status(t.passed)))
    return rows


def render_table(report: BenchReport) -> Table:
    """The whole report as one rich Table (sections: ingest, re-ingest, latency, start-up, memory, targets)."""
    from rich.table import Table

    table = Table(
        title=f"CoursePilot benchmark ({report.cpus} cores, load {report.load_avg_start} -> {report.load_avg_end}, "
        f"{report.seconds:.0f} s, embedding {report.embedding.backend})",
        show_lines=False,
    )
    for column in ("measure", "library", "CoursePilot", "baseline", "ratio", "target / note"):
        table.add_column(column, overflow="fold")
    section = None
    for row in table_rows(report):
        if section is not None and row[0] != section:
            table.add_section()
        section = row[0]
        status = row[6]
        if status in ("PASS", "FAIL"):
            status = f"[{'green' if status == 'PASS' else 'red'}]{status}[/] ({row[5]})"
            table.add_row(row[1], row[2], row[3], row[4], "", status)
        else:
            table.add_row(*row[1:])
    return table


def render_growth(report: BenchReport) -> Table:
    from rich.table import Table

    sizes = sorted({int(k) for g in report.growth for k in g.values})
    table = Table(title="Cost growth across synthetic library sizes")
    table.add_column("metric")
    table.add_column("unit")
    for s in sizes:
        table.add_column(f"{s:,}", justify="right")
    table.add_column("factor", justify="right")
    for g in report.growth:
        table.add_row(g.metric, g.unit, *[_fmt(g.values.get(str(s)), 2) for s in sizes], _fmt(g.factor, 2, "x"))
    return table


def render_markdown(report: BenchReport) -> str:
    """The same figures as Markdown tables (for READMEs and reviews)."""
    lines = [
        "| section | measure | library | CoursePilot | baseline | ratio | target / result |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table_rows(report):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    sizes = sorted({int(k) for g in report.growth for k in g.values})
    if sizes:
        lines += ["", "| metric | unit | " + " | ".join(f"{s:,}" for s in sizes) + " | factor |"]
        lines.append("|---|---|" + "---|" * (len(sizes) + 1))
        for g in report.growth:
            cells = [_fmt(g.values.get(str(s)), 2) for s in sizes]
            lines.append(f"| {g.metric} | {g.unit} | " + " | ".join(cells) + f" | {_fmt(g.factor, 2, 'x')} |")
    return "\n".join(lines)


def write_plot(report: BenchReport, path: Path) -> Path:
    """PNG: ask latency (p50/p95, embedded and server) vs corpus size, and first-ingest chunks/s ours vs baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for mode, colour in (("embedded", "tab:blue"), ("server", "tab:orange")):
        runs = sorted(
            (r for r in report.latency if r.mode == mode and r.sentence_vectors == "default"), key=lambda r: r.chunks
        )
        if not runs:
            continue
        xs = [max(r.chunks, 1) for r in runs]
        left.plot(xs, [r.p50_ms for r in runs], "o-", color=colour, label=f"p50 {mode}")
        left.plot(xs, [r.p95_ms for r in runs], "s--", color=colour, label=f"p95 {mode}")
    left.axhline(TARGET_P95_MS, color="grey", linestyle=":", label=f"target p95 {TARGET_P95_MS:g} ms")
    left.set_xscale("log")
    left.set_xlabel("chunks in the index")
    left.set_ylabel("CoursePilot.ask latency (ms)")
    left.set_title("Query latency vs corpus size")
    left.legend(fontsize=8)
    left.grid(True, which="both", alpha=0.3)

    libraries = [r.library for r in report.ingest if r.system == "coursepilot" and r.primary]
    ours = [
        next(
            (
                r.chunks_per_s or 0.0
                for r in report.ingest
                if r.library == lib and r.system == "coursepilot" and r.primary
            ),
            0.0,
        )
        for lib in libraries
    ]
    theirs = [
        next((r.chunks_per_s or 0.0 for r in report.ingest if r.library == lib and r.system == "baseline"), 0.0)
        for lib in libraries
    ]
    vectors = [
        next((r.vectors for r in report.ingest if r.library == lib and r.system == "coursepilot"), "model")
        for lib in libraries
    ]
    xs_bar = np.arange(len(libraries))
    width = 0.38
    right.bar(xs_bar - width / 2, ours, width, label=f"CoursePilot ({report.embedding.backend})", color="tab:green")
    right.bar(xs_bar + width / 2, theirs, width, label="LangChain baseline (torch)", color="tab:grey")
    for i, v in enumerate(theirs):
        if v == 0.0:  # log axis: place the label in axes coordinates
            right.annotate(
                "baseline\nskipped",
                (float(xs_bar[i] + width / 2), 0.02),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    right.set_xticks(xs_bar)
    right.set_xticklabels([f"{lib}\n[{v} vectors]" for lib, v in zip(libraries, vectors, strict=True)], fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("first ingest, chunks/s (log)")
    right.set_title("Ingest throughput (proxy-vector rows exclude the model)")
    right.legend(fontsize=8)
    right.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"CoursePilot benchmark, {report.started_at:%Y-%m-%d %H:%M} UTC, {report.cpus} cores")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
