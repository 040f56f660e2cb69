"""`coursepilot bench` and `python -m evals.bench`: run, then print a table or JSON, write a plot and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from assistant.core.settings import Settings
from evals.bench.render import render_growth, render_markdown, render_table, write_plot
from evals.bench.run import run_bench
from evals.bench.startup import UILauncher

# The smoke run CI executes: one small synthetic library, a small text pool, no server or UI.
QUICK: dict[str, Any] = {
    "sizes": (300,),
    "queries": 10,
    "include_server": False,
    "include_ui": False,
    "pool_docs": 60,
}


def bench_command(
    settings: Settings,
    *,
    sizes: Sequence[int] | None = None,
    queries: int | None = None,
    quick: bool = False,
    include_server: bool | None = None,
    include_ui: bool | None = None,
    work_dir: Path | None = None,
    model_max_chunks: int = 0,
    baseline_max_chunks: int = 100_000,
    pool_docs: int | None = None,
    extra_backends: Sequence[str] = (),
    as_json: bool = False,
    json_path: Path | None = None,
    plot: Path | None = None,
    markdown: bool = False,
    ui_launcher: UILauncher | None = None,
) -> int:
    """What `coursepilot bench` and `python -m evals.bench` run: the benchmark, then a table (or JSON on stdout),
    optionally a JSON file, a plot and the README's Markdown.

    Returns 0 when every measured target passes, 1 otherwise (an unmeasured target does not fail the run).
    """
    from rich.console import Console

    chosen: dict[str, Any] = dict(QUICK) if quick else {}
    for key, value in (
        ("sizes", tuple(sizes) if sizes else None),
        ("queries", queries),
        ("include_server", include_server),
        ("include_ui", include_ui),
        ("pool_docs", pool_docs),
    ):
        if value is not None:
            chosen[key] = value
    err = Console(stderr=True)
    report = run_bench(
        settings,
        work_dir=work_dir,
        progress=lambda msg: err.print(f"{datetime.now():%H:%M:%S} {msg}", markup=False, highlight=False),
        model_max_chunks=model_max_chunks,
        baseline_max_chunks=baseline_max_chunks,
        extra_backends=tuple(extra_backends),
        ui_launcher=ui_launcher,
        **chosen,
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(report.model_dump_json(indent=2))
    if plot is not None:
        write_plot(report, plot)
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        out = Console(width=200)
        out.print(render_table(report))
        if report.growth:
            out.print(render_growth(report))
        for note in report.notes:
            out.print(f"Note: {note}", markup=False, highlight=False)
        if plot is not None:
            out.print(f"Plot: {plot}", markup=False, highlight=False)
        if markdown:
            print(render_markdown(report))
    return 0 if all(t.passed is not False for t in report.targets) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m evals.bench`: the same run as `coursepilot bench`, with every knob (settings from env/.env)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m evals.bench", description="CoursePilot benchmark against a plain LangChain pipeline."
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="synthetic sizes in chunks")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the report here")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--no-ui", action="store_true")
    parser.add_argument("--model-max-chunks", type=int, default=0)
    parser.add_argument("--baseline-max-chunks", type=int, default=100_000)
    parser.add_argument("--pool-docs", type=int, default=None)
    parser.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None, help="CoursePilot's backend")
    parser.add_argument("--extra-backends", nargs="*", default=["torch"], help="extra sample-library ingest rows")
    args = parser.parse_args(argv)

    settings = Settings()
    if args.backend:
        settings = settings.model_copy(
            update={"embedding": settings.embedding.model_copy(update={"backend": args.backend})}
        )
    return bench_command(
        settings,
        sizes=args.sizes,
        queries=args.queries,
        quick=args.quick,
        include_server=False if args.no_server else None,
        include_ui=False if args.no_ui else None,
        work_dir=args.work_dir,
        model_max_chunks=args.model_max_chunks,
        baseline_max_chunks=args.baseline_max_chunks,
        pool_docs=args.pool_docs,
        extra_backends=args.extra_backends,
        json_path=args.json_path,
        plot=args.plot,
        markdown=True,
    )
