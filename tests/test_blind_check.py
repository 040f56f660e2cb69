"""The stale-reader check (dense search must reach the ledger's best BM25 hits) is rate-limited per worker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, make_settings

from assistant.index.library import LibraryIndex
from assistant.retrieval import retriever as retriever_module
from assistant.retrieval.retriever import Retriever


def test_the_stale_reader_check_runs_once_per_generation_and_time_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.pipeline import IngestPipeline

    library = tmp_path / "library"
    shutil.copytree(FIXTURES / "refusal-library", library)
    # Five dense candidates of ~25 chunks: the best BM25 hits are often outside them, which is what is checked.
    settings = make_settings(tmp_path, library={"dir": str(library)}, retrieval={"candidates": 5})
    assert IngestPipeline(settings).run(library).ok
    index = LibraryIndex(settings)
    retriever = Retriever(index)
    checks: list[int] = []
    visible = index.store.visible

    def counting(ids):  # type: ignore[no-untyped-def]
        checks.append(len(ids))
        return visible(ids)

    monkeypatch.setattr(index.store, "visible", counting)
    question = "How do I send a status email to the project sponsor?"
    lists = retriever.candidates(question)
    assert [c for c in lists.lexical.ids[:3] if c not in set(lists.dense.ids)], "the question must need the check"
    for _ in range(5):
        retriever.retrieve(question)
    assert len(checks) == 1  # 94 ms each at 100k chunks: not on every question
    monkeypatch.setattr(retriever_module, "BLIND_CHECK_EVERY_S", 0.0)
    retriever.retrieve(question)
    assert len(checks) == 2  # the window passed: checked again


def test_the_stale_reader_check_looks_ids_up_and_searches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id-filtered query is a filtered graph search (60-100 ms at 100k chunks); a lookup by id is not."""
    from ingest.pipeline import IngestPipeline

    library = tmp_path / "library"
    shutil.copytree(FIXTURES / "refusal-library", library)
    settings = make_settings(tmp_path, library={"dir": str(library)})
    assert IngestPipeline(settings).run(library).ok
    index = LibraryIndex(settings)
    ids = sorted(index.store.all_ids())[:3]
    collection = index.store.collection

    def no_search(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the check searched the vector index")

    monkeypatch.setattr(collection, "query", no_search)
    assert index.store.visible(ids) == set(ids)
    assert "no-such-chunk" not in index.store.visible([*ids, "no-such-chunk"])
