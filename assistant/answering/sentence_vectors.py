"""Sentence vectors for the extractive answerer: stored at ingest when the index keeps them, else embedded.

The scorer asks for the vectors of its candidate sentences, each named by its chunk id and its text. A
`SentenceStore` (vectors kept at ingest; the index's sentence representation) answers for the sentences it
holds, at the cost of a lookup. What it does not hold is embedded with the index's own embedder, in one batch,
and kept in an LRU by text, but only for the `candidates` most promising sentences: an embedding costs about one
short forward pass, a stored vector next to nothing, so with a store many more sentences are matched by meaning.
Each match says where its cosine came from (`SentenceMatch.stored`): the two sit on different scales, and the
answerer holds each to its own off-topic floors.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np
from pydantic import BaseModel

from assistant.core.types import Chunk
from assistant.models.embeddings import EmbeddingModel

# Sentences embedded per question when no vector is stored (COURSEPILOT_ANSWER_SENTENCE_CANDIDATES).
MAX_EMBEDDED = 8
# Sentences matched by meaning per question when their vectors are stored (a dot product each).
MAX_STORED = 40


class SentenceMatch(BaseModel):
    """A candidate sentence's cosine to the question, and whether it came from a stored (late-chunked) vector or
    from embedding the sentence alone (the two sit on different scales: each has its own off-topic floors)."""

    cosine: float
    stored: bool


class SentenceStore(Protocol):
    """Sentence vectors kept at ingest, by chunk id, then by the sentence's text as the answerer quotes it
    (extractive.chunk_sentences); unit-normalised rows."""

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> Mapping[str, Mapping[str, np.ndarray]]: ...


class _Spans(Protocol):
    spans: list[tuple[int, int]]
    vectors: np.ndarray


class SpanStore(Protocol):
    """A store of sentence vectors by character span of chunk.text (the index's sentence representation)."""

    def sentences(self, chunk_ids: Iterable[str]) -> Mapping[str, _Spans]: ...


class SpanSentences:
    """A SpanStore read as a SentenceStore: each span's text, cleaned of its list marker as the answerer quotes
    it, names its vector; a zero row (a sentence that got no vector) is left out. A unit the answerer reads as
    several spans run together (a line that does not end a sentence continues on the next, see
    extractive.passage_units) gets their vectors averaged, weighted by length: late chunking mean-pools tokens."""

    def __init__(self, store: SpanStore) -> None:
        self.store = store

    def sentence_vectors(self, chunks: Sequence[Chunk]) -> Mapping[str, Mapping[str, np.ndarray]]:
        from assistant.answering.extractive import chunk_sentences, clean_unit

        by_id = {c.id: c for c in chunks}
        out: dict[str, dict[str, np.ndarray]] = {}
        for chunk_id, found in self.store.sentences(list(by_id)).items():
            chunk = by_id[chunk_id]
            raw = [chunk.text[start:end] for start, end in found.spans]
            texts = [clean_unit(text)[0] for text in raw]
            vectors = np.asarray(found.vectors, dtype=np.float32)
            rows = {text: vector for text, vector in zip(texts, vectors, strict=False) if np.any(vector)}
            for _, unit, _ in chunk_sentences(chunk):
                if unit not in rows and (joined := _run_on(unit, texts, raw, vectors)) is not None:
                    rows[unit] = joined
            out[chunk_id] = rows
        return out


def _run_on(unit: str, texts: Sequence[str], raw: Sequence[str], vectors: np.ndarray) -> np.ndarray | None:
    """The vector of `unit` when it is consecutive spans joined by spaces (the first cleaned of its list marker,
    the others as written: "Decide. 2. Act."), all with a vector; else None."""
    for i, first in enumerate(texts):
        if not first or len(first) >= len(unit) or not unit.startswith(f"{first} "):
            continue
        joined, last = first, i
        while len(joined) < len(unit) and last + 1 < len(raw):
            last += 1
            joined = f"{joined} {raw[last]}"
        block = vectors[i : last + 1]
        if joined == unit and bool(np.all(np.any(block, axis=1))):
            pooled = np.asarray([len(t) for t in raw[i : last + 1]], dtype=np.float32) @ block
            return (pooled / max(float(np.linalg.norm(pooled)), 1e-9)).astype(np.float32)
    return None


class SentenceVectors:
    """Vectors of candidate sentences: from the store where it has them, else embedded (cached by text)."""

    def __init__(
        self,
        embedder: EmbeddingModel,
        size: int = 20_000,
        candidates: int = MAX_EMBEDDED,
        store: SentenceStore | None = None,
        stored_candidates: int = MAX_STORED,
    ) -> None:
        self.embedder = embedder
        self.size = size
        self.candidates = candidates
        self.store = store
        self.stored_candidates = stored_candidates
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._known_query: tuple[str, np.ndarray] | None = None

    def for_query(self, text: str, vector: np.ndarray | None) -> SentenceVectors:
        """These vectors (the same cache, store and embedder) knowing `text`'s embedding already: retrieval
        embedded the question, so matching its sentences need not embed it again (`query`)."""
        if vector is None:
            return self
        view = copy.copy(self)  # shares the cache and its lock
        view._known_query = (text, np.asarray(vector, dtype=np.float32))
        return view

    def query(self, text: str) -> np.ndarray:
        """The embedding of the question `text`: the one given to `for_query`, else embedded."""
        known = self._known_query
        if known is not None and known[0] == text:
            return known[1]
        return np.asarray(self.embedder.embed_query(text), dtype=np.float32)

    def get(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts` (one batch for those not cached yet)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = np.asarray(self.embedder.embed_documents(missing), dtype=np.float32)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = vector
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        with self._lock:
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
            found = [self._cache[t] for t in texts if t in self._cache]
        if len(found) != len(texts):  # evicted by another thread in between: compute them again
            return np.asarray(self.embedder.embed_documents(list(texts)), dtype=np.float32)
        return np.vstack(found) if found else np.zeros((0, 0), dtype=np.float32)

    def match(self, wanted: Sequence[tuple[Chunk, str, str]], query: np.ndarray) -> list[SentenceMatch | None]:
        """Cosine to `query` of each (chunk, sentence, text to embed), best candidates first.

        With a store, the first `stored_candidates` sentences are matched: by their stored vector where the store
        holds one, else (the first `candidates` of those that have none) embedded. Without a store, the first
        `candidates` are embedded. The rest get None: not matched by meaning.
        """
        out: list[SentenceMatch | None] = [None] * len(wanted)
        stored: Mapping[str, Mapping[str, np.ndarray]] = {}
        window = len(wanted)
        if self.store is not None and self.stored_candidates > 0:
            window = self.stored_candidates
            chunks = list({c.id: c for c, _, _ in wanted[:window]}.values())
            stored = self.store.sentence_vectors(chunks)
        to_embed: list[int] = []
        for i, (chunk, sentence, _) in enumerate(wanted[:window]):
            vector = stored.get(chunk.id, {}).get(sentence)
            if vector is not None:
                out[i] = SentenceMatch(cosine=float(np.asarray(vector, dtype=np.float32) @ query), stored=True)
            elif len(to_embed) < self.candidates:
                to_embed.append(i)
        if to_embed:
            vectors = self.get([wanted[i][2] for i in to_embed])
            for i, similarity in zip(to_embed, (vectors @ query).tolist(), strict=True):
                out[i] = SentenceMatch(cosine=float(similarity), stored=False)
        return out


__all__ = [
    "MAX_EMBEDDED",
    "MAX_STORED",
    "SentenceMatch",
    "SentenceStore",
    "SentenceVectors",
    "SpanSentences",
    "SpanStore",
]
