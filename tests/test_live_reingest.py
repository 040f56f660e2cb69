"""A running chat sees a re-ingest with the default embedded Chroma store (issue 15, item 1).

Exactly as a user runs it: `coursepilot ui` started, then `coursepilot ingest` from another process, then the new
course is asked about in the open chat. Before the fix the embedded client kept the HNSW index it loaded first:
the new chunk came back from BM25 only and an unrelated passage was cited first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_client import Session, login, run_session
from conftest import ARTIFACTS, SAMPLE_LIBRARY, free_port, make_settings, wait_for_health
from hosts import stop_group

pytestmark = [pytest.mark.slow]

WOMBAT = """# Wombat spreadsheets

## Sorting burrows

Wombat spreadsheets sort every burrow by depth, then by the number of entrances, so a ranger sees the deepest
burrows first. Each wombat spreadsheet also flags burrows that flooded in the last season.
"""
QUESTION = "What do wombat spreadsheets do?"
FACT = "sort every burrow by depth"
COURSEPILOT = str(Path(sys.executable).parent / "coursepilot")


def _env(tmp: Path, library: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
    env.update(
        COURSEPILOT_LIBRARY_DIR=str(library),
        COURSEPILOT_INDEX_DIR=str(tmp / "index"),
        COURSEPILOT_DATABASE_URL=f"sqlite:///{tmp / 'coursepilot.db'}",
        COURSEPILOT_UI_AUTH_SECRET="live-reingest-test-secret-0123456789abcdef",
        HF_HUB_OFFLINE="1",
    )
    return env


def _ingest(env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run([COURSEPILOT, "ingest", "--json"], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    library = tmp_path / "library"
    for course in ("python-for-analysts", "giving-feedback"):
        shutil.copytree(SAMPLE_LIBRARY / course, library / course)
    return library


def _running_ui(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[str]:
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [COURSEPILOT, "ui", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # `coursepilot ui` runs Chainlit as its child: stop both together
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, proc, log_path, "`coursepilot ui`")
        yield base
    finally:
        stop_group(proc)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "live-reingest-ui.log").write_text(log_path.read_text(errors="replace"))


async def _ask(base: str, question: str) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        token = await login(http, base, "demo", "demo")
    session = Session(0, "demo", [question])
    await run_session(base, session, token)
    assert not session.errors and session.answers, session.errors
    return session.answers[0]


@pytest.mark.timeout(600)
def test_running_ui_answers_a_course_ingested_from_another_process(tmp_path: Path, library: Path) -> None:
    env = _env(tmp_path, library)
    _ingest(env, tmp_path)
    ui = _running_ui(env, tmp_path, tmp_path / "ui.log")
    base = next(ui)
    try:
        # The chat has answered (so its vector reader and BM25 are loaded) before the new course exists.
        assert FACT not in asyncio.run(_ask(base, QUESTION))
        course = library / "zz-wombat"
        course.mkdir()
        (course / "01-wombat-spreadsheets.md").write_text(WOMBAT)
        _ingest(env, tmp_path)  # another process, as from another shell
        answer = asyncio.run(_ask(base, QUESTION))
        # The new course is the first citation, not a passage from Python for Analysts.
        assert FACT in answer, answer
        # The new course is cited before anything from Python for Analysts.
        assert "Python for Analysts" not in answer.split(FACT)[0], answer
    finally:
        ui.close()


def test_retriever_detects_and_logs_a_chunk_dense_search_cannot_see(
    tmp_path: Path, library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A second index opened in a process that already holds a Chroma reader shares that stale reader."""
    from assistant.index.library import LibraryIndex
    from assistant.retrieval.retriever import Retriever

    env = _env(tmp_path, library)
    _ingest(env, tmp_path)
    settings = make_settings(tmp_path, library={"dir": str(library)})
    first = LibraryIndex(settings)
    Retriever(first).retrieve(QUESTION)  # loads the HNSW reader of this process
    course = library / "zz-wombat"
    course.mkdir()
    (course / "01-wombat-spreadsheets.md").write_text(WOMBAT)
    _ingest(env, tmp_path)

    second = LibraryIndex(settings)  # BM25 from the ledger as it is now; vectors through the cached reader
    with caplog.at_level(logging.WARNING, logger="assistant.retrieval.retriever"):
        result = Retriever(second).retrieve(QUESTION)
    warnings = [r.getMessage() for r in caplog.records if "dense search cannot see" in r.getMessage()]
    assert warnings, "a ledger chunk invisible to dense search was not logged"
    top = result.evidence[0]
    assert top.chunk.location.course_id == "zz-wombat"
    assert top.dense_score is not None  # after the reader was reopened, dense search sees it
