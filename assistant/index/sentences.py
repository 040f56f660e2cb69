"""Sentence-level evidence: one contextual vector per sentence of every chunk, kept incrementally on disk.

A long chunk's single vector blurs the one sentence that answers a question. When the embedder can give token
outputs (the onnx backends), ingest mean-pools them over each sentence's tokens in the same model run that embeds
the chunk ("late chunking"), so the sentence vectors cost no extra model call. They are stored under the hash of
the text the chunk was embedded from (heading trail + text): a re-ingest of an unchanged chunk embeds nothing, an
edited chunk gets its sentences afresh, a removed chunk loses them.

Storage (``<index dir>/sentences/``), chosen to scale to ~1M sentences (100k chunks) without a Chroma collection
(sentences are never searched on their own, only read for a question's ~30 candidates):

- ``rows-<epoch>.i8``: int8 vectors, one row per sentence, each scaled by its largest component (384 bytes a
  sentence, a quarter of float32; cosines move by < 0.01);
- ``rows-<epoch>.meta``: per row, its scale and character span in ``chunk.text``;
- ``manifest.json``: text key -> (first row, count), chunk id -> text key, the ledger generation it reflects.

New sentences are appended to the row files; the manifest is replaced atomically after the rows are on disk, so
a reader never sees a row that is not written. When half the rows or more are no longer referenced, the live
rows are copied to the next epoch's files and the old files are removed. Readers memory-map the row files.

Reading (e.g. the extractive answerer): ``LibraryIndex.sentence_store.sentences(chunk_ids)`` gives, per chunk that
has them, a ``ChunkSentences`` (character spans into ``chunk.text`` from ``sentence_spans``, and unit float32
vectors, rows aligned); ``best_cosine(query_vector, chunk_ids)`` the best sentence cosine per chunk (NaN: none).
Late-chunked vectors carry their chunk's context, so their cosines differ from those of the sentence embedded
alone (openstax train, top-10 candidates: best sentence 0.55 late vs 0.60 alone; within a chunk the two orders
correlate 0.74): a threshold set on one does not carry over to the other.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from assistant.core.text import split_sentences

# Bumped when sentence_spans() or the pooling changes: every sentence is embedded afresh.
SENTENCES_VERSION = 2
_META = np.dtype([("scale", "<f4"), ("start", "<i4"), ("end", "<i4")])

Span = tuple[int, int]


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
    """Sentence vectors of one library index, in `folder` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._manifest: dict | None = None
        self._stamp: tuple[int, int] | None = None
        self._maps: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    # -- reading ------------------------------------------------------------------------------------------
    def _load(self) -> dict:
        try:
            st = os.stat(self.manifest_path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            self._manifest, self._stamp, self._maps = _empty(), None, None
            return self._manifest
        if self._manifest is None or stamp != self._stamp:
            try:
                body = json.loads(self.manifest_path.read_text(encoding="utf-8"))
                if body.get("version") != SENTENCES_VERSION:
                    body = _empty()
            except (OSError, ValueError):
                body = _empty()
            self._manifest, self._stamp, self._maps = body, stamp, None
        return self._manifest

    @property
    def generation(self) -> int:
        return int(self._load().get("generation", -1))

    def chunk_keys(self) -> dict[str, str]:
        return dict(self._load()["chunks"])

    def keys(self) -> set[str]:
        return set(self._load()["entries"])

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        body = self._load()
        rows, dim, epoch = int(body["rows"]), int(body["dim"]), int(body["epoch"])
        if rows == 0 or dim == 0:
            return np.zeros((0, max(dim, 1)), dtype=np.int8), np.zeros(0, dtype=_META)
        if self._maps is None or self._maps[0] != rows:
            vectors = np.memmap(self._file(epoch, "i8"), dtype=np.int8, mode="r", shape=(rows, dim))
            meta = np.memmap(self._file(epoch, "meta"), dtype=_META, mode="r", shape=(rows,))
            self._maps = (rows, vectors, meta)
        return self._maps[1], self._maps[2]

    def sentences(self, chunk_ids: Iterable[str]) -> dict[str, ChunkSentences]:
        """Spans and vectors of the chunks that have them (a chunk without stored sentences is left out)."""
        body = self._load()
        chunks, entries = body["chunks"], body["entries"]
        found = [(cid, entries[chunks[cid]]) for cid in chunk_ids if cid in chunks and chunks[cid] in entries]
        if not found:
            return {}
        vectors, meta = self._rows()
        out: dict[str, ChunkSentences] = {}
        for cid, (first, count) in found:
            rows = meta[first : first + count]
            values = vectors[first : first + count].astype(np.float32) * rows["scale"][:, None]
            norms = np.linalg.norm(values, axis=1, keepdims=True)
            values = values / np.where(norms > 0, norms, 1.0)
            spans = [(int(s), int(e)) for s, e in zip(rows["start"], rows["end"], strict=True)]
            out[cid] = ChunkSentences(chunk_id=cid, spans=spans, vectors=values.astype(np.float32))
        return out

    def best_cosine(self, query_vector: np.ndarray, chunk_ids: Sequence[str]) -> np.ndarray:
        """Per chunk, the best cosine of the query to one of its sentences; NaN where a chunk has none stored.

        One gather of the chunks' rows and one product: a question's 30 candidates cost well under a millisecond.
        """
        out = np.full(len(chunk_ids), np.nan, dtype=np.float32)
        body = self._load()
        chunks, entries = body["chunks"], body["entries"]
        q = np.asarray(query_vector, dtype=np.float32)
        if not entries or int(body["dim"]) != q.shape[0]:
            return out
        slots: list[int] = []
        ranges: list[np.ndarray] = []
        for k, cid in enumerate(chunk_ids):
            entry = entries.get(chunks.get(cid, ""))
            if entry is not None and entry[1] > 0:
                slots.append(k)
                ranges.append(np.arange(entry[0], entry[0] + entry[1]))
        if not slots:
            return out
        vectors, _ = self._rows()
        rows = np.concatenate(ranges)
        values = vectors[rows].astype(np.float32)
        norms = np.linalg.norm(values, axis=1)
        scores = np.where(norms > 0, (values @ q) / np.where(norms > 0, norms, 1.0), -np.inf)
        starts = np.cumsum([0] + [len(r) for r in ranges[:-1]])
        best = np.maximum.reduceat(scores, starts)
        out[slots] = np.where(np.isfinite(best), best / max(float(np.linalg.norm(q)), 1e-9), np.nan)
        return out

    # -- writing (under the ingest lease: one writer) -----------------------------------------------------
    def _file(self, epoch: int, kind: str) -> Path:
        return self.folder / f"rows-{epoch}.{kind}"

    def sync(
        self,
        chunk_keys: Mapping[str, str],
        fresh: Mapping[str, tuple[Sequence[Span], np.ndarray]],
        generation: int,
        replace: bool = False,
    ) -> SentenceStats:
        """Make the store hold the sentences of exactly the chunks in `chunk_keys` (chunk id -> text key).

        `fresh` holds newly computed sentences by text key; with `replace` they overwrite stored ones (a full
        rebuild). A key neither stored nor fresh stays missing (its chunk's signal falls back to the chunk)."""
        body = self._load()
        entries: dict[str, list[int]] = dict(body["entries"])
        wanted = set(chunk_keys.values())
        before = set(entries)
        new = {k: v for k, v in fresh.items() if k in wanted and (replace or k not in entries)}
        dim = int(body["dim"]) or next((int(v[1].shape[1]) for v in new.values() if v[1].ndim == 2), 0)
        epoch, rows = int(body["epoch"]), int(body["rows"])
        self.folder.mkdir(parents=True, exist_ok=True)
        if new:
            with open(self._file(epoch, "i8"), "ab") as fv, open(self._file(epoch, "meta"), "ab") as fm:
                fv.truncate(rows * dim)  # drop rows an interrupted run appended but never recorded
                fm.truncate(rows * _META.itemsize)
                for key, (spans, vectors) in new.items():
                    q, scale = quantise(np.asarray(vectors, dtype=np.float32).reshape(len(spans), dim))
                    meta = np.zeros(len(spans), dtype=_META)
                    meta["scale"] = scale
                    meta["start"] = [s for s, _ in spans]
                    meta["end"] = [e for _, e in spans]
                    fv.write(q.tobytes())
                    fm.write(meta.tobytes())
                    entries[key] = [rows, len(spans)]
                    rows += len(spans)
                for handle in (fv, fm):
                    handle.flush()
                    os.fsync(handle.fileno())
        for key in before - wanted:
            entries.pop(key)
        live = sum(count for _, count in entries.values())
        old_epoch = epoch
        if rows >= 2 * live and rows > 0:
            epoch, rows, entries = self._compact(epoch, dim, entries)
        body = {
            "version": SENTENCES_VERSION,
            "dim": dim,
            "epoch": epoch,
            "rows": rows,
            "generation": generation,
            "entries": entries,
            "chunks": {cid: key for cid, key in chunk_keys.items() if key in entries},
        }
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, self.manifest_path)
        if epoch != old_epoch:
            for kind in ("i8", "meta"):
                self._file(old_epoch, kind).unlink(missing_ok=True)
        self._manifest = None
        kept = len(wanted & before) - (len(new) if replace else 0)
        return SentenceStats(embedded=len(new), reused=max(kept, 0), deleted=len(before - wanted), sentences=live)

    def _compact(self, epoch: int, dim: int, entries: dict[str, list[int]]) -> tuple[int, int, dict[str, list[int]]]:
        """Copy the live rows to the next epoch's files; returns (epoch, rows, entries) of the new files."""
        target = epoch + 1
        out: dict[str, list[int]] = {}
        rows = 0
        total = os.path.getsize(self._file(epoch, "meta")) // _META.itemsize
        vectors = np.memmap(self._file(epoch, "i8"), dtype=np.int8, mode="r", shape=(total, dim))
        meta = np.memmap(self._file(epoch, "meta"), dtype=_META, mode="r", shape=(total,))
        with open(self._file(target, "i8"), "wb") as fv, open(self._file(target, "meta"), "wb") as fm:
            for key, (first, count) in sorted(entries.items(), key=lambda item: item[1][0]):
                fv.write(np.asarray(vectors[first : first + count]).tobytes())
                fm.write(np.asarray(meta[first : first + count]).tobytes())
                out[key] = [rows, count]
                rows += count
            for handle in (fv, fm):
                handle.flush()
                os.fsync(handle.fileno())
        del vectors, meta
        return target, rows, out

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*") if p.is_file()) if self.folder.is_dir() else 0

    def clear(self) -> None:
        for path in self.folder.glob("*") if self.folder.is_dir() else []:
            path.unlink(missing_ok=True)
        self._manifest = None


def _empty() -> dict:
    return {
        "version": SENTENCES_VERSION,
        "dim": 0,
        "epoch": 0,
        "rows": 0,
        "generation": -1,
        "entries": {},
        "chunks": {},
    }
