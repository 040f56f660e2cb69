"""Sentence vectors live in the ledger: a worker on another host reads what the ingest host wrote, rows follow the
chunks incrementally on SQLite and PostgreSQL, and a ledger from before they were stored there is migrated."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import chroma_database, make_settings, postgres_url
from test_sentences import BUDGET, _library

from assistant.core.settings import Settings
from assistant.index.ledger.schema import SCHEMA_VERSION
from assistant.index.library import LibraryIndex
from assistant.retrieval.rerank import features_for
from assistant.retrieval.retriever import Retriever
from ingest.pipeline import IngestPipeline

QUERY = "When should I hand in an expense report?"


def _pg(prefix: str) -> dict:
    url, reason = postgres_url()
    if url is None:
        pytest.skip(reason)
    return {"database_url": url, "database_schema": prefix}


def _drop(settings: Settings) -> None:
    from assistant.index.ledger.postgres import PostgresLedger

    ledger = LibraryIndex(settings).ledger
    assert isinstance(ledger, PostgresLedger)
    ledger.drop_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield make_settings(tmp_path)
        return
    settings = make_settings(tmp_path, index=_pg(f"h20_{uuid.uuid4().hex[:8]}"))
    yield settings
    _drop(settings)


def _rows(index: LibraryIndex) -> dict[str, str]:
    return index.sentence_store.chunk_keys()


def test_a_worker_on_another_host_ranks_with_the_sentences_the_ingest_host_wrote(
    tmp_path: Path, chroma_server: tuple[str, int]
) -> None:
    host, port = chroma_server
    shared = {
        "index": _pg(f"h20_{uuid.uuid4().hex[:8]}"),
        "chroma": {"host": host, "port": port, "database": chroma_database(host, port)},
    }
    lib = _library(tmp_path)
    ingest_settings = make_settings(tmp_path / "ingest-host", **shared)
    worker_settings = make_settings(tmp_path / "worker-host", **shared)
    assert ingest_settings.index.dir != worker_settings.index.dir
    try:
        report = IngestPipeline(ingest_settings).run(lib)
        assert report.ok and report.sentences_embedded == report.chunks_total > 0
        writer, worker = LibraryIndex(ingest_settings), LibraryIndex(worker_settings)
        ids = sorted(writer.ledger.all_chunk_ids())
        mine, theirs = writer.sentence_store.sentences(ids), worker.sentence_store.sentences(ids)
        assert set(mine) == set(theirs) == set(ids)
        for cid in ids:
            assert theirs[cid].spans == mine[cid].spans
            assert np.array_equal(theirs[cid].vectors, mine[cid].vectors)
        # The ranker's sentence features are the same on both hosts, and they are not the chunk-cosine fallback.
        cands = {}
        for name, index, settings in (("ingest", writer, ingest_settings), ("worker", worker, worker_settings)):
            lists = Retriever(index, settings.retrieval).candidates(QUERY)
            cands[name] = features_for(QUERY, lists, index, 10)
        assert cands["worker"].ids == cands["ingest"].ids
        best = cands["worker"].column("sentence_best")
        assert np.array_equal(best, cands["ingest"].column("sentence_best"))
        assert not np.allclose(best, cands["worker"].column("dense"))
        assert not (Path(worker_settings.index.dir) / worker.name / "sentences").exists()
    finally:
        _drop(ingest_settings)


def test_sentence_rows_follow_the_chunks_incrementally(settings: Settings, tmp_path: Path) -> None:
    lib = _library(tmp_path)
    first = IngestPipeline(settings).run(lib)
    index = LibraryIndex(settings)
    rows = _rows(index)
    assert first.sentences_embedded == first.chunks_total == len(rows) > 0
    before = index.sentence_store.sentences(sorted(rows))

    # Unchanged: nothing pooled again, every row as it was.
    again = IngestPipeline(settings).run(lib)
    assert (again.sentences_embedded, again.sentences_reused) == (0, first.chunks_total)
    assert _rows(index) == rows
    kept = index.sentence_store.sentences(sorted(rows))
    assert all(np.array_equal(kept[cid].vectors, before[cid].vectors) for cid in rows)

    # Edited: the new chunk gets its own sentences, the old chunk's row is gone.
    (lib / "skills" / "budget.md").write_text(BUDGET.replace("thirty days", "two weeks"))
    edited = IngestPipeline(settings).run(lib)
    assert 0 < edited.sentences_embedded == edited.chunks_embedded < edited.chunks_total
    chunks = index.ledger.get_chunks(index.ledger.all_chunk_ids())
    assert set(_rows(index)) == set(chunks)
    changed = next(c for c in chunks.values() if "two weeks" in c.text)
    assert changed.id not in rows
    item = index.sentence_store.sentences([changed.id])[changed.id]
    assert any("two weeks" in changed.text[s:e] for s, e in item.spans)
    assert len(set(rows) - set(chunks)) == edited.chunks_deleted > 0

    # Moved (same text, new chunk ids): the rows are copied, nothing is pooled.
    (lib / "skills" / "budget.md").rename(lib / "skills" / "Budget.md")  # the same heading trail
    moved = IngestPipeline(settings).run(lib)
    assert moved.chunks_deleted > 0 and moved.chunks_embedded == 0 and moved.sentences_embedded == 0
    assert set(_rows(index)) == index.ledger.all_chunk_ids()

    # Removed: its rows go with it.
    (lib / "skills" / "Budget.md").unlink()
    removed = IngestPipeline(settings).run(lib)
    assert removed.chunks_deleted > 0
    assert set(_rows(index)) == index.ledger.all_chunk_ids()
    assert index.ledger.sentence_totals()[0] == removed.chunks_total


def test_a_ledger_from_before_sentence_rows_is_migrated_and_filled_by_the_next_ingest(
    settings: Settings, tmp_path: Path
) -> None:
    lib = _library(tmp_path)
    first = IngestPipeline(settings).run(lib)
    index = LibraryIndex(settings)
    # Make it a release-19 ledger: no sentences table, no schema version; the sentence files beside the index.
    index.ledger._execute("DROP TABLE sentences")
    index.ledger._execute("DELETE FROM meta WHERE key IN ('schema_version', 'sentences_generation')")
    index.ledger.close()
    old_files = index.dir / "sentences"
    old_files.mkdir(parents=True)
    (old_files / "manifest.json").write_text(json.dumps({"version": 2, "entries": {}, "chunks": {}}))

    reopened = LibraryIndex(settings)
    assert reopened.ledger.schema_version == SCHEMA_VERSION
    ids = sorted(reopened.ledger.all_chunk_ids())
    assert reopened.sentence_store.sentences(ids) == {}
    lists = Retriever(reopened, settings.retrieval).candidates(QUERY)
    cands = features_for(QUERY, lists, reopened, 10)
    assert np.array_equal(cands.column("sentence_best"), cands.column("dense"))  # the fallback, as before

    healed = IngestPipeline(settings).run(lib)
    assert healed.chunks_embedded == 0  # chunk vectors stay; only the sentences are pooled
    assert healed.sentences_embedded == first.chunks_total
    assert set(reopened.sentence_store.sentences(ids)) == set(ids)
    assert not old_files.exists()
    cands = features_for(QUERY, lists, reopened, 10)
    assert not np.allclose(cands.column("sentence_best"), cands.column("dense"))
