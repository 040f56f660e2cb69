"""BM25 lexical index over chunks: sparse, vectorised, kept in memory by each worker and brought up to the
ledger's generation by deltas (see LibraryIndex); a snapshot in the ledger makes a cold start cheap."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np
from scipy import sparse

from assistant.core.text import tokenize


class LexicalIndex:
    """BM25 (Lucene idf) over term counts; rows are chunks, columns are terms."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.ids: list[str] = []
        self.vocab: dict[str, int] = {}
        self.tf: sparse.csr_matrix = sparse.csr_matrix((0, 0), dtype=np.float32)
        self._weights: sparse.csc_matrix | None = None
        self._df: np.ndarray | None = None
        self._row_of: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, chunk_id: str) -> int | None:
        return self._row_of.get(chunk_id)

    def update(self, remove: Iterable[str], add: Sequence[tuple[str, dict[str, int]]]) -> None:
        """Drop rows for removed chunk ids and append rows for new ones; weights recompute lazily."""
        with self._lock:
            drop = set(remove) | {cid for cid, _ in add}
            if drop & self._row_of.keys():
                keep = np.array([cid not in drop for cid in self.ids], dtype=bool)
                self.tf = self.tf[keep]
                self.ids = [cid for cid, k in zip(self.ids, keep, strict=True) if k]
            if add:
                rows, cols, vals = [], [], []
                for r, (_, counts) in enumerate(add):
                    for term, count in counts.items():
                        col = self.vocab.setdefault(term, len(self.vocab))
                        rows.append(r)
                        cols.append(col)
                        vals.append(count)
                new = sparse.csr_matrix(
                    (np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(len(add), len(self.vocab))
                )
                old = self.tf
                old.resize((old.shape[0], len(self.vocab)))
                self.tf = sparse.vstack([old, new], format="csr")
                self.ids.extend(cid for cid, _ in add)
            self._row_of = {cid: i for i, cid in enumerate(self.ids)}
            self._weights = None

    def _bm25_weights(self) -> sparse.csc_matrix:
        with self._lock:
            if self._weights is None:
                tf = self.tf.tocsr()
                n_docs = max(tf.shape[0], 1)
                doc_len = np.asarray(tf.sum(axis=1)).ravel()
                avg = float(doc_len.mean()) if doc_len.size else 1.0
                df = np.bincount(tf.indices, minlength=tf.shape[1]).astype(np.float32)
                self._df = df
                idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
                row_idx = np.repeat(np.arange(tf.shape[0]), np.diff(tf.indptr))
                norm = self.k1 * (1.0 - self.b + self.b * doc_len[row_idx] / max(avg, 1e-9))
                data = idf[tf.indices] * tf.data * (self.k1 + 1.0) / (tf.data + norm)
                self._weights = sparse.csr_matrix(
                    (data.astype(np.float32), tf.indices, tf.indptr), shape=tf.shape
                ).tocsc()
            return self._weights

    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        """Lucene idf per term; a term the library never uses gets the highest idf."""
        n_docs = len(self.ids)
        self._bm25_weights()
        out: dict[str, float] = {}
        for term in terms:
            col = self.vocab.get(term)
            df = 0 if col is None or self._df is None else int(self._df[col])
            out[term] = float(np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)))
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 of the query against every row, in row order (zeros when no query term is indexed)."""
        cols = sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})
        if not cols or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25_weights()[:, cols].sum(axis=1), dtype=np.float32).ravel()

    def search(self, query: str, n: int, allowed_rows: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top-n (chunk id, BM25 score) with a positive score, best first."""
        cols = sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})
        if not cols or not self.ids:
            return []
        weights = self._bm25_weights()
        scores = np.asarray(weights[:, cols].sum(axis=1)).ravel()
        if allowed_rows is not None:
            scores = np.where(allowed_rows, scores, 0.0)
        n = min(n, int(np.count_nonzero(scores)))
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top]

    def updated(self, remove: Iterable[str], add: Sequence[tuple[str, dict[str, int]]]) -> LexicalIndex:
        """A new index with a delta applied; this one stays as it was for the searches still using it."""
        other = LexicalIndex(self.k1, self.b)
        with self._lock:
            other.ids = list(self.ids)
            other.vocab = dict(self.vocab)
            other.tf = self.tf.copy()
            other._row_of = dict(self._row_of)
        other.update(remove, add)
        return other

    def _write(self, fh: IO[bytes], generation: int) -> None:
        # Term counts fit in 16 bits (a 256-token chunk) and term ids in 32; the snapshot is half the float32 size.
        with self._lock:
            tf = self.tf.tocsr()
            meta = json.dumps({"generation": generation, "ids": self.ids, "vocab": list(self.vocab)}).encode()
        np.savez(
            fh,
            data=np.minimum(tf.data, 65535).astype(np.uint16),
            indices=tf.indices.astype(np.int32),
            indptr=tf.indptr.astype(np.int64),
            shape=np.asarray(tf.shape),
            meta=np.frombuffer(meta, dtype=np.uint8),
        )

    def save(self, path: Path, generation: int) -> None:
        """Atomically write a snapshot tagged with the ledger generation it reflects."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        with open(tmp, "wb") as fh:
            self._write(fh, generation)
        os.replace(tmp, path)

    def to_bytes(self, generation: int) -> bytes:
        """The snapshot as bytes, for the ledger's snapshot table."""
        buffer = io.BytesIO()
        self._write(buffer, generation)
        return buffer.getvalue()

    @classmethod
    def load(cls, source: Path | bytes) -> tuple[LexicalIndex, int] | None:
        """The snapshot (a file or bytes) and its generation, or None if absent or unreadable."""
        try:
            with np.load(io.BytesIO(source) if isinstance(source, bytes) else source) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                index = cls()
                index.tf = sparse.csr_matrix(
                    (data["data"].astype(np.float32), data["indices"], data["indptr"]), shape=tuple(data["shape"])
                )
        except (OSError, ValueError, KeyError, EOFError):
            return None
        index.ids = list(meta["ids"])
        index.vocab = {t: i for i, t in enumerate(meta["vocab"])}
        index._row_of = {cid: i for i, cid in enumerate(index.ids)}
        return index, int(meta["generation"])
