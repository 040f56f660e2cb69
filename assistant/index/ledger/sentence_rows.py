"""The ledger's sentence rows: each chunk's late-chunked sentence vectors as one compact blob (schema version 2).

Kept in the ledger, not in files beside one host's index, so every worker that follows the ledger (SQLite on one
machine, PostgreSQL across several) reads the same vectors. The blob's layout is SentenceStore's business
(assistant/index/sentences.py); this mixin only moves rows. A question's ~30 candidates are one SELECT (one round
trip on PostgreSQL).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

# At most this many ids in one IN (...) list (SQLite's default limit on host parameters is far above it).
_IN_BATCH = 500

# (chunk id, text key, version, dim, n, body)
SentenceRow = tuple[str, str, int, int, int, bytes]


class SentenceRows(abc.ABC):
    """Read and write the `sentences` table; mixed into Ledger, which supplies the statements below."""

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @abc.abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[None]: ...

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    def sentence_rows(self, chunk_ids: Sequence[str], version: int) -> dict[str, tuple[int, int, bytes]]:
        """chunk id -> (dim, n, body) of the ids that have a row of this version."""
        out: dict[str, tuple[int, int, bytes]] = {}
        ids = list(dict.fromkeys(chunk_ids))
        for start in range(0, len(ids), _IN_BATCH):
            part = ids[start : start + _IN_BATCH]
            rows = self._execute(
                f"SELECT chunk_id, dim, n, body FROM sentences WHERE version=? AND chunk_id IN ({','.join('?' * len(part))})",
                [version, *part],
            ).fetchall()
            out.update((r[0], (int(r[1]), int(r[2]), bytes(r[3]))) for r in rows)
        return out

    def sentence_keys(self, version: int) -> dict[str, str]:
        """chunk id -> text key of every row of this version (from the covering index)."""
        return dict(self._execute("SELECT chunk_id, text_key FROM sentences WHERE version=?", (version,)).fetchall())

    def sentence_count(self, version: int) -> int:
        """Sentences stored in rows of this version (read from the covering index, not the blobs)."""
        row = self._execute("SELECT COALESCE(SUM(n), 0) FROM sentences WHERE version=?", (version,)).fetchone()
        return int(row[0])

    def sentence_totals(self) -> tuple[int, int, int]:
        """(rows, sentences, bytes of the blobs) stored, of any version."""
        row = self._execute("SELECT COUNT(*), COALESCE(SUM(n), 0), COALESCE(SUM(length(body)), 0) FROM sentences")
        rows, sentences, size = row.fetchone()
        return int(rows), int(sentences), int(size)

    def write_sentences(
        self,
        version: int,
        copies: Sequence[tuple[str, str]],
        rows: Sequence[SentenceRow],
        drop: Sequence[str],
        generation: int,
    ) -> None:
        """In one transaction: copy rows to new chunk ids ((to, from): same text, no model run), upsert `rows`,
        delete the rows of `drop` and of other versions, and record the ledger generation they reflect."""
        upsert = (
            "ON CONFLICT (chunk_id) DO UPDATE SET text_key=excluded.text_key, version=excluded.version, "
            "dim=excluded.dim, n=excluded.n, body=excluded.body"
        )
        with self._write():
            self._executemany(
                "INSERT INTO sentences (chunk_id, text_key, version, dim, n, body) "
                f"SELECT ?, text_key, version, dim, n, body FROM sentences WHERE chunk_id=? {upsert}",
                list(copies),
            )
            self._executemany(f"INSERT INTO sentences VALUES (?, ?, ?, ?, ?, ?) {upsert}", list(rows))
            self._executemany("DELETE FROM sentences WHERE chunk_id=?", [(cid,) for cid in drop])
            if self.get_meta("sentences_version") != str(version):  # a new pooling: no older row is valid
                self._execute("DELETE FROM sentences WHERE version<>?", (version,))
                self.set_meta("sentences_version", str(version))
            self.set_meta("sentences_generation", str(generation))

    def clear_sentences(self) -> None:
        with self._write():
            self._execute("DELETE FROM sentences")
            self.set_meta("sentences_generation", "-1")
