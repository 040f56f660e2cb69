"""`coursepilot report`, `bench` and `hash-password`: the L&D report, the benchmark, and user set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from assistant.apps.cli_common import (
    DEFAULT_DATASET,
    JsonFlag,
    app,
    emit_json,
    err,
    fail,
    out,
    settings_from_env,
)
from assistant.core.errors import CoursePilotError


@app.command()
def report(
    since: Annotated[str | None, typer.Option("--since", help="Only questions from this date on (YYYY-MM-DD).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report with charts here.")] = None,
    csv_dir: Annotated[Path | None, typer.Option("--csv", help="Write one CSV per section into this folder.")] = None,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="Eval dataset whose expected sections are checked.")
    ] = DEFAULT_DATASET,
    refresh_snapshot: Annotated[
        bool, typer.Option("--refresh-snapshot", help="Accept the current sections as the new baseline.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """L&D insights: content gaps, demand, thumbs-down answers and what a re-ingest changed."""
    from datetime import datetime

    from assistant.apps.insights import build_report, write_csv, write_html
    from assistant.pilot import CoursePilot

    pilot = CoursePilot(settings_from_env())
    try:
        start = datetime.fromisoformat(since) if since else None
    except ValueError:
        fail(CoursePilotError(f"--since '{since}' is not a date.", "use YYYY-MM-DD, e.g. --since 2026-11-01."), as_json)
    try:
        pilot.index.ensure_ready()
        data = build_report(
            pilot.learners,
            pilot,
            since=start,
            eval_dataset=dataset if dataset and dataset.exists() else None,
            refresh_snapshot=refresh_snapshot,
        )
    except CoursePilotError as exc:
        fail(exc, as_json)
    if html:
        write_html(data, html)
    if csv_dir:
        write_csv(data, csv_dir)
    if as_json:
        print(data.model_dump_json(indent=2))
        return
    totals = data.totals
    out.print(
        f"[bold]Questions:[/] {totals.questions} ({totals.answered} answered, {totals.refused} refused, "
        f"{totals.low_confidence} low confidence) from {totals.learners} learner(s); {totals.playlists} saved path(s)."
    )
    table = Table(title="Content gaps (what learners ask that the library does not teach)")
    for column in ("#", "topic", "questions", "learners", "example", "nearest material"):
        table.add_column(column, overflow="fold")
    for cluster in data.content_gaps.clusters[:15]:
        nearest = cluster.nearest.label if cluster.nearest else ""
        table.add_row(
            str(cluster.rank),
            escape(cluster.label),
            str(cluster.count),
            str(cluster.learners),
            escape(cluster.examples[0] if cluster.examples else ""),
            escape(nearest),
        )
    out.print(table)
    if html:
        out.print(f"HTML report: {html}")


@app.command()
def bench(
    sizes: Annotated[
        str, typer.Option("--sizes", help="Comma-separated synthetic library sizes in chunks.")
    ] = "1000,10000,100000",
    queries: Annotated[int, typer.Option("--queries", help="Questions timed per library and mode.")] = 200,
    quick: Annotated[
        bool, typer.Option("--quick", help="The smoke run CI executes: 300 chunks, 10 queries, no server or UI.")
    ] = False,
    no_server: Annotated[bool, typer.Option("--no-server", help="Skip the Chroma server mode.")] = False,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Skip the UI start-to-first-answer measure.")] = False,
    extra_backends: Annotated[
        str,
        typer.Option("--extra-backends", help="Comma-separated embedding backends also timed on the sample library."),
    ] = "torch",
    baseline_max_chunks: Annotated[
        int, typer.Option("--baseline-max-chunks", help="Largest library the baseline rebuilds.")
    ] = 100_000,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of latency and throughput.")] = None,
    save: Annotated[Path | None, typer.Option("--save", help="Also write the JSON report to this file.")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Scratch folder for the libraries.")] = None,
    ledger: Annotated[
        bool,
        typer.Option(
            "--ledger",
            help="Instead: ask p50/p95 on the PostgreSQL ledger against SQLite (--sizes, default 10k,100k), how "
            "BM25 travels, and the commit-to-served delay (PostgreSQL: CP_BENCH_POSTGRES_URL or the local server).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Measure ingest, re-ingest, query latency, memory and start-up against a plain LangChain pipeline.

    Exit code 0 when every measured target passes, 1 when one fails, 2 on bad options.
    """
    if ledger:
        from evals.bench_ledger import bench_ledger_command

        chosen = [int(x) for x in sizes.split(",") if x.strip().isdigit()]
        default = chosen == [1000, 10000, 100000]
        raise typer.Exit(
            bench_ledger_command(settings_from_env(), [10_000, 100_000] if default else chosen, queries, as_json, None)
        )
    import importlib.util

    from assistant.apps.ui.launch import ui_process

    # The benchmark's baseline and probes come with the `bench` extra, not with the core install.
    absent = [
        m
        for m in ("langchain_chroma", "langchain_text_splitters", "psutil", "socketio", "requests")
        if importlib.util.find_spec(m) is None
    ]
    if absent:
        fail(
            CoursePilotError(
                f"`coursepilot bench` needs the bench extra ({', '.join(absent)} missing).",
                "pip install 'coursepilot[bench]' (./scripts/install.sh installs it).",
            ),
            as_json,
        )
    from evals.bench import bench_command

    settings = settings_from_env()
    try:
        size_list = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        fail(CoursePilotError(f"--sizes '{sizes}' is not a list of numbers.", "use e.g. --sizes 1000,10000."), as_json)
    backends = [b.strip() for b in extra_backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - {"torch", "onnx", "onnx-int8"})
    if unknown:
        fail(
            CoursePilotError(
                f"--extra-backends names unknown backends: {', '.join(unknown)}.", "use torch, onnx or onnx-int8."
            ),
            as_json,
        )
    try:
        code = bench_command(
            settings,
            sizes=None if quick else size_list,
            queries=None if quick else queries,
            quick=quick,
            include_server=False if no_server else None,
            include_ui=False if no_ui else None,
            work_dir=work_dir,
            baseline_max_chunks=baseline_max_chunks,
            extra_backends=backends,
            as_json=as_json,
            json_path=save,
            plot=plot,
            ui_launcher=lambda s, host, port: ui_process(s, host, port, headless=True),
        )
    except CoursePilotError as exc:
        fail(exc, as_json)
    raise typer.Exit(code)


@app.command("hash-password")
def hash_password_command(
    user: Annotated[str, typer.Argument(help="Sign-in id of the user.")],
    role: Annotated[
        str, typer.Option("--role", help="learner or lnd (L&D staff see the insights report).")
    ] = "learner",
    as_json: JsonFlag = False,
) -> None:
    """Print a COURSEPILOT_UI_USERS entry for a user; the password is read without echo."""
    from assistant.planning.passwords import hash_password

    if role not in {"learner", "lnd"}:
        fail(CoursePilotError(f"Unknown role '{role}'.", "use --role learner or --role lnd."), as_json)
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    entry = f"{user}:{hash_password(password)}:{role}"
    if as_json:
        emit_json({"user": user, "role": role, "entry": entry})
    else:
        print(entry)
        err.print("Add it to COURSEPILOT_UI_USERS (comma-separated for several users).")
