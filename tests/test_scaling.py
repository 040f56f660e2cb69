"""UI workers on shared services: one Chroma server, one PostgreSQL database.

First, two workers side by side on one machine (one index folder): what a sticky-session load balancer needs from
them, a sign-in on one valid on the other, a thread written through one read through the other, a re-ingest
served by both without a restart. Then two workers and an ingest job on three "hosts" (network namespaces, or
loopback with separate folders where namespaces cannot be made) that share nothing but the network: the ledger
is in PostgreSQL, and each worker follows it live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from chat_client import Session, login, run_session
from conftest import (
    ARTIFACTS,
    SAMPLE_LIBRARY,
    chroma_database,
    free_port,
    make_settings,
    postgres_url,
    running_chat_server,
)
from hosts import Host, Network, forwarder, namespaces_unavailable, network, stop_group

from assistant.core.settings import Settings
from assistant.index.ledger import open_ledger
from assistant.index.store import VectorStore
from assistant.planning.passwords import hash_password
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
        chroma={"host": host, "port": port, "database": chroma_database(host, port)},
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


# -- several hosts: two workers and an ingest job in network namespaces, one Chroma server, one PostgreSQL ----
COURSEPILOT = str(Path(sys.executable).parent / "coursepilot")
WOMBAT_MODULE = """# Wombat spreadsheets

## Sorting burrows

