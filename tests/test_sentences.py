"""Sentence-level evidence: late-chunked vectors, kept incrementally beside the chunks, used as a ranking signal."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import make_settings

from assistant.core.settings import Settings
from assistant.index.ledger.sqlite import SqliteLedger
from assistant.index.library import LibraryIndex
from assistant.index.sentences import SentenceStore, encode_sentences, quantise, sentence_spans
from assistant.models.embeddings import get_embedder
from assistant.retrieval.features import FEATURES
from assistant.retrieval.rerank import features_for
from assistant.retrieval.retriever import Retriever
from ingest.pipeline import IngestPipeline

FEEDBACK = """# Giving feedback

## The SBI model

Feedback works best when it is specific. The Situation-Behaviour-Impact model names the situation first.
Then it describes the behaviour you saw, without judging the person. Finally it says what impact the behaviour had.

## Timing

Give feedback soon after the event. Waiting a month makes the details fade. A short conversation is enough.
"""

BUDGET = """# Budgets

## Forecasting

A forecast estimates next quarter's revenue from last quarter's orders. Seasonal products need a longer history.

## Expense reports

Submit each expense report within thirty days. Attach a receipt for every item above twenty euros.
"""


def _library(root: Path) -> Path:
    lib = root / "library"
    (lib / "skills").mkdir(parents=True)
    (lib / "skills" / "feedback.md").write_text(FEEDBACK)
    (lib / "skills" / "budget.md").write_text(BUDGET)
    return lib


class _NoTokens:
    """An embedder that gives only whole-text vectors (like the OpenAI provider or the benchmark's proxy)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = "no-tokens"
        self.dimensions = 384

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_documents(texts)  # type: ignore[attr-defined]

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)  # type: ignore[attr-defined]

    def first_use_work(self) -> str | None:
        return None

    def prepare(self) -> None:
        return None


def _chunks(settings: Settings) -> dict:
    index = LibraryIndex(settings)
    return index.ledger.get_chunks(index.ledger.all_chunk_ids())


def test_late_chunked_sentence_vectors_come_from_the_chunk_run_and_stay_near_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    embedder = get_embedder(settings.embedding)
    text = FEEDBACK.split("## The SBI model\n\n")[1].split("\n\n## Timing")[0]
    spans = sentence_spans(text)
    assert text[spans[0][0] : spans[0][1]] == "Feedback works best when it is specific."
    assert len(spans) == 4
    got = embedder.embed_with_spans([text], [spans])  # type: ignore[attr-defined]
    assert got is not None
    vectors, per_text = got
    # The chunk vector is the one embed_documents gives: late chunking changes nothing about chunks.
    assert np.allclose(vectors[0], embedder.embed_documents([text])[0], atol=1e-5)
    sentences = per_text[0]
    assert sentences.shape == (4, 384)
    assert np.allclose(np.linalg.norm(sentences, axis=1), 1.0, atol=1e-4)
    assert (sentences @ vectors[0]).min() > 0.7
    # One span over the whole text pools nearly every token the chunk vector pools (all but [CLS] and [SEP]).
    whole = embedder.embed_with_spans([text], [[(0, len(text))]])[1][0][0]  # type: ignore[attr-defined]
    assert float(whole @ vectors[0]) > 0.98
    # Each sentence's late vector is nearest to its own text embedded alone.
    alone = embedder.embed_documents([text[s:e] for s, e in spans])
    assert list((sentences @ alone.T).argmax(axis=1)) == [0, 1, 2, 3]


def test_the_torch_backend_gives_no_token_outputs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, embedding={"backend": "torch"})
    assert get_embedder(settings.embedding).embed_with_spans(["A text."], [[(0, 7)]]) is None  # type: ignore[attr-defined]


