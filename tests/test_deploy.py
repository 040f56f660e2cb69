"""deploy/up.sh starts the example deployment (Chroma server, PostgreSQL ledger, ingest job, two UI workers, nginx
with sticky sessions); a learner signs in and is answered through nginx; a new course ingested with
deploy/ingest.sh is answered by both workers; deploy/down.sh stops everything."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from chat_client import Session, login, run_session
from conftest import ROOT, SAMPLE_LIBRARY, free_port, postgres_url

from assistant.planning.passwords import hash_password

pytestmark = [pytest.mark.slow]

MODULE = """# Quokka onboarding

## The quokka handshake

The quokka handshake has three steps: wave, wait and write the visitor's name in the lobby book.
"""
QUESTION = "What are the steps of the quokka handshake?"
FACT = "wave, wait and write"


async def _ask(base: str, token: str, question: str) -> str:
    session = Session(0, "deploy", [question])
    await run_session(base, session, token)
    assert not session.errors and session.answers, session.errors
    return session.answers[0]


@pytest.mark.timeout(900)
def test_deploy_example_starts_serves_and_stops(tmp_path: Path) -> None:
    database_url, reason = postgres_url()
    if database_url is None:
        pytest.skip(reason)
    if shutil.which("nginx") is None and os.geteuid() != 0:
        pytest.skip("nginx is not installed and this run cannot install it (not root)")
    library = tmp_path / "library"
    shutil.copytree(SAMPLE_LIBRARY / "giving-feedback", library / "giving-feedback")
    user, password = f"lea-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    proxy, workers = free_port(), [free_port(), free_port()]
    schema = f"h17_deploy_{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")} | {
        "CP_DEPLOY_STATE": str(tmp_path / "state"),
        "CP_DEPLOY_POSTGRES_URL": database_url,
        "CP_DEPLOY_LIBRARY": str(library),
        "CP_DEPLOY_PROXY_PORT": str(proxy),
        "CP_DEPLOY_WORKER_PORTS": f"{workers[0]} {workers[1]}",
        "CP_DEPLOY_CHROMA_PORT": str(free_port()),
        "COURSEPILOT_INDEX_DATABASE_SCHEMA": schema,
        "COURSEPILOT_UI_USERS": f"{user}:{hash_password(password)}:learner",
    }
    up = subprocess.run([str(ROOT / "deploy" / "up.sh")], env=env, capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        base = f"http://127.0.0.1:{proxy}"

        async def scenario() -> None:
            # Sticky: one route cookie always reaches the same worker; new visitors spread over both.
            seen: set[str] = set()
            async with httpx.AsyncClient(timeout=30) as http:
                first = await http.get(f"{base}/health")
                assert first.status_code == 200 and "cp_route" in first.cookies
                route = first.cookies["cp_route"]
                async with httpx.AsyncClient(timeout=30, cookies={"cp_route": route}) as returning:
                    pinned = {(await returning.get(f"{base}/health")).headers["x-coursepilot-worker"] for _ in range(5)}
                assert len(pinned) == 1
                for _ in range(20):
                    async with httpx.AsyncClient(timeout=30) as fresh:
                        seen.add((await fresh.get(f"{base}/health")).headers["x-coursepilot-worker"])
                assert seen == {f"127.0.0.1:{p}" for p in workers}
                token = await login(http, base, user, password)
            assert "SBI" in await _ask(base, token, "What is the SBI model?")

            # A new course, ingested by a separate job, is answered by each worker (asked directly).
            course = library / "quokka-onboarding"
            course.mkdir()
            (course / "01-the-quokka-handshake.md").write_text(MODULE)
            job = await asyncio.to_thread(
                subprocess.run, [str(ROOT / "deploy" / "ingest.sh")], env=env, capture_output=True, text=True
            )
            assert job.returncode == 0, job.stderr[-3000:]
            for number, port in enumerate(workers, start=1):
                reply = await _ask(f"http://127.0.0.1:{port}", token, QUESTION)
                assert FACT in reply, (reply, _log_tail(tmp_path / "state" / "logs" / f"worker{number}.log"))

        asyncio.run(scenario())
    finally:
        down = subprocess.run([str(ROOT / "deploy" / "down.sh")], env=env, capture_output=True, text=True)
        _drop_schema(database_url, schema)
    assert down.returncode == 0, down.stderr
    for port in (proxy, *workers):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    assert not list((tmp_path / "state").glob("*.pid"))


def _log_tail(path: Path, lines: int = 40) -> str:
    """The end of a worker's log (its refusal lines say what decided), for a failing assertion's message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log at {path}: {exc})"


def _drop_schema(url: str, prefix: str) -> None:
    import psycopg

    from assistant.index.ledger.postgres import psycopg_conninfo

    with psycopg.connect(psycopg_conninfo(url), autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (f"{prefix}%",)
        ).fetchall():
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
