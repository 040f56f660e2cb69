"""The durable outbox: statements are written to SQLite before they are sent, and deleted only once delivered."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

_QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS statements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS statements_pending ON statements(state, seq);
"""


class Outbox:
    """Durable FIFO of statements (SQLite, WAL, synchronous=FULL). Rows are leased while a POST is in flight,
    so two processes sharing the file never send the same statement at the same time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_QUEUE_SCHEMA)

    def add(self, statements: Sequence[dict[str, Any]]) -> None:
        rows = [(s["id"], json.dumps(s, ensure_ascii=False, separators=(",", ":")), time.time()) for s in statements]
        with self._lock:
            self._conn.executemany("INSERT OR IGNORE INTO statements (id, body, enqueued_at) VALUES (?, ?, ?)", rows)

    def claim(self, limit: int, lease_s: float) -> list[tuple[str, str]]:
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._conn.execute(
                    "SELECT id, body FROM statements WHERE state='pending' AND lease_until < ? ORDER BY seq LIMIT ?",
                    (now, limit),
                ).fetchall()
                self._conn.executemany(
                    "UPDATE statements SET lease_until=? WHERE id=?", [(now + lease_s, r[0]) for r in rows]
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return [(r[0], r[1]) for r in rows]

    def delete(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM statements WHERE id=?", [(i,) for i in ids])

    def release(self, ids: Iterable[str], error: str) -> None:
        with self._lock:
            self._conn.executemany(
                "UPDATE statements SET lease_until=0, attempts=attempts+1, last_error=? WHERE id=?",
                [(error, i) for i in ids],
            )

    def reject(self, statement_id: str, error: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE statements SET state='rejected', lease_until=0, attempts=attempts+1, last_error=? WHERE id=?",
                (error, statement_id),
            )

    def count(self, state: str = "pending") -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM statements WHERE state=?", (state,)).fetchone()[0])

    def rows(self, state: str) -> list[dict[str, Any]]:
        with self._lock:
            found = self._conn.execute(
                "SELECT id, body, attempts, last_error FROM statements WHERE state=? ORDER BY seq", (state,)
            ).fetchall()
        return [{"id": r[0], "statement": json.loads(r[1]), "attempts": r[2], "last_error": r[3]} for r in found]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
