"""The `coursepilot` command: ingest, ask, find, playlist, progress, ui, eval, report, bench, config."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assistant.core.errors import CoursePilotError, ModelError, ServiceUnavailableError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

# Exit codes (README "Exit codes"): 0 ok; 1 the job ran but something in it failed (a file, an eval gate); 2 bad
# input or settings; 3 a service (model endpoint, Chroma server, database) is unreachable; 4 an unexpected error.
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_SERVICE, EXIT_INTERNAL = 0, 1, 2, 3, 4
# The one table from error classes to exit codes; the closest class in an error's MRO decides.
EXIT_CODES: dict[type[BaseException], int] = {
    ServiceUnavailableError: EXIT_SERVICE,
    ModelError: EXIT_SERVICE,
    CoursePilotError: EXIT_USAGE,
}


def exit_code(exc: BaseException) -> int:
    """The exit code for an error (EXIT_INTERNAL for anything that is not a CoursePilotError: a bug)."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_INTERNAL


T = TypeVar("T")

# Tracebacks are not for users: unexpected errors reach main(), which prints one line (the trace is logged).
app = typer.Typer(
    help="CoursePilot: answers from your course library, with citations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

DEFAULT_DATASET = Path("evals/datasets/golden.yaml")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def settings_from_env() -> Any:
    """The settings (assistant.core.settings.settings_from_env); an invalid one exits with its name and the fix."""
    from assistant.core.settings import settings_from_env as load

    try:
        return load()
    except CoursePilotError as exc:
        fail(exc)


def fail(exc: CoursePilotError, as_json: bool = False) -> NoReturn:
    code = exit_code(exc)
    if as_json:
        print(json.dumps({"error": exc.message, "fix": exc.fix, "type": type(exc).__name__}))
    else:
        err.print(f"[bold red]Error:[/] {escape(exc.message)}")
        if exc.fix:
            err.print(f"[bold]Fix:[/] {escape(exc.fix)}")
    raise typer.Exit(code)


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@app.command()
def ingest(
    path: Annotated[Path | None, typer.Argument(help="Library folder (default: COURSEPILOT_LIBRARY_DIR).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed everything, ignoring the ledger.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="If another ingest job holds this collection's lease, wait for it (default: exit 2)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Index course folders; only what changed since the last run is re-embedded."""

    from assistant.models.embeddings import get_embedder
    from ingest.pipeline import FileResult, IngestPipeline

    settings = settings_from_env()
    library = path or settings.library.dir
    try:
        pipeline = IngestPipeline(settings)
        # A one-time model export would otherwise stall the progress bar on its first file without a word.
        embedder = get_embedder(settings.embedding)
        first_use = embedder.first_use_work()
        if first_use:
            with err.status(f"{first_use}…") if not as_json else contextlib.nullcontext():
                embedder.prepare()
        with _progress_bar("[progress.description]{task.description}", as_json) as progress:
            task = progress.add_task("Ingesting", total=None)

            def on_file(result: FileResult) -> None:
                progress.update(task, advance=1, description=f"Ingesting {Path(result.path).name}")

            def on_wait(holder: str) -> None:
                progress.update(task, description="Waiting for the other ingest job")
                if not as_json:
                    err.print(f"Another ingest job holds this collection ({escape(holder)}); waiting for it.")

            report = pipeline.run(
                library,
                full=full,
                on_start=lambda n: progress.update(task, total=n),
                on_file=on_file,
                wait=wait,
                on_wait=on_wait,
            )
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        table = Table(title=f"Ingest of {library}", show_lines=False)
        for column in ("file", "status", "chunks", "embedded", "reused", "deleted"):
            table.add_column(column, overflow="fold")
        colours = {"failed": "red", "added": "green", "updated": "yellow", "removed": "magenta"}
        for item in report.files:
            colour = colours.get(item.status, "white")
            table.add_row(
                item.path,
                f"[{colour}]{item.status}[/]",
                str(item.chunks or ""),
                str(item.chunks_embedded or ""),
                str(item.chunks_reused or ""),
                str(item.chunks_deleted or ""),
            )
        out.print(table)
        for item in report.files:
            if item.status == "failed":
                err.print(f"[red]Failed:[/] {escape(item.message or '')}\n  [bold]Fix:[/] {escape(item.fix or '')}")
            for warning in item.warnings:
                err.print(f"[yellow]Warning:[/] {escape(warning)}")
        for warning in report.warnings:
            err.print(f"[yellow]Warning:[/] {escape(warning)}")
        for problem in report.problems:
            err.print(f"[red]Problem:[/] {escape(problem)}")
        d = report.documents
        out.print(
            f"Documents: {d['added']} added, {d['updated']} updated, {d['unchanged']} unchanged, "
            f"{d['removed']} removed, {d['failed']} failed. Chunks: {report.chunks_embedded} embedded, "
            f"{report.chunks_reused} reused, {report.chunks_deleted} deleted, {report.chunks_total} in the index. {report.seconds:.1f} s."
        )
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PARTIAL)


def _print_answer(answer: Any) -> None:
    # Course text is printed verbatim: brackets in it must never be read as console markup.
    out.print(answer.text, markup=False, highlight=False)
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        for citation in answer.citations:
            out.print(f"  [{citation.key}] {citation.label}", markup=False, highlight=False)
    if answer.fallback_reason:
        err.print(answer.fallback_reason, style="yellow", markup=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The learner's question.")],
    course: Annotated[str | None, typer.Option("--course", help="Only search this course id.")] = None,
    level: Annotated[str | None, typer.Option("--level", help="Only beginner|intermediate|advanced.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question from the library, citing course › module › section (page)."""
    from assistant.pilot import CoursePilot

    settings = settings_from_env()
    try:
        utf8_argument("The question", question)
        pilot = CoursePilot(settings)
        answer = pilot.ask(question, course=course, level=level)
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json(answer.model_dump(mode="json"))
    else:
        _print_answer(answer)


def utf8_argument(what: str, value: str) -> None:
    """A command-line argument that is not UTF-8 (Python keeps such bytes as surrogates) is bad input."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(value[exc.start]) - 0xDC00 if 0xDC80 <= ord(value[exc.start]) <= 0xDCFF else ord(value[exc.start])
        raise CoursePilotError(
            f"{what} is not UTF-8 text (byte 0x{byte:02x} at character {exc.start + 1}).",
            "type it in a UTF-8 terminal, or convert it first (e.g. `iconv -f latin1 -t utf-8`).",
        ) from None


@app.command()
def find(
    query: Annotated[str, typer.Argument(help="A skill or topic, e.g. 'Which course teaches pivot tables?'")],
    as_json: JsonFlag = False,
) -> None:
    """Rank the courses that teach a skill, with the sections and pages where it is taught."""
    from assistant.pilot import CoursePilot

    pilot = CoursePilot(settings_from_env())
    try:
        result = pilot.find(query)
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    if not result.courses:
        out.print("No course in the library teaches this yet.")
        return
    for rank, suggestion in enumerate(result.courses, start=1):
        out.print(f"{rank}. [bold]{escape(suggestion.title)}[/] ({suggestion.level})")
        for location in suggestion.sections:
            out.print(f"     {location.label()}", markup=False, highlight=False)


def playlist_markdown(path: Any) -> str:
    """A playlist as a Markdown checklist."""
    lines = [f"# Learning path: {path.goal}", "", path.intro or path.message, ""]
    for number, item in enumerate(path.items, start=1):
        box = "x" if item.status == "done" else " "
        where = item.evidence.label if item.evidence else (item.location.label() if item.location else "")
        lines.append(f"{number}. [{box}] **{item.title}** ({item.minutes} min, {item.level}) — {item.why}")
        lines.append(f"   - id: `{item.item_id}`; source: {where}")
    if path.left_out:
        lines += ["", "Left out to fit the time: " + ", ".join(i.title for i in path.left_out)]
    return "\n".join(lines)


@app.command()
def playlist(
    goal: Annotated[str, typer.Argument(help="What the learner wants to get good at.")],
    learner: Annotated[str | None, typer.Option("--learner", help="Skip what this learner has done.")] = None,
    minutes: Annotated[int | None, typer.Option("--minutes", help="Time budget in minutes.")] = None,
    level: Annotated[
        str | None, typer.Option("--level", help="The learner's level: beginner|intermediate|advanced.")
    ] = None,
    save: Annotated[bool, typer.Option("--save", help="Save the path for --learner.")] = False,
    as_json: JsonFlag = False,
    as_markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown checklist.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV rows, one per step.")] = False,
) -> None:
    """Plan an ordered learning path that respects prerequisites, progress and the time budget."""
    from assistant.pilot import CoursePilot

    if level is not None and level not in {"beginner", "intermediate", "advanced"}:
        fail(CoursePilotError(f"Unknown level '{level}'.", "use beginner, intermediate or advanced."), as_json)
    pilot = CoursePilot(settings_from_env())
    try:
        path = pilot.playlist(goal, learner_id=learner, minutes=minutes, level=level)
        saved_id = None
        if save:
            if not learner:
                raise CoursePilotError("--save needs --learner.", "add --learner YOUR_ID.")
            saved_id = pilot.learners.save_playlist(learner, path).id
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json({**path.model_dump(mode="json"), "saved_id": saved_id})
    elif as_csv:
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(["step", "item_id", "title", "course_id", "level", "minutes", "prerequisite", "why", "source"])
        for number, item in enumerate(path.items, start=1):
            source = item.evidence.label if item.evidence else ""
            writer.writerow(
                [
                    number,
                    item.item_id,
                    item.title,
                    item.course_id,
                    item.level,
                    item.minutes,
                    item.is_prerequisite,
                    item.why,
                    source,
                ]
            )
    elif as_markdown:
        print(playlist_markdown(path))
    else:
        if not path.covered:
            out.print(path.message, markup=False)
            raise typer.Exit(EXIT_OK)
        out.print(f"[bold]Learning path:[/] {escape(path.goal)}")
        if path.intro:
            out.print(path.intro, markup=False)
        for number, item in enumerate(path.items, start=1):
            tag = " [dim](prerequisite)[/]" if item.is_prerequisite else ""
            out.print(f"{number}. [bold]{escape(item.title)}[/] — {item.minutes} min, {item.level}{tag}")
            out.print(f"   {item.why}", markup=False)
            if item.evidence:
                out.print(f"   [dim]{escape(item.evidence.label)}[/]  id: {escape(item.item_id)}")
        out.print(path.message, markup=False)
        if saved_id:
            out.print(f"Saved as {saved_id}.")


@app.command()
def progress(
    learner: Annotated[str, typer.Argument(help="Learner id.")],
    done: Annotated[list[str] | None, typer.Option("--done", help="Mark an item id done (repeatable).")] = None,
    undo: Annotated[list[str] | None, typer.Option("--undo", help="Mark an item id not done.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark items done for a learner, and list their progress and saved paths."""
    from assistant.planning.learners import LearnerStore

    settings = settings_from_env()
    try:
        store = LearnerStore(settings.database.url)
        for item_id in done or []:
            store.set_progress(learner, item_id, True)
        for item_id in undo or []:
            store.set_progress(learner, item_id, False)
        items = store.progress(learner)
        saved = store.playlists(learner)
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json(
            {
                "learner": learner,
                "progress": [i.model_dump(mode="json") for i in items],
                "playlists": [
                    {
                        "id": p.id,
                        "goal": p.goal,
                        "done": sum(1 for i in p.playlist.items if i.status == "done"),
                        "steps": len(p.playlist.items),
                    }
                    for p in saved
                ],
            }
        )
        return
    table = Table(title=f"Progress of {escape(learner)}")
    table.add_column("item")
    table.add_column("done")
    table.add_column("when")
    for entry in items:
        table.add_row(escape(entry.item_id), "yes" if entry.done else "no", entry.updated_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)
    for p in saved:  # goals are learners' words: never console markup
        count = sum(1 for i in p.playlist.items if i.status == "done")
        out.print(f"Path {p.id}: {p.goal} — {count} of {len(p.playlist.items)} done", markup=False, highlight=False)


@app.command()
def config(as_json: JsonFlag = False) -> None:
    """Show every setting's effective value (secrets masked) and what it does."""
    settings = settings_from_env()
    rows = settings.described()
    if as_json:
        emit_json({env: {"value": value, "description": desc} for env, value, desc in rows})
        return
    table = Table(title="CoursePilot settings (env var, value, meaning)")
    table.add_column("env var")
    table.add_column("value")
    table.add_column("meaning")
    for env, value, desc in rows:
        table.add_row(env, value, desc)
    out.print(table)


@app.command()
def ui(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default COURSEPILOT_UI_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default COURSEPILOT_UI_PORT).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start the Chainlit chat for learners on the configured library (no API key needed)."""
    from assistant.apps.ui.launch import run_ui
    from assistant.index.library import LibraryIndex

    settings = settings_from_env()
    try:
        LibraryIndex(settings).ensure_ready()
    except CoursePilotError as exc:
        fail(exc, as_json)
    raise typer.Exit(run_ui(settings, host=host, port=port))


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
    from assistant.planning.learners import hash_password

    if role not in {"learner", "lnd"}:
        fail(CoursePilotError(f"Unknown role '{role}'.", "use --role learner or --role lnd."), as_json)
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    entry = f"{user}:{hash_password(password)}:{role}"
    if as_json:
        emit_json({"user": user, "role": role, "entry": entry})
    else:
        print(entry)
        err.print("Add it to COURSEPILOT_UI_USERS (comma-separated for several users).")


eval_app = typer.Typer(help="Offline answer-quality evals and public retrieval benchmarks.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def eval_run(
    dataset: Annotated[
        Path, typer.Argument(help="YAML or JSONL dataset, or a question set (.csv, or .jsonl rows with q and course).")
    ] = DEFAULT_DATASET,
    name: Annotated[
        str | None, typer.Option("--name", help="Run folder name under runs/ (default: timestamp).")
    ] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Compare with runs/BASELINE.")] = None,
    fail_under: Annotated[
        list[str] | None, typer.Option("--fail-under", help="METRIC=VALUE gate, e.g. hit@5=0.8 (repeatable).")
    ] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where run folders go.")] = Path("runs"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Do not resume an interrupted run of the same name.")] = False,
    split: Annotated[
        str | None, typer.Option("--split", help="Question sets only: keep the rows whose 'split' is this.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a dataset through the same API as the chat UI and write results, summary and reports."""
    from datetime import datetime

    from assistant.pilot import CoursePilot
    from evals.runner import check_thresholds, run_eval

    run_name = name or datetime.now().strftime("run-%Y%m%d-%H%M%S")
    pilot = CoursePilot(settings_from_env())
    try:
        with _progress_bar("Evaluating", as_json) as progress:
            task = progress.add_task("eval", total=None)
            summary = run_eval(
                dataset,
                pilot,
                run_name,
                runs_dir=runs_dir,
                baseline=baseline,
                resume=not fresh,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                split=split,
            )
        failures = check_thresholds(summary, fail_under or [])
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json({**summary.model_dump(mode="json"), "gate_failures": failures})
    else:
        table = Table(title=f"Eval run {run_name}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        deltas = summary.baseline.metrics if summary.baseline else {}
        if deltas:
            table.add_column("vs baseline", justify="right")
        for metric, value in summary.metrics.items():
            shown = "—" if value is None else f"{value:.3f}"
            row = [metric, shown]
            if deltas:
                delta = deltas.get(metric)
                change = "" if delta is None or delta.delta is None else f"{delta.delta:+.3f}"
                row.append(f"[red]{change} regression[/]" if delta is not None and delta.regression else change)
            table.add_row(*row)
        out.print(table)
        out.print(f"Reports: {summary.files.get('report_html')} and {summary.files.get('report_md')}")
        for problem in summary.problems:
            err.print(f"[yellow]Left out:[/] {escape(problem)}")
        for regression in summary.regressions:
            err.print(f"[red]Regression:[/] {escape(regression)}")
        for failure in failures:
            err.print(f"[red]Gate failed:[/] {escape(failure)}")
    raise typer.Exit(EXIT_PARTIAL if failures else EXIT_OK)


def _progress_bar(label: str, as_json: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
    )


def _benchmark_job(label: str, dataset_dir: Path, as_json: bool, job: Callable[[Callable[[int, int], None]], T]) -> T:
    """Run a BEIR-folder job under a progress bar; a bad folder or a failed run exits with the message and fix."""
    if not (dataset_dir / "corpus.jsonl").exists():
        fail(
            CoursePilotError(
                f"{dataset_dir} has no corpus.jsonl.", "pass a BEIR dataset folder (corpus, queries, qrels)."
            ),
            as_json,
        )
    try:
        with _progress_bar(label, as_json) as progress:
            task = progress.add_task(label, total=None)
            return job(lambda done, total: progress.update(task, completed=done, total=total))
    except CoursePilotError as exc:
        fail(exc, as_json)


@eval_app.command("beir")
def eval_beir(
    dataset_dir: Annotated[Path, typer.Argument(help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/).")],
    split: Annotated[str, typer.Option("--split", help="qrels split to score.")] = "test",
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where its index is kept and reused.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score the default retriever on a public BEIR benchmark (nDCG@10, recall@100)."""
    from evals.beir import run_beir

    settings = settings_from_env()
    result = _benchmark_job(
        "BEIR",
        dataset_dir,
        as_json,
        lambda progress: run_beir(dataset_dir, settings, split=split, work_dir=work_dir, progress=progress),
    )
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    out.print(
        f"{result.dataset} ({result.split}, {result.queries} queries, {result.documents} documents): "
        f"nDCG@10 = {result.ndcg_at_10:.4f}, recall@100 = {result.recall_at_100:.4f}, MRR@10 = {result.mrr_at_10:.4f}"
    )
    out.print(
        f"embedding: {result.embedding}; fusion: {result.fusion.model_dump()}; query latency p50 {result.latency_ms_p50:.1f} ms, "
        f"p95 {result.latency_ms_p95:.1f} ms; index {'reused' if result.index_reused else 'built'} "
        f"in {result.seconds_index:.0f} s"
    )


@eval_app.command("calibrate")
def eval_calibrate(
    dataset_dir: Annotated[Path, typer.Argument(help="A BEIR dataset folder with train and test qrels.")],
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where its index is kept and reused.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Choose the refusal thresholds on the train split (exclusion trick) and report them on test."""
    from evals.calibrate import calibrate_refusal

    settings = settings_from_env()
    result = _benchmark_job(
        "Calibrating",
        dataset_dir,
        as_json,
        lambda progress: calibrate_refusal(dataset_dir, settings, work_dir=work_dir, progress=progress),
    )
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    out.print(
        f"refusal_min_dense = {result.refusal_min_dense:.3f}, refusal_min_coverage = {result.refusal_min_coverage:.3f} "
        f"(chosen on {result.tune_split}, objective {result.objective})"
    )
    out.print(f"on {result.eval_split}: {result.test.model_dump()}")


_BENCHMARKS = Path("../shared/benchmarks")


@eval_app.command("fit-ranker")
def eval_fit_ranker(
    openstax_dir: Annotated[
        Path, typer.Option("--openstax", help="The openstax-intro-business benchmark folder.")
    ] = _BENCHMARKS / "openstax-intro-business",
    scifact_dir: Annotated[Path, typer.Option("--scifact", help="The SciFact BEIR folder.")] = _BENCHMARKS / "scifact",
    no_scifact: Annotated[bool, typer.Option("--no-scifact", help="Fit on openstax train only.")] = False,
    work_dir: Annotated[Path, typer.Option("--work-dir", help="Where the benchmark indexes are kept.")] = Path(
        ".coursepilot/benchmarks"
    ),
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write the model files here instead of into the package.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N train questions.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Refit the learned ranker and the calibrated refusal model on the train splits (openstax + SciFact)."""
    from evals.fit import run_fit

    settings = settings_from_env()
    scifact = None if no_scifact else scifact_dir
    try:
        with _progress_bar("Fitting", as_json) as progress:
            task = progress.add_task("fit", total=None)
            report = run_fit(
                openstax_dir,
                scifact,
                settings,
                work_dir,
                out_dir=out_dir,
                limit=limit,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except (CoursePilotError, FileNotFoundError) as exc:
        fail(
            exc if isinstance(exc, CoursePilotError) else CoursePilotError(str(exc), "pass the benchmark folders."),
            as_json,
        )
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    out.print(f"ranker: {report.ranker_path} ({report.ranker_rows} candidate rows)")
    out.print(
        f"refusal: {report.refusal_path}, threshold {report.refusal_threshold:.4f}; on train "
        f"{report.train_false_refusal_rate:.1%} of answerable refused, {report.train_excluded_refused:.1%} of "
        "excluded-course questions refused"
    )


@eval_app.command("ablation")
def eval_ablation(
    openstax_dir: Annotated[
        Path | None, typer.Option("--openstax", help="The openstax-intro-business benchmark folder.")
    ] = _BENCHMARKS / "openstax-intro-business",
    scifact_dir: Annotated[Path | None, typer.Option("--scifact", help="The SciFact BEIR folder.")] = _BENCHMARKS
    / "scifact",
    golden: Annotated[Path | None, typer.Option("--golden", help="Golden dataset (YAML).")] = DEFAULT_DATASET,
    golden_library: Annotated[
        Path | None, typer.Option("--golden-library", help="The library the golden set is written against.")
    ] = Path("data/courses"),
    work_dir: Annotated[Path, typer.Option("--work-dir", help="Where the benchmark indexes are kept.")] = Path(
        ".coursepilot/benchmarks"
    ),
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README table.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Each retrieval component's contribution on SciFact test, openstax test and the golden set, in one run."""
    from evals.ablation import markdown_table, run_ablation

    settings = settings_from_env()
    try:
        with _progress_bar("Ablation", as_json) as progress:
            task = progress.add_task("ablation", total=None)
            result = run_ablation(
                settings,
                openstax_dir,
                scifact_dir,
                golden,
                golden_library,
                work_dir,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except (CoursePilotError, FileNotFoundError) as exc:
        fail(
            exc if isinstance(exc, CoursePilotError) else CoursePilotError(str(exc), "pass the benchmark folders."),
            as_json,
        )
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    if markdown:
        out.print(markdown_table(result), markup=False, highlight=False)
    else:
        table = Table(title="Retrieval ablation (same index and candidate lists per set)")
        for column in (
            "ranking",
            "SciFact nDCG@10",
            "openstax hit@1",
            "openstax hit@5",
            "golden hit@1",
            "golden hit@5",
        ):
            table.add_column(column, justify="left" if column == "ranking" else "right")
        for row in result.rows:
            cells = [
                row.scifact_ndcg_at_10,
                row.openstax_hit_at_1,
                row.openstax_hit_at_5,
                row.golden_hit_at_1,
                row.golden_hit_at_5,
            ]
            table.add_row(escape(row.name), *("—" if v is None else f"{v:.3f}" for v in cells))
        out.print(table)
    out.print(f"refusal: {result.refusal.model_dump()}", markup=False, highlight=False)


def main() -> None:
    """Console-script entry point: friendly errors, never a stack trace."""
    logging.basicConfig(level=os.environ.get("COURSEPILOT_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    try:
        app()
    except CoursePilotError as exc:  # anything not handled by a command
        err.print(f"[bold red]Error:[/] {escape(exc.message)}")
        if exc.fix:
            err.print(f"[bold]Fix:[/] {escape(exc.fix)}")
        sys.exit(exit_code(exc))
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: one line for the user, the trace for the log
        logging.getLogger("coursepilot").debug("unexpected error", exc_info=True)
        err.print(f"[bold red]Unexpected error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}")
        err.print(
            "[bold]Fix:[/] run again with COURSEPILOT_LOG_LEVEL=DEBUG to see where it happened, and report it "
            "with that output."
        )
        sys.exit(exit_code(exc))


if __name__ == "__main__":
    main()