Wombat spreadsheets sort every burrow by depth, then by the number of entrances, so a ranger sees the deepest
burrows first.
"""
WOMBAT_QUESTION = "What do wombat spreadsheets do?"
WOMBAT_FACT = "sort every burrow by depth"


@dataclass
class _Cluster:
    net: Network
    env: dict[str, str]
    ledger_url: str
    schema_prefix: str
    chroma: tuple[str, int, str]
    workers: dict[str, str] = field(default_factory=dict)

    @property
    def ingest_host(self) -> Host:
        return self.net.hosts["ingest"]

    def host_env(self, host: Host) -> dict[str, str]:
        return self.env | {
            "COURSEPILOT_INDEX_DIR": str(host.folder / "index"),
            "COURSEPILOT_LIBRARY_DIR": str(host.folder / "library"),
        }

    def ingest(self, *extra: str, pause_at: str | None = None) -> subprocess.Popen[str]:
        host = self.ingest_host
        env = self.host_env(host) | ({"COURSEPILOT_DEBUG_PAUSE_AT": pause_at} if pause_at else {})
        return subprocess.Popen(
            host.argv([COURSEPILOT, "ingest", "--json", *extra]),
            env=env,
            cwd=host.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ingest_ok(self) -> float:
        """Run an ingest to the end on the ingest host; returns the monotonic time it exited (its commit)."""
        proc = self.ingest()
        out, errors = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-2000:] + errors[-3000:]
        return time.monotonic()

    def ledger(self):  # type: ignore[no-untyped-def]
        """The shared ledger, read from the test process (which is on no test host)."""
        settings = make_settings(
            self.ingest_host.folder,
            index={"database_url": self.ledger_url, "database_schema": self.schema_prefix},
        )
        return open_ledger(settings, settings.collection_name(), Path(settings.index.dir))


def _start_worker(cluster: _Cluster, host: Host, stack: contextlib.ExitStack) -> str:
    port = free_port()
    log_path = host.folder / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            host.argv([COURSEPILOT, "ui", "--host", host.address, "--port", str(port)]),
            env=cluster.host_env(host),
            cwd=host.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop() -> None:
        stop_group(proc)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"scaling-{host.name}.log").write_text(log_path.read_text(errors="replace"))

    stack.callback(stop)
    base = f"http://{host.address}:{port}"
    deadline = time.time() + 180
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"worker {host.name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


async def _served_after(base: str, user: str, token: str, question: str, fact: str) -> tuple[str, float]:
    """Ask until the answer holds `fact` (for SERVED_WITHIN_S at most); the answer and when it first held it."""
    deadline = time.monotonic() + SERVED_WITHIN_S
    while True:
        answer = (await _ask(base, user, token, question)).answers[0]
        if fact in answer or time.monotonic() > deadline:
            return answer, time.monotonic()
        await asyncio.sleep(0.25)


@pytest.mark.timeout(1200)
def test_workers_on_separate_hosts_follow_one_shared_ledger(tmp_path: Path, chroma_server: tuple[str, int]) -> None:
    # One test, two layouts: network namespaces where the machine allows them, else the same processes on
    # loopback with separate working folders (the reason is printed, so the run says which layout it tested).
    unavailable = namespaces_unavailable()
    isolated = unavailable is None
    print(f"scaling layout: {'network namespaces' if isolated else f'loopback ({unavailable})'}")
    database_url, reason = postgres_url()
    if database_url is None:
        pytest.skip(reason)
    from sqlalchemy.engine import make_url

    pg = make_url(database_url)
    user, password = f"ana-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    prefix = f"h17_{secrets.token_hex(4)}"
    with contextlib.ExitStack() as stack:
        net = stack.enter_context(network(["ingest", "w1", "w2"], tmp_path, isolated))
        pg_port = stack.enter_context(forwarder(net.gateway, (pg.host or "127.0.0.1", pg.port or 5432)))
        chroma_port = stack.enter_context(forwarder(net.gateway, chroma_server))
        via_net = pg.set(host=net.gateway, port=pg_port).render_as_string(hide_password=False)
        chroma_db = chroma_database(*chroma_server)
        cluster = _Cluster(
            net=net,
            env={k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
            | {
                "HF_HUB_OFFLINE": "1",
                "COURSEPILOT_CHROMA_HOST": net.gateway,
                "COURSEPILOT_CHROMA_PORT": str(chroma_port),
                "COURSEPILOT_CHROMA_DATABASE": chroma_db,
                "COURSEPILOT_INDEX_DATABASE_URL": via_net,
                "COURSEPILOT_INDEX_DATABASE_SCHEMA": prefix,
                "COURSEPILOT_DATABASE_URL": via_net,
                "COURSEPILOT_UI_USERS": f"{user}:{hash_password(password)}:learner",
                "COURSEPILOT_UI_AUTH_SECRET": secrets.token_urlsafe(32),
            },
            ledger_url=database_url,
            schema_prefix=prefix,
            chroma=(*chroma_server, chroma_db),
        )
        stack.callback(lambda: _drop_ledger(cluster))
        library = cluster.ingest_host.folder / "library"
        shutil.copytree(SAMPLE_LIBRARY / "giving-feedback", library / "giving-feedback")
        cluster.ingest_ok()
        for name in ("w1", "w2"):
            cluster.workers[name] = _start_worker(cluster, net.hosts[name], stack)
        asyncio.run(_scenario(cluster, library, user, password))


def _drop_ledger(cluster: _Cluster) -> None:
    from assistant.index.ledger.postgres import PostgresLedger

    ledger = cluster.ledger()
    assert isinstance(ledger, PostgresLedger)
    ledger.drop_schema()


async def _scenario(cluster: _Cluster, library: Path, user: str, password: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        token = await login(http, cluster.workers["w1"], user, password)
    workers = cluster.workers
    for base in workers.values():
        assert NEW_FACT not in (await _ask(base, user, token, NEW_QUESTION)).answers[0]

    # A new course ingested on the ingest host is answered by both workers, no restart, no copied files.
    course = library / "quokka-onboarding"
    course.mkdir()
    (course / "01-the-quokka-handshake.md").write_text(NEW_MODULE)
    committed = cluster.ingest_ok()
    delays: dict[str, float] = {}
    for name, base in workers.items():
        answer, served = await _served_after(base, user, token, NEW_QUESTION, NEW_FACT)
        assert NEW_FACT in answer, f"worker {name}: {answer[:400]}"
        delays[name] = round(served - committed, 2)
    ARTIFACTS.mkdir(exist_ok=True)
    mode = "netns" if cluster.net.isolated else "loopback"
    (ARTIFACTS / f"scaling-refresh-{mode}.json").write_text(json.dumps({"seconds_after_commit": delays}))
    print(f"served after the ingest committed ({mode}): {delays}")

    # A course removed from the library stops being cited.
    shutil.rmtree(course)
    cluster.ingest_ok()
    for name, base in workers.items():
        answer = (await _ask(base, user, token, NEW_QUESTION)).answers[0]
        assert NEW_FACT not in answer and "Quokka" not in answer, f"worker {name} still cites it: {answer[:400]}"

    # An ingest killed mid-run leaves both workers on the previous generation; the next run converges.
    ledger = cluster.ledger()
    generation, chunks = ledger.generation, ledger.chunk_count()
    wombat = library / "zz-wombat"
    wombat.mkdir()
    (wombat / "01-wombat-spreadsheets.md").write_text(WOMBAT_MODULE)
    paused = cluster.ingest(pause_at="after_upsert")
    try:
        assert paused.stderr is not None
        for line in paused.stderr:
            if "PAUSED after_upsert" in line:
                break
        else:
            pytest.fail(f"the ingest ended before its pause point: {paused.wait()}")
        # One ingest at a time: a second job exits at once and says why.
        second = cluster.ingest()
        out, errors = second.communicate(timeout=300)
        assert second.returncode == 2, out + errors
        assert "Another ingest job is running" in json.loads(out)["error"]
        paused.send_signal(signal.SIGKILL)
        paused.wait(30)
    finally:
        if paused.poll() is None:
            paused.kill()
            paused.wait()
    assert (ledger.generation, ledger.chunk_count()) == (generation, chunks)
    for name, base in workers.items():
        answer = (await _ask(base, user, token, WOMBAT_QUESTION)).answers[0]
        assert WOMBAT_FACT not in answer, f"worker {name} served a chunk the ledger does not have: {answer[:400]}"
    cluster.ingest_ok()  # the killed job's lease went with its session
    for name, base in workers.items():
        answer, _ = await _served_after(base, user, token, WOMBAT_QUESTION, WOMBAT_FACT)
        assert WOMBAT_FACT in answer, f"worker {name}: {answer[:400]}"
    store = VectorStore(
        make_settings(
            cluster.ingest_host.folder,
            chroma={"host": cluster.chroma[0], "port": cluster.chroma[1], "database": cluster.chroma[2]},
        )
    )
    assert store.count() == ledger.chunk_count()  # the orphan vectors of the killed run are gone
    ledger.close()
