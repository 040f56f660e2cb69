"""Embedders for the benchmark: a timing wrapper, proxy vectors, and a LangChain `Embeddings` adapter."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from evals.bench.library import TextPool


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in embed_documents."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "embedder")
        self.dimensions = getattr(inner, "dimensions", 384)
        self.seconds = 0.0
        self.texts = 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return np.asarray(self.inner.embed_documents(texts), dtype=np.float32)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)

    def embed_with_spans(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> Any:
        """The inner embedder's late-chunked vectors (chunks and their sentences), timed; None without them."""
        inner = getattr(self.inner, "embed_with_spans", None)
        if not callable(inner):
            return None
        started = time.perf_counter()
        try:
            return inner(texts, spans)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.inner.embed_query(text), dtype=np.float32)

    def first_use_work(self) -> str | None:
        work = getattr(self.inner, "first_use_work", None)
        return work() if callable(work) else None

    def prepare(self) -> None:
        prepare = getattr(self.inner, "prepare", None)
        if callable(prepare):
            prepare()


class ProxyEmbedder:
    """Vectors for libraries too large to embed here, from real model vectors of the passages their text came from.

    A text's vector is the normalised mean of the pool-passage vectors of its known sentences (plus a little
    seeded noise, so two chunks never share a vector); a text with no known sentence gets a seeded random one.

    Like the onnx embedder it also gives late-chunked sentence vectors (`embed_with_spans`), so a proxy library
    stores one vector per sentence as a real one does, for the same spans: a sentence's proxy vector is the
    normalised mean of the real vector of the pool passage it came from and its chunk's proxy vector (the
    context a late-chunked vector carries), plus the same small seeded noise; a sentence from no known passage
    gets its chunk's vector plus noise.
    """

    def __init__(self, pool: TextPool, vectors: np.ndarray, noise: float = 0.02) -> None:
        self.pool = pool
        self.vectors = vectors
        self.noise = noise
        self.name = "proxy"
        self.dimensions = int(vectors.shape[1])

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        from assistant.core.text import split_sentences

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = {self.pool.sentence_source[s] for s in split_sentences(text) if s in self.pool.sentence_source}
            seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")
            rng = np.random.default_rng(seed)
            noise = rng.standard_normal(self.dimensions).astype(np.float32)
            if ids:
                vec = self.vectors[sorted(ids)].mean(axis=0)
                vec = vec / max(float(np.linalg.norm(vec)), 1e-9) + self.noise * noise / math.sqrt(self.dimensions)
            else:
                vec = noise
            out[row] = vec / max(float(np.linalg.norm(vec)), 1e-9)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Chunk vectors (as embed_documents) and one proxy vector per character span of each text (see above)."""
        vectors = self.embed_documents(texts)
        per_text: list[np.ndarray] = []
        for text, chunk, text_spans in zip(texts, vectors, spans, strict=True):
            seed = int.from_bytes(hashlib.sha1(f"spans\0{text}".encode()).digest()[:8], "little")
            noise = np.random.default_rng(seed).standard_normal((len(text_spans), self.dimensions)).astype(np.float32)
            rows = np.tile(chunk, (len(text_spans), 1))
            for row, (start, end) in enumerate(text_spans):
                source = self.pool.sentence_source.get(text[start:end])
                if source is not None:
                    rows[row] = (self.vectors[source] + chunk) / 2
            rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)
            rows += self.noise * noise / math.sqrt(self.dimensions)
            per_text.append(rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9))
        return vectors, per_text


def langchain_embeddings(embedder: Any) -> Any:
    """A LangChain `Embeddings` over one of our embedders."""
    from langchain_core.embeddings import Embeddings

    class _Wrapped(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return np.asarray(embedder.embed_documents(texts), dtype=np.float32).tolist()

        def embed_query(self, text: str) -> list[float]:
            return np.asarray(embedder.embed_query(text), dtype=np.float32).tolist()

    return _Wrapped()