def test_sentences_are_kept_incrementally_by_chunk_text(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    lib = _library(tmp_path)
    first = IngestPipeline(settings).run(lib)
    assert first.ok and first.sentences_embedded == first.chunks_total > 0
    store = LibraryIndex(settings).sentence_store
    chunks = _chunks(settings)
    stored = store.sentences(chunks)
    assert set(stored) == set(chunks)
    for cid, item in stored.items():
        assert [chunks[cid].text[s:e] for s, e in item.spans] == [
            chunks[cid].text[s:e] for s, e in sentence_spans(chunks[cid].text)
        ]
        assert item.vectors.shape == (len(item.spans), 384)

    again = IngestPipeline(settings).run(lib)
    assert again.sentences_embedded == 0 and again.sentences_reused == first.chunks_total

    (lib / "skills" / "budget.md").write_text(BUDGET.replace("thirty days", "two weeks"))
    edited = IngestPipeline(settings).run(lib)
    assert 0 < edited.sentences_embedded == edited.chunks_embedded < edited.chunks_total
    now = _chunks(settings)
    changed = [c for c in now.values() if "two weeks" in c.text]
    assert changed
    item = LibraryIndex(settings).sentence_store.sentences([changed[0].id])[changed[0].id]
    assert any("two weeks" in changed[0].text[s:e] for s, e in item.spans)

    (lib / "skills" / "budget.md").unlink()
    removed = IngestPipeline(settings).run(lib)
    gone = [cid for cid, c in now.items() if c.location.module.endswith("budget.md")]
    assert gone and removed.chunks_deleted == len(gone)
    store = LibraryIndex(settings).sentence_store
    assert store.sentences(gone) == {}
    assert set(store.chunk_keys()) == set(_chunks(settings))
    assert store.ledger.sentence_totals()[0] == len(_chunks(settings))  # no row outlives its chunk


def test_a_lost_sentence_store_is_rebuilt_without_re_embedding_chunks(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    lib = _library(tmp_path)
    first = IngestPipeline(settings).run(lib)
    LibraryIndex(settings).sentence_store.clear()
    healed = IngestPipeline(settings).run(lib)
    assert healed.chunks_embedded == 0
    assert healed.sentences_embedded == first.chunks_total
    assert set(LibraryIndex(settings).sentence_store.sentences(_chunks(settings))) == set(_chunks(settings))
    # A full rebuild makes every chunk's sentences afresh and drops the rows it replaced.
    rebuilt = IngestPipeline(settings).run(lib, full=True)
    assert rebuilt.sentences_embedded == rebuilt.chunks_total and rebuilt.sentences_reused == 0
    rows, sentences, size = LibraryIndex(settings).sentence_store.ledger.sentence_totals()
    assert rows == rebuilt.chunks_total and size == sentences * (384 + 12)


def test_the_store_keeps_one_row_per_chunk_and_drops_replaced_ones(tmp_path: Path) -> None:
    store = SentenceStore(SqliteLedger(tmp_path / "ledger.sqlite"))
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    for generation in range(5):
        fresh = {f"k{generation}": encode_sentences([(0, 1), (2, 3), (4, 5)], rows)}
        store.sync({"c1": f"k{generation}"}, fresh, generation)
    assert store.keys() == {"k4"} and store.generation == 4
    assert store.ledger.sentence_totals()[:2] == (1, 3)  # the rows of replaced keys are gone, not kept forever
    got = store.sentences(["c1"])["c1"]
    assert got.spans == [(0, 1), (2, 3), (4, 5)]
    assert (np.sum(got.vectors * rows, axis=1) > 0.999).all()
    # A chunk with a new id and the same text gets a copy of the row, no fresh vectors needed.
    stats = store.sync({"c2": "k4"}, {}, 5)
    assert (stats.embedded, stats.reused, stats.deleted) == (0, 1, 0)
    assert set(store.chunk_keys()) == {"c2"}
    assert np.array_equal(store.sentences(["c2"])["c2"].vectors, got.vectors)
    q, scale = quantise(np.zeros((1, 8), dtype=np.float32))
    assert not q.any() and scale[0] == 0


def test_sentence_features_use_stored_sentences_and_fall_back_to_the_chunk(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    lib = _library(tmp_path)
    IngestPipeline(settings).run(lib)
    index = LibraryIndex(settings)
    query = "When should I hand in an expense report?"
    lists = Retriever(index, settings.retrieval).candidates(query)
    cands = features_for(query, lists, index, 10)
    best, gap, dense = cands.column("sentence_best"), cands.column("sentence_gap"), cands.column("dense")
    assert FEATURES[-2:] == ("sentence_best", "sentence_gap")
    stored = index.sentence_store.sentences(cands.ids)
    for k, cid in enumerate(cands.ids):
        assert best[k] == pytest.approx(float((stored[cid].vectors @ lists.vector).max()), abs=1e-5)
    assert gap.max() == pytest.approx(0.0) and (gap <= 0).all()
    top = cands.ids[int(best.argmax())]
    assert "expense report" in _chunks(settings)[top].text.lower()
    assert not np.allclose(best, dense)

    other = make_settings(tmp_path / "plain")
    report = IngestPipeline(other, embedder=_NoTokens(get_embedder(other.embedding))).run(lib)
    assert report.ok and report.sentences_embedded == 0
    plain = LibraryIndex(other)
    plain_lists = Retriever(plain, other.retrieval).candidates(query)
    plain_cands = features_for(query, plain_lists, plain, 10)
    assert np.allclose(plain_cands.column("sentence_best"), plain_cands.column("dense"))
