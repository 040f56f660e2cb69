"""Two UI workers side by side on shared services: one Chroma server, one PostgreSQL database, one index folder.

What a sticky-session load balancer needs from the workers: a sign-in on one is valid on the other, a thread
written through one is read through the other, and a re-ingest is served by both without a restart.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
from chat_client import Session, login, run_session
from conftest import SAMPLE_LIBRARY, make_settings, postgres_url, running_chat_server

from assistant.core.settings import Settings
from assistant.planning.learners import hash_password
from ingest.pipeline import IngestPipeline

pytestmark = [pytest.mark.slow]

NEW_MODULE = """# Quokka onboarding

## The quokka handshake

The quokka handshake has three steps: wave, wait and write the visitor's name in the lobby book.
New starters learn the quokka handshake on their first morning, before they collect a badge.
"""
NEW_QUESTION = "What are the steps of the quokka handshake?"
NEW_FACT = "wave, wait and write"
SERVED_WITHIN_S = 10.0


def _chroma_database(host: str, port: int) -> str:
    """A fresh database on the shared test server, so this test's collections meet no other test's."""
    import chromadb
    from chromadb.config import Settings as ChromaClientSettings

    name = f"workers-{uuid.uuid4().hex[:8]}"
    admin = chromadb.AdminClient(
        ChromaClientSettings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=host,
            chroma_server_http_port=port,
            anonymized_telemetry=False,
        )
    )
    admin.create_database(name)
    return name


async def _ask(base: str, user: str, token: str, question: str) -> Session:
    session = Session(0, user, [question])
    await run_session(base, session, token)
    assert not session.errors and session.answers, session.errors
    return session


async def _ask_until_served(base: str, user: str, token: str) -> str:
    """The worker's answer to NEW_QUESTION, asked again for a few seconds until it holds NEW_FACT.

    The contract is "served within seconds, without a restart". Each question re-reads the ledger, so one
    ask normally suffices; the retries keep a loaded CI machine from turning a slow disk into a failure.
    """
    deadline = time.monotonic() + SERVED_WITHIN_S
    while True:
        answer = (await _ask(base, user, token, NEW_QUESTION)).answers[0]
        if NEW_FACT in answer or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(1.0)


def _diagnose(settings: Settings, worker: str, folder: Path, answer: str) -> str:
    """What to look at when a worker does not serve the new course: the index itself, then the worker's log."""
    from assistant.index.library import LibraryIndex
    from assistant.pilot import CoursePilot

    fresh = CoursePilot(settings).ask(NEW_QUESTION)
    ledger = LibraryIndex(settings).ledger
    log_lines = (folder / "server.log").read_text(errors="replace").splitlines()
    log_tail = "\n".join(line for line in log_lines if " - httpx - " not in line)[-3000:]
    return (
        f"worker {worker} answered: {answer[:300]!r}\n"
        f"a fresh pilot in the test process: refused={fresh.refused}, top_score={fresh.top_score}, "
        f"evidence courses={[e.chunk.location.course_id for e in fresh.evidence]}\n"
        f"ledger: generation {ledger.generation}, courses_version {ledger.courses_version}, "
        f"{ledger.chunk_count()} chunks\nworker log without HTTP lines:\n{log_tail}"
    )


@pytest.mark.timeout(600)
def test_two_ui_workers_share_sign_in_threads_and_reingests(tmp_path: Path, chroma_server: tuple[str, int]) -> None:
    database_url, reason = postgres_url()
    if database_url is None:
        pytest.skip(reason)
    host, port = chroma_server
    library = tmp_path / "library"
    shutil.copytree(SAMPLE_LIBRARY / "giving-feedback", library / "giving-feedback")
    settings = make_settings(
        tmp_path,
        library={"dir": str(library)},
        chroma={"host": host, "port": port, "database": _chroma_database(host, port)},
        database={"url": database_url},
    )
    assert IngestPipeline(settings).run(library).ok

    user, password = f"ana-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    users = f"{user}:{hash_password(password)}:learner"
    secret = secrets.token_urlsafe(32)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_chat_server(settings, tmp_path / "a", users, "workers-a.log", auth_secret=secret) as (worker_a, _),
        running_chat_server(settings, tmp_path / "b", users, "workers-b.log", auth_secret=secret) as (worker_b, _),
    ):
        assert worker_a != worker_b

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=30) as http:
                token = await login(http, worker_a, user, password)
            async with httpx.AsyncClient(timeout=30, cookies={"access_token": token}) as signed_in:
                # A thread written through worker A is listed and read through worker B with the same sign-in.
                first = await _ask(worker_a, user, token, "What is the SBI model?")
                assert "SBI" in first.answers[0] or "Situation" in first.answers[0]
                listed = await signed_in.post(
                    f"{worker_b}/project/threads", json={"pagination": {"first": 20}, "filter": {}}
                )
                assert listed.status_code == 200, listed.text
                assert first.thread_id in {t["id"] for t in listed.json()["data"]}
                thread = await signed_in.get(f"{worker_b}/project/thread/{first.thread_id}")
                assert thread.status_code == 200
                outputs = " ".join(str(step.get("output") or "") for step in thread.json()["steps"])
                assert first.answers[0][:60] in outputs

                # Not in the library yet: worker B cannot know the fact.
                before = await _ask(worker_b, user, token, NEW_QUESTION)
                assert NEW_FACT not in before.answers[0]

                # One ingest job writes; both running workers serve the new course, no restart.
                course = library / "quokka-onboarding"
                course.mkdir()
                (course / "01-the-quokka-handshake.md").write_text(NEW_MODULE)
                report = await asyncio.to_thread(IngestPipeline(settings).run, library)
                assert report.ok and report.chunks_embedded > 0
                for worker, folder in ((worker_b, "b"), (worker_a, "a")):
                    answer = await _ask_until_served(worker, user, token)
                    assert NEW_FACT in answer, _diagnose(settings, worker, tmp_path / folder, answer)

        asyncio.run(scenario())
