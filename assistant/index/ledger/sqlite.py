"""The embedded ledger: one SQLite file in WAL mode next to the embedded Chroma store (the default)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.core.errors import ConfigError
from assistant.index.ledger.base import Ledger, busy_error, holder_name
from assistant.index.ledger.schema import base_schema

log = logging.getLogger(__name__)

# A lease row whose holder stopped renewing it is free after this long; a holder on this host whose process is
# gone frees it at once.
LEASE_TTL_S = 15.0


class SqliteLedger(Ledger):
    """Ledger in a SQLite file (WAL): one host, any number of processes."""

    backend = "sqlite"

    def __init__(self, path: Path, collection: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.collection = collection or path.parent.name
        self._local = threading.local()
        try:
            self._conn().executescript(base_schema("BLOB"))
            if self.needs_migration:  # checked first: an up-to-date ledger opens without taking the write lock
                with self._write():
                    self._migrate("BLOB")
        except sqlite3.DatabaseError as exc:  # a damaged or foreign file: say which, and how to rebuild it
            self.close()
            raise ConfigError(
                f"The index ledger {path} cannot be read ({exc}).",
                f"delete the folder {path.parent} and run `coursepilot ingest --full` to rebuild the index.",
            ) from exc

    def describe(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn().execute(sql, params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn().executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[None]:
        conn = self._conn()
        if self._local.depth:  # nested: the outer transaction commits
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        conn.execute(begin)
        self._local.depth = 1
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def _write(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction("BEGIN")

    @contextlib.contextmanager
    def lease(self, name: str, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """A lease row renewed by a heartbeat thread; expired, or held by a dead process on this host, it is free."""
        conn = self._connect()  # its own connection: the heartbeat thread renews through it
        me = holder_name()
        told = False
        try:
            while True:
                holder = self._try_take(conn, name, me)
                if holder is None:
                    break
                if not wait:
                    raise busy_error(self.collection, holder)
                if on_wait and not told:
                    on_wait(holder)
                    told = True
                time.sleep(0.5)
            stop = threading.Event()
            beat = threading.Thread(target=self._heartbeat, args=(conn, name, stop), daemon=True)
            beat.start()
            try:
                yield
            finally:
                stop.set()
                beat.join()
                conn.execute("DELETE FROM leases WHERE name=? AND host=? AND pid=?", (name, _host(), os.getpid()))
        finally:
            conn.close()

    def _try_take(self, conn: sqlite3.Connection, name: str, me: str) -> str | None:
        """Take the lease (returns None) or return who holds it."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT holder, host, pid, expires FROM leases WHERE name=?", (name,)).fetchone()
            if row is not None and row[3] > time.time() and not (row[1] == _host() and not _alive(int(row[2]))):
                conn.execute("ROLLBACK")
                return str(row[0])
            conn.execute(
                "INSERT INTO leases VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, "
                "host=excluded.host, pid=excluded.pid, expires=excluded.expires",
                (name, me, _host(), os.getpid(), time.time() + LEASE_TTL_S),
            )
            conn.execute("COMMIT")
            return None
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _heartbeat(conn: sqlite3.Connection, name: str, stop: threading.Event) -> None:
        while not stop.wait(LEASE_TTL_S / 3):
            try:
                conn.execute(
                    "UPDATE leases SET expires=? WHERE name=? AND host=? AND pid=?",
                    (time.time() + LEASE_TTL_S, name, _host(), os.getpid()),
                )
            except sqlite3.Error as exc:  # a busy moment: the next beat renews it, well before expiry
                log.warning("could not renew the ingest lease: %s", exc)


def _host() -> str:
    return socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
