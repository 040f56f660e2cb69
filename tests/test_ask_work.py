"""The model work one question costs: ONNX runs counted on the real int8 embedder (never timed)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from assistant.answering.sentence_vectors import MAX_EMBEDDED
from assistant.core.settings import Settings
from assistant.models.embeddings import get_embedder
from assistant.models.local_embedder import LocalEmbedder
from assistant.pilot import CoursePilot

QUESTION = "Why do people avoid giving feedback?"


@pytest.fixture(scope="module")
def uncached(sample_settings: Settings) -> Settings:
    """The sample index with the query cache off, as the benchmark runs it: every embedding is a model run."""
    embedding = sample_settings.embedding.model_copy(update={"query_cache_size": 0})
    return sample_settings.model_copy(update={"embedding": embedding})


@pytest.fixture
def runs(uncached: Settings, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, threading.Thread]]:
    """(text, thread) of every ONNX run of the real embedder the index uses."""
    embedder = get_embedder(uncached.embedding)
    assert isinstance(embedder, LocalEmbedder) and embedder.backend == "onnx-int8"
    real = embedder._onnx_batch
    seen: list[tuple[str, threading.Thread]] = []

    def counting(session: Any, tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
        seen.extend((str(t), threading.current_thread()) for t in texts)
        return real(session, tokenizer, texts)

    monkeypatch.setattr(embedder, "_onnx_batch", counting)
    return seen


def test_an_extractive_answer_embeds_the_question_once(uncached: Settings, runs: list[tuple[str, Any]]) -> None:
    # The answerer matches its sentences against the vector retrieval already made, instead of a second run.
    pilot = CoursePilot(uncached)
    first = pilot.ask(QUESTION)
    assert not first.refused and "fear of conflict" in first.text
    texts = [text for text, _ in runs]
    assert texts.count(QUESTION) == 1
    assert 1 < len(texts) <= 1 + MAX_EMBEDDED  # the question, then the best candidate sentences
    # Asked again, the sentences come from the answerer's cache: one run in all, the question's.
    del runs[:]
    again = pilot.ask(QUESTION)
    assert again.text == first.text
    assert [text for text, _ in runs] == [QUESTION]


def test_the_retrieval_vector_is_offered_for_its_own_text_only(uncached: Settings) -> None:
    pilot = CoursePilot(uncached)
    result = pilot.retriever.retrieve(QUESTION)
    vector = result.vector_for(QUESTION)
    assert vector is not None
    assert np.array_equal(vector, get_embedder(uncached.embedding).embed_query(QUESTION))
    assert result.vector_for("Why do people give feedback?") is None
    assert "query_vector" not in result.model_dump()


def test_document_batches_reuse_their_threads(uncached: Settings, runs: list[tuple[str, threading.Thread]]) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2:
        pytest.skip("one core: documents are embedded on the calling thread")
    embedder = get_embedder(uncached.embedding)
    texts = [f"Feedback sentence number {i} for the batch." for i in range(6)]
    batches = [np.asarray(embedder.embed_documents(texts)) for _ in range(3)]
    # Each text in its own run, on the caller and cores - 1 helpers kept between calls (a new pool per call
    # started its threads again for every question's sentences).
    assert sorted(text for text, _ in runs) == sorted(texts * 3)
    assert len({id(thread) for _, thread in runs}) <= cores
    assert all(np.array_equal(batch, batches[0]) for batch in batches)
    alone = np.vstack([embedder.embed_query(t) for t in texts])
    assert np.array_equal(batches[0], alone)


def test_an_error_on_a_helper_thread_reaches_the_caller(uncached: Settings) -> None:
    embedder = get_embedder(uncached.embedding)
    assert isinstance(embedder, LocalEmbedder)

    def fails_on_three(item: int) -> int:
        if item == 3:
            raise ValueError("item 3")
        return item * 2

    with pytest.raises(ValueError, match="item 3"):
        embedder._map(fails_on_three, list(range(8)), 2)
    assert embedder._map(lambda item: item * 2, list(range(8)), 2) == [i * 2 for i in range(8)]


class _CountedList(list[str]):
    """A list that counts the passes over it."""

    passes = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).passes += 1
        return super().__iter__()


def test_a_question_does_not_pass_over_every_section(uncached: Settings) -> None:
    # The library scale's freshness key names the number of courses; it was a set of every section's course per
    # question (5-10 ms of retrieval at 100k chunks), now counted once per section index.
    pilot = CoursePilot(uncached)
    pilot.ask(QUESTION)  # the sections and the library scale are loaded
    sections = pilot.index.sections()
    courses = sections.courses
    assert courses == len(set(sections.course_of)) > 1
    sections.course_of = _CountedList(sections.course_of)
    _CountedList.passes = 0
    answer = pilot.ask("How do I give useful feedback?")
    assert not answer.refused and pilot.index.sections() is sections
    assert _CountedList.passes == 0
