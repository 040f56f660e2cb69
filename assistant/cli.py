"""The `coursepilot` command: ingest, ask, find, playlist, progress, ui, eval, report, bench, config."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from assistant.errors import CoursePilotError, ModelError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

# Exit codes: 0 ok; 1 the job ran but something in it failed (a file, an eval gate); 2 bad input or
# settings; 3 a service (model endpoint, Chroma server, database) is unreachable.
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_SERVICE = 0, 1, 2, 3

app = typer.Typer(help="CoursePilot: answers from your course library, with citations.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def settings_from_env() -> Any:
    from pydantic import ValidationError

    from assistant.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "COURSEPILOT_" + "_".join(str(p).upper() for p in first["loc"])
        fail(CoursePilotError(f"Setting {name} is invalid: {first['msg']}.", "fix it in the environment or .env."))


def fail(exc: CoursePilotError, as_json: bool = False) -> NoReturn:
    code = EXIT_SERVICE if isinstance(exc, ModelError) else EXIT_USAGE
    if as_json:
        print(json.dumps({"error": exc.message, "fix": exc.fix, "type": type(exc).__name__}))
    else:
        err.print(f"[bold red]Error:[/] {exc.message}")
        if exc.fix:
            err.print(f"[bold]Fix:[/] {exc.fix}")
    raise typer.Exit(code)


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@app.command()
def ingest(
    path: Annotated[Path | None, typer.Argument(help="Library folder (default: COURSEPILOT_LIBRARY_DIR).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed everything, ignoring the ledger.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Index course folders; only what changed since the last run is re-embedded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ingest.pipeline import FileResult, IngestPipeline

    settings = settings_from_env()
    library = path or settings.library.dir
    try:
        pipeline = IngestPipeline(settings)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=as_json or not err.is_terminal,
        ) as progress:
            task = progress.add_task("Ingesting", total=None)

            def on_file(result: FileResult) -> None:
                progress.update(task, advance=1, description=f"Ingesting {Path(result.path).name}")

            report = pipeline.run(
                library, full=full, on_start=lambda n: progress.update(task, total=n), on_file=on_file
            )
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        table = Table(title=f"Ingest of {library}", show_lines=False)
        for column in ("file", "status", "chunks", "embedded", "deleted"):
            table.add_column(column, overflow="fold")
        colours = {"failed": "red", "added": "green", "updated": "yellow", "removed": "magenta"}
        for item in report.files:
            colour = colours.get(item.status, "white")
            table.add_row(
                item.path,
                f"[{colour}]{item.status}[/]",
                str(item.chunks or ""),
                str(item.chunks_embedded or ""),
                str(item.chunks_deleted or ""),
            )
        out.print(table)
        for item in report.files:
            if item.status == "failed":
                err.print(f"[red]Failed:[/] {item.message}\n  [bold]Fix:[/] {item.fix}")
            for warning in item.warnings:
                err.print(f"[yellow]Warning:[/] {warning}")
        for warning in report.warnings:
            err.print(f"[yellow]Warning:[/] {warning}")
        for problem in report.problems:
            err.print(f"[red]Problem:[/] {problem}")
        d = report.documents
        out.print(
            f"Documents: {d['added']} added, {d['updated']} updated, {d['unchanged']} unchanged, "
            f"{d['removed']} removed, {d['failed']} failed. Chunks: {report.chunks_embedded} embedded, "
            f"{report.chunks_deleted} deleted, {report.chunks_total} in the index. {report.seconds:.1f} s."
        )
    raise typer.Exit(EXIT_OK if report.ok else EXIT_PARTIAL)


def _print_answer(answer: Any) -> None:
    out.print(answer.text)
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        for citation in answer.citations:
            out.print(f"  [{citation.key}] {citation.label}")
    if answer.fallback_reason:
        err.print(f"[yellow]{answer.fallback_reason}[/]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The learner's question.")],
    course: Annotated[str | None, typer.Option("--course", help="Only search this course id.")] = None,
    level: Annotated[str | None, typer.Option("--level", help="Only beginner|intermediate|advanced.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer a question from the library, citing course › module › section (page)."""
    from assistant.pilot import CoursePilot

    pilot = CoursePilot(settings_from_env())
    try:
        answer = pilot.ask(question, course=course, level=level)
    except CoursePilotError as exc:
        fail(exc, as_json)
    if as_json:
        emit_json(answer.model_dump(mode="json"))
    else:
        _print_answer(answer)


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
        out.print(f"{rank}. [bold]{suggestion.title}[/] ({suggestion.level})")
        for location in suggestion.sections:
            out.print(f"     {location.label()}")


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


def main() -> None:
    """Console-script entry point: friendly errors, never a stack trace."""
    logging.basicConfig(level=os.environ.get("COURSEPILOT_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    try:
        app()
    except CoursePilotError as exc:  # anything not handled by a command
        err.print(f"[bold red]Error:[/] {exc.message}")
        if exc.fix:
            err.print(f"[bold]Fix:[/] {exc.fix}")
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
