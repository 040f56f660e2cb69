"""A worker's in-memory BM25 follows the ledger written by another process or host, on SQLite and PostgreSQL:
deltas while running, snapshot + delta on a cold start, a reload when the change log was pruned past it."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import make_settings, postgres_url

from assistant.core.settings import Settings
from assistant.index.library import LibraryIndex
from evals.bench_ledger import _document, _vectors, _vocabulary, write_document


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield make_settings(tmp_path)
        return
    url, reason = postgres_url()
    if url is None:
        pytest.skip(reason)
    settings = make_settings(tmp_path, index={"database_url": url, "database_schema": f"h17_{uuid.uuid4().hex[:8]}"})
    yield settings
    from assistant.index.ledger.postgres import PostgresLedger

    ledger = LibraryIndex(settings).ledger
    assert isinstance(ledger, PostgresLedger)
    ledger.drop_schema()


def _write(index: LibraryIndex, doc: int, seed: int = 0) -> set[str]:
    record, chunks = _document(_vocabulary(), random.Random(doc * 100 + seed), doc, size=4)
    write_document(index, record, chunks, _vectors(np.random.default_rng(doc), len(chunks)))
    return {c.id for c in chunks}


def _scores(index: LibraryIndex, query: str) -> dict[str, float]:
    """Every matching chunk's BM25 score (ties may come in either row order)."""
    return {cid: round(score, 4) for cid, score in index.lexical().search(query, 1000)}


def test_a_running_worker_applies_deltas_and_matches_a_rebuild(settings: Settings) -> None:
    writer, worker = LibraryIndex(settings), LibraryIndex(settings)
    first = _write(writer, 1)
    assert set(worker.lexical().ids) == first
    second = _write(writer, 2)
    writer.ledger.remove_document(f"course-0000/module-{1:06d}.md")
    changed = _write(writer, 3, seed=1)
    changed_again = _write(writer, 3, seed=2)  # a document re-ingested twice between two questions
    assert set(worker.lexical().ids) == second | changed_again
    assert not (set(worker.lexical().ids) & (first | (changed - changed_again)))
    assert worker.lexical_generation == writer.ledger.generation
    rebuilt = LibraryIndex(settings)
    rebuilt._lexical, rebuilt._lexical_generation = rebuilt.rebuild_lexical(), writer.ledger.generation
    for query in ("course module", " ".join(_vocabulary()[:5])):
        assert _scores(worker, query) == _scores(rebuilt, query)


def test_a_cold_start_loads_the_snapshot_then_the_delta(settings: Settings) -> None:
    writer = LibraryIndex(settings)
    ids = _write(writer, 1)
    writer.publish_lexical()
    ids |= _write(writer, 2)  # after the snapshot: comes from the change log
    cold = LibraryIndex(settings)
    assert set(cold.lexical().ids) == ids and cold.lexical_generation == writer.ledger.generation


def test_a_worker_behind_a_pruned_log_reloads(settings: Settings) -> None:
    writer, worker = LibraryIndex(settings), LibraryIndex(settings)
    ids = _write(writer, 1)
    assert set(worker.lexical().ids) == ids
    for doc in (2, 3):  # two ingests, each ending with a snapshot: the log before the first one is pruned
        ids |= _write(writer, doc)
        writer.publish_lexical()
    assert writer.ledger.delta_since(worker.lexical_generation) is None
    assert set(worker.lexical().ids) == ids
