"""What every `coursepilot` command shares: the Typer app, exit codes, consoles, settings, errors, JSON, progress."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

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


def progress_bar(label: str, as_json: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json or not err.is_terminal,
    )
