"""One contract for every ledger backend: the same tests run on SQLite and on the real PostgreSQL server.

PostgreSQL ledgers live in a throwaway schema (prefix h17_<random>) of the test database, dropped afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_settings, postgres_url

from assistant.core.types import Chunk, Course, Location
from assistant.index.ledger import DocumentRecord, IngestBusyError, Ledger, open_ledger

COLLECTION = "cp-contract-test"


def _settings(tmp_path: Path, backend: str, prefix: str):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        return make_settings(tmp_path)
    url, reason = postgres_url()
    if url is None:
        pytest.skip(reason)
    return make_settings(tmp_path, index={"database_url": url, "database_schema": prefix})


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Opens ledgers of one collection on one backend (several, like several processes or hosts would)."""
    prefix = f"h17_{uuid.uuid4().hex[:8]}"
    settings = _settings(tmp_path, request.param, prefix)
    opened: list[Ledger] = []

    def factory() -> Ledger:
        ledger = open_ledger(settings, COLLECTION, tmp_path / "index" / COLLECTION)
        opened.append(ledger)
        return ledger

    factory.settings = settings  # type: ignore[attr-defined]
    yield factory
    for ledger in opened:
        ledger.close()
    if request.param == "postgresql":
        from assistant.index.ledger.postgres import PostgresLedger

        first = opened[0]
        assert isinstance(first, PostgresLedger)
        first.drop_schema()


def _chunk(doc: str, ordinal: int, text: str, course: str = "c1") -> Chunk:
    return Chunk(
        id=f"{doc}#{ordinal}-{abs(hash(text)) % 10**8}",
        text=text,
        location=Location(course_id=course, course_title="Course", module=doc, module_title="M", section=("Intro",)),
        ordinal=ordinal,
        tokens=len(text.split()),
        content_hash=f"h-{text}",
        level="beginner",
    )


def _record(path: str, course: str = "c1", file_hash: str = "f1") -> DocumentRecord:
    return DocumentRecord(
        path=path, course_id=course, file_hash=file_hash, size=10, mtime_ns=1, kind="md", title="T", pages=None
    )


def _terms(chunks: list[Chunk]) -> dict[str, dict[str, int]]:
    return {c.id: {w: 1 for w in c.text.split()} for c in chunks}


def test_documents_chunks_and_generations(ledger_factory) -> None:  # type: ignore[no-untyped-def]
    ledger = ledger_factory()
    assert ledger.generation == 0 and ledger.chunk_count() == 0
    first = [_chunk("c1/a.md", 0, "alpha beta"), _chunk("c1/a.md", 1, "gamma delta")]
    assert ledger.replace_document(_record("c1/a.md"), first, _terms(first)) == []
    assert ledger.generation == 1
    other = ledger_factory()  # another connection (process, host) sees the commit
    assert other.generation == 1 and other.chunk_count() == 2
    assert set(other.get_chunks([c.id for c in first])) == {c.id for c in first}
    assert other.get_chunks([first[0].id])[first[0].id].location.section == ("Intro",)
    assert other.documents()["c1/a.md"].file_hash == "f1"
    assert other.chunk_hashes("c1/a.md") == {c.id: c.content_hash for c in first}
    assert other.chunk_facets([first[0].id, "missing"]) == {first[0].id: ("c1", "beginner")}
    assert [c.id for c in other.chunks_of_course("c1")] == [c.id for c in first]
    assert other.first_chunk_ids(["c1"]) == {"c1/c1/a.md": first[0].id}
    assert [c.id for c in other.chunks_with_content(["h-gamma delta"])] == [first[1].id]

    # A new version keeps one chunk (moved), drops one and adds one; the stale id is returned for deletion.
    kept = first[1].model_copy(update={"ordinal": 0})
    added = _chunk("c1/a.md", 1, "epsilon zeta")
    stale = ledger.replace_document(_record("c1/a.md", file_hash="f2"), [kept, added], _terms([added]))
    assert stale == [first[0].id]
    assert ledger.generation == 2
    assert other.get_chunks([kept.id])[kept.id].ordinal == 0
    assert dict(other.terms_for([kept.id, added.id])) == {
        kept.id: {"gamma": 1, "delta": 1},
        added.id: _terms([added])[added.id],
    }
    assert other.all_chunk_ids() == {kept.id, added.id}

    ledger.touch_document("c1/a.md", 99)
    assert other.documents()["c1/a.md"].mtime_ns == 99
    assert sorted(ledger.remove_document("c1/a.md")) == sorted([kept.id, added.id])
    assert other.generation == 3 and other.chunk_count() == 0 and other.documents() == {}


