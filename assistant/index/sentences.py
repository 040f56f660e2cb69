"""Sentence-level evidence: one contextual vector per sentence of every chunk, kept incrementally in the ledger.

A long chunk's single vector blurs the one sentence that answers a question. When the embedder can give token
outputs (the onnx backends), ingest mean-pools them over each sentence's tokens in the same model run that embeds
the chunk ("late chunking"), so the sentence vectors cost no extra model call. They are stored under the hash of
the text the chunk was embedded from (heading trail + text): a re-ingest of an unchanged chunk embeds nothing, an
edited chunk gets its sentences afresh, a removed chunk loses them.

Storage: one row per chunk in the ledger's `sentences` table (ledger/sentence_rows.py; SQLite or PostgreSQL, so a
worker on another host reads what the ingest host wrote). The row's blob holds, per sentence, its scale and
character span in ``chunk.text`` (12 bytes) and its int8 vector (384 bytes at 384 dimensions, a quarter of
float32; each row is scaled by its largest component, cosines move by < 0.01). A question's ~30 candidates are one
SELECT by primary key. Sentences are never searched on their own, so they need no vector index. Release 19 kept them
in files under ``<index dir>/<collection>/sentences/``; nothing reads those, and the next ingest deletes them.

Reading (e.g. the extractive answerer): ``LibraryIndex.sentence_store.sentences(chunk_ids)`` gives, per chunk that
has them, a ``ChunkSentences`` (character spans into ``chunk.text`` from ``sentence_spans``, and unit float32
vectors, rows aligned); ``best_cosine(query_vector, chunk_ids)`` the best sentence cosine per chunk (NaN: none).
Late-chunked vectors carry their chunk's context, so their cosines differ from those of the sentence embedded
alone (openstax train, top-10 candidates: best sentence 0.55 late vs 0.60 alone; within a chunk the two orders
correlate 0.74): a threshold set on one does not carry over to the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from assistant.core.text import split_sentences
from assistant.index.ledger import Ledger

# Bumped when sentence_spans() or the pooling changes: every sentence is embedded afresh.
SENTENCES_VERSION = 2
_META = np.dtype([("scale", "<f4"), ("start", "<i4"), ("end", "<i4")])

Span = tuple[int, int]
# One chunk's sentences as stored: (dimension, count, body: count meta records, then the int8 rows).
Encoded = tuple[int, int, bytes]


def sentence_spans(text: str) -> list[Span]:
    """(start, end) character offsets in `text` of its sentences and list items (core.text.split_sentences)."""
    out: list[Span] = []
    pos = 0
    for unit in split_sentences(text):
        start = text.find(unit, pos)
        if start < 0:
            continue
        out.append((start, start + len(unit)))
        pos = start + len(unit)
    return out


def sentence_key(embedded_text: str) -> str:
    """Sentence vectors depend on the whole text the chunk was embedded from (late chunking), not only on a span."""
    return hashlib.sha1(f"{SENTENCES_VERSION}\0{embedded_text}".encode()).hexdigest()[:24]


class ChunkSentences(BaseModel):
    """The sentences of one chunk: character spans into ``chunk.text`` and one unit vector per span (rows align).

    A row of zeros is a sentence that got no vector (it fell beyond the model's token window)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    chunk_id: str
    spans: list[Span]
    vectors: np.ndarray


class SentenceStats(BaseModel):
    """What one sync did: chunks whose sentences were stored, kept, dropped; sentences stored now."""

    embedded: int = 0
    reused: int = 0
    deleted: int = 0
    sentences: int = 0


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and their float32 scales (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    scale = np.abs(vectors).max(axis=1) / 127.0 if len(vectors) else np.zeros(0, dtype=np.float32)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(vectors / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


class SentenceStore:
    """Sentence vectors of one library index, in its ledger (see the module docstring).

    `ledger` is the ledger, or a function returning the current one (LibraryIndex reopens its ledger when the index
    folder is replaced)."""

    def __init__(self, ledger: Ledger | Callable[[], Ledger]) -> None:
        self._ledger = ledger

    @property
    def ledger(self) -> Ledger:
        return self._ledger if isinstance(self._ledger, Ledger) else self._ledger()

    # -- reading ------------------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The ledger generation the last sync reflected (-1: none yet)."""
        return int(self.ledger.get_meta("sentences_generation") or -1)

    def chunk_keys(self) -> dict[str, str]:
        """chunk id -> text key of every chunk with stored sentences."""
        return self.ledger.sentence_keys(SENTENCES_VERSION)

    def keys(self) -> set[str]:
        return set(self.chunk_keys().values())

    def _rows(self, chunk_ids: Iterable[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """chunk id -> (meta records, int8 rows) of the chunks that have stored sentences."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for cid, (dim, n, body) in self.ledger.sentence_rows(list(chunk_ids), SENTENCES_VERSION).items():
            meta = np.frombuffer(body, dtype=_META, count=n)
            vectors = np.frombuffer(body, dtype=np.int8, count=n * dim, offset=n * _META.itemsize).reshape(n, dim)
            out[cid] = (meta, vectors)
        return out

    def sentences(self, chunk_ids: Iterable[str]) -> dict[str, ChunkSentences]:
        """Spans and vectors of the chunks that have them (a chunk without stored sentences is left out)."""
        out: dict[str, ChunkSentences] = {}
        for cid, (meta, vectors) in self._rows(chunk_ids).items():
            values = vectors.astype(np.float32) * meta["scale"][:, None]
            norms = np.linalg.norm(values, axis=1, keepdims=True)
            values = values / np.where(norms > 0, norms, 1.0)
            spans = [(int(s), int(e)) for s, e in zip(meta["start"], meta["end"], strict=True)]
            out[cid] = ChunkSentences(chunk_id=cid, spans=spans, vectors=values.astype(np.float32))
        return out

    def best_cosine(self, query_vector: np.ndarray, chunk_ids: Sequence[str]) -> np.ndarray:
        """Per chunk, the best cosine of the query to one of its sentences; NaN where a chunk has none stored.

        One ledger read of the chunks' rows and one product: a question's 30 candidates cost about a millisecond.
        """
        out = np.full(len(chunk_ids), np.nan, dtype=np.float32)
        q = np.asarray(query_vector, dtype=np.float32)
        found = self._rows(chunk_ids) if len(chunk_ids) else {}
        usable = {cid for cid, (_, rows) in found.items() if len(rows) and rows.shape[1] == q.shape[0]}
        slots = [k for k, cid in enumerate(chunk_ids) if cid in usable]
        if not slots:
            return out
        blocks = [found[chunk_ids[k]][1] for k in slots]
        values = np.concatenate(blocks).astype(np.float32)
        norms = np.linalg.norm(values, axis=1)
        scores = np.where(norms > 0, (values @ q) / np.where(norms > 0, norms, 1.0), -np.inf)
        starts = np.cumsum([0] + [len(b) for b in blocks[:-1]])
        best = np.maximum.reduceat(scores, starts)
        out[slots] = np.where(np.isfinite(best), best / max(float(np.linalg.norm(q)), 1e-9), np.nan)
        return out

    # -- writing (under the ingest lease: one writer) -----------------------------------------------------
    def sync(
        self,
        chunk_keys: Mapping[str, str],
        fresh: Mapping[str, Encoded],
        generation: int,
        replace: bool = False,
    ) -> SentenceStats:
        """Make the store hold the sentences of exactly the chunks in `chunk_keys` (chunk id -> text key).

        `fresh` holds newly computed sentences by text key, encoded (`encode_sentences`: int8, a quarter of the
        memory float vectors take while an ingest runs); with `replace` they overwrite stored ones (a full
        rebuild). A chunk whose key another chunk's row has gets a copy of it. A key neither stored nor fresh stays
        missing (its chunk's signal falls back to the chunk). One ledger transaction."""
        stored = self.chunk_keys()
        holder: dict[str, str] = {}
        for cid, key in stored.items():
            holder.setdefault(key, cid)
        wanted = set(chunk_keys.values())
        before = set(holder)
        new = {k: v for k, v in fresh.items() if k in wanted and (replace or k not in before)}
        bodies = dict(new)
        copies: list[tuple[str, str]] = []
        rows: list[tuple[str, str, int, int, int, bytes]] = []
        for cid, key in chunk_keys.items():
            if key in bodies:
                dim, n, body = bodies[key]
                rows.append((cid, key, SENTENCES_VERSION, dim, n, body))
            elif stored.get(cid) != key and key in holder:
                copies.append((cid, holder[key]))
        kept = {cid for cid, _ in copies} | {r[0] for r in rows}
        kept |= {cid for cid, key in chunk_keys.items() if stored.get(cid) == key}
        drop = sorted(set(stored) - kept)
        self.ledger.write_sentences(SENTENCES_VERSION, copies, rows, drop, generation)
        reused = len(wanted & before) - (len(new) if replace else 0)
        sentences = self.ledger.sentence_count(SENTENCES_VERSION)
        return SentenceStats(
            embedded=len(new), reused=max(reused, 0), deleted=len(before - wanted), sentences=sentences
        )

    def size_bytes(self) -> int:
        """Bytes of the stored blobs (the database's own overhead comes on top)."""
        return self.ledger.sentence_totals()[2]

    def clear(self) -> None:
        self.ledger.clear_sentences()


def encode_sentences(spans: Sequence[Span], vectors: np.ndarray) -> Encoded:
    """(dim, n, body) of one chunk's sentences: n meta records, then the int8 rows."""
    n = len(spans)
    values = np.asarray(vectors, dtype=np.float32)
    dim = int(values.shape[-1]) if values.ndim == 2 else 0
    q, scale = quantise(values.reshape(n, dim))
    meta = np.zeros(n, dtype=_META)
    meta["scale"] = scale
    meta["start"] = [s for s, _ in spans]
    meta["end"] = [e for _, e in spans]
    return dim, n, meta.tobytes() + q.tobytes()
