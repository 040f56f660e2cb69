"""The `coursepilot` command: ingest, ask, find, playlist, progress, ui, eval, report, bench, config."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from assistant.apps.cli_common import (
    EXIT_OK,
    EXIT_PARTIAL,
    JsonFlag,
    app,
    emit_json,
    err,
    exit_code,
    fail,
    out,
    progress_bar,
    settings_from_env,
)
from assistant.core.errors import CoursePilotError


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
        with progress_bar("[progress.description]{task.description}", as_json) as progress:
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


# The eval, report, bench and hash-password commands register on the same app, after the ones above.
from assistant.apps import cli_eval, cli_ops  # noqa: E402,F401


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