def test_delta_since_replays_the_change_log(ledger_factory) -> None:  # type: ignore[no-untyped-def]
    ledger = ledger_factory()
    a = [_chunk("c1/a.md", 0, "alpha")]
    b = [_chunk("c1/b.md", 0, "beta")]
    ledger.replace_document(_record("c1/a.md"), a, _terms(a))
    at_one = ledger.generation
    ledger.replace_document(_record("c1/b.md"), b, _terms(b))
    ledger.remove_document("c1/a.md")
    delta = ledger_factory().delta_since(at_one)
    assert delta is not None and delta.generation == ledger.generation
    assert set(delta.removed) == {a[0].id, b[0].id}  # every touched row is dropped, then the live ones re-added
    assert delta.added == [(b[0].id, {"beta": 1})]
    assert ledger.delta_since(ledger.generation) == delta.model_copy(update={"removed": [], "added": []})
    assert ledger.delta_since(ledger.generation + 5) is None  # a generation the ledger never had: reload


def test_snapshot_round_trip_and_log_pruning(ledger_factory) -> None:  # type: ignore[no-untyped-def]
    ledger = ledger_factory()
    assert ledger.load_snapshot("lexical") is None
    a = [_chunk("c1/a.md", 0, "alpha")]
    ledger.replace_document(_record("c1/a.md"), a, _terms(a))
    ledger.save_snapshot("lexical", ledger.generation, b"\x00first\xff")
    assert ledger_factory().load_snapshot("lexical") == (1, b"\x00first\xff")
    b = [_chunk("c1/b.md", 0, "beta")]
    ledger.replace_document(_record("c1/b.md"), b, _terms(b))
    assert ledger.delta_since(0) is not None  # the log still reaches back before the first snapshot
    ledger.save_snapshot("lexical", ledger.generation, b"second")
    assert ledger.load_snapshot("lexical") == (2, b"second")
    # A worker more than one snapshot behind reloads the snapshot instead of replaying a pruned log.
    assert ledger.delta_since(0) is None
    assert ledger.delta_since(1) is not None


def test_courses_have_their_own_version(ledger_factory) -> None:  # type: ignore[no-untyped-def]
    ledger = ledger_factory()
    generation = ledger.generation
    ledger.save_courses([Course(id="c1", title="One"), Course(id="c2", title="Two")])
    ledger.save_courses([Course(id="c2", title="Two again")])
    other = ledger_factory()
    assert other.courses_version == 2 and other.generation == generation
    assert {k: v.title for k, v in other.courses().items()} == {"c2": "Two again"}


def test_second_ingest_lease_exits_or_waits(ledger_factory) -> None:  # type: ignore[no-untyped-def]
    first, second = ledger_factory(), ledger_factory()
    with first.lease("ingest"):
        with pytest.raises(IngestBusyError) as busy, second.lease("ingest"):
            pass
        assert f"pid {os.getpid()}" in busy.value.message and "--wait" in (busy.value.fix or "")
        waited: list[str] = []
        got_it = threading.Event()

        def queue_behind() -> None:
            with second.lease("ingest", wait=True, on_wait=waited.append):
                got_it.set()

        waiter = threading.Thread(target=queue_behind)
        waiter.start()
        deadline = time.monotonic() + 30
        while not waited and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waited and not got_it.is_set()  # told who holds it, and still waiting
    waiter.join(30)
    assert got_it.is_set()
    with second.lease("ingest"):  # released after the waiter's turn
        pass


HOLD_LEASE = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import make_settings
from assistant.index.ledger import open_ledger
settings = make_settings(Path({tmp!r}), index={index!r})
ledger = open_ledger(settings, {collection!r}, Path({folder!r}))
with ledger.lease("ingest"):
    print("HOLDING", flush=True)
    time.sleep(300)
"""


def test_a_dead_job_releases_its_lease(ledger_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = ledger_factory.settings
    ledger = ledger_factory()
    index = {"dir": str(settings.index.dir)}
    if settings.index.database_url:
        index |= {
            "database_url": settings.index.database_url.get_secret_value(),
            "database_schema": settings.index.database_schema,
        }
    script = HOLD_LEASE.format(
        tests=str(Path(__file__).parent),
        tmp=str(tmp_path),
        index=index,
        collection=COLLECTION,
        folder=str(tmp_path / "index" / COLLECTION),
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HOLDING"
        with pytest.raises(IngestBusyError), ledger.lease("ingest"):
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        # Killed without a chance to clean up: the session ends (PostgreSQL) or the holder is gone (SQLite).
        deadline = time.monotonic() + 30
        while True:
            try:
                with ledger.lease("ingest"):
                    break
            except IngestBusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
