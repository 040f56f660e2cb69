"""Every exit code the README promises, through the `coursepilot` command itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

from assistant.apps import cli, cli_common
from assistant.core.errors import (
    ConfigError,
    CoursePilotError,
    IndexMissingError,
    ModelError,
    ServiceUnavailableError,
)
from assistant.models.chat import ModelCallError

COURSE = "# Basics\n\n## Start\n\nPress Enter to confirm a value after typing it into a cell of the sheet.\n"


def run_cli(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
    base.update(
        {
            "COURSEPILOT_INDEX_DIR": str(tmp / "index"),
            "COURSEPILOT_DATABASE_URL": f"sqlite:///{tmp / 'cp.db'}",
            "COURSEPILOT_LIBRARY_DIR": str(tmp / "library"),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "assistant.apps.cli", *args],
        env=base,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_table_maps_each_error_class() -> None:
    assert cli_common.exit_code(ServiceUnavailableError("x")) == cli_common.EXIT_SERVICE == 3
    assert cli_common.exit_code(ModelCallError("timed out", 3)) == cli_common.EXIT_SERVICE
    assert cli_common.exit_code(ModelError("x")) == cli_common.EXIT_SERVICE
    assert cli_common.exit_code(ConfigError("x")) == cli_common.EXIT_USAGE == 2
    assert cli_common.exit_code(IndexMissingError("x")) == cli_common.EXIT_USAGE
    assert cli_common.exit_code(CoursePilotError("x")) == cli_common.EXIT_USAGE
    assert cli_common.exit_code(RuntimeError("x")) == cli_common.EXIT_INTERNAL == 4


def test_exit_0_on_success(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "config", "--json")
    assert done.returncode == 0, done.stderr
    assert "COURSEPILOT_CHROMA_HOST" in json.loads(done.stdout)


def test_exit_1_when_part_of_the_job_failed(tmp_path: Path) -> None:
    course = tmp_path / "library" / "sheets"
    course.mkdir(parents=True)
    (course / "basics.md").write_text(COURSE)
    (course / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    done = run_cli(tmp_path, "ingest", str(tmp_path / "library"), "--json")
    assert done.returncode == 1, done.stderr
    statuses = {Path(f["path"]).name: f["status"] for f in json.loads(done.stdout)["files"]}
    assert statuses == {"basics.md": "added", "broken.pdf": "failed"}


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["playlist", "excel", "--level", "expert", "--json"], {}, "Unknown level"),
        (["config", "--json"], {"COURSEPILOT_RETRIEVAL_K": "0"}, "COURSEPILOT_RETRIEVAL_K"),
        (["ask", "How do I confirm a value?", "--json"], {}, "index"),
    ],
    ids=["bad-option", "bad-setting", "no-index"],
)
def test_exit_2_on_bad_input_or_settings(tmp_path: Path, args: list[str], env: dict[str, str], names: str) -> None:
    done = run_cli(tmp_path, *args, **env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert names in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_exit_3_when_the_chroma_server_is_unreachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    done = run_cli(
        tmp_path,
        "ask",
        "How do I confirm a value?",
        "--json",
        COURSEPILOT_CHROMA_HOST="127.0.0.1",
        COURSEPILOT_CHROMA_PORT=str(port),
    )
    assert done.returncode == 3, (done.stdout, done.stderr)
    error = json.loads(done.stdout)
    assert error["type"] == "ServiceUnavailableError" and f"127.0.0.1:{port}" in error["error"]


def test_exit_3_when_the_database_server_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/h13b"
    done = run_cli(tmp_path, "progress", "ann", "--json", COURSEPILOT_DATABASE_URL=url)
    assert done.returncode == 3, (done.stdout, done.stderr)
    error = json.loads(done.stdout)
    assert error["type"] == "ServiceUnavailableError" and "COURSEPILOT_DATABASE_URL" in error["fix"]


def test_exit_4_on_an_unexpected_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bug (here: a settings method that raises) gives one line on stderr and code 4, never a traceback."""
    from assistant.core.settings import Settings

    def broken(self: Settings) -> list[tuple[str, str, str]]:
        raise RuntimeError("described() broke")

    monkeypatch.setattr(Settings, "described", broken)
    monkeypatch.setattr(sys, "argv", ["coursepilot", "config"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 4
    err = capsys.readouterr().err
    assert "Unexpected error" in err and "described() broke" in err and "Traceback" not in err
