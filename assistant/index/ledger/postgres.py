"""The shared ledger: PostgreSQL (COURSEPILOT_INDEX_DATABASE_URL), one schema per collection, any number of hosts.

psycopg is imported here only, and only when this backend is selected.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from assistant.core.errors import ServiceUnavailableError
from assistant.index.ledger.base import Ledger, busy_error, holder_name
from assistant.index.ledger.schema import base_schema

_SCHEMA_LOCK = 0x43500001  # pg_advisory_xact_lock key for creating a schema and its tables


def psycopg_conninfo(url: str) -> str:
    """A libpq URI from a SQLAlchemy-style URL (postgresql+psycopg://...)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def schema_name(prefix: str, collection: str) -> str:
    """A PostgreSQL identifier for one collection's ledger (63 bytes at most)."""
    name = re.sub(r"[^a-z0-9_]+", "_", f"{prefix}__{collection}".lower())
    if len(name) > 63:
        name = f"{name[:52]}_{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key."""
    digest = hashlib.sha1("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLedger(Ledger):
    """Ledger tables in their own schema; ingest lease = a session-level pg_advisory_lock."""

    backend = "postgresql"

    def __init__(self, url: str, collection: str, schema_prefix: str = "coursepilot_index") -> None:
        self.url = psycopg_conninfo(url)
        self.collection = collection
        self.schema = schema_name(schema_prefix, collection)
        self._local = threading.local()
        conn = self._conn()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))  # two workers starting at once
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
            for statement in base_schema("BYTEA").split(";"):
                if statement.strip():
                    conn.execute(statement)
            self._migrate("BYTEA")

    def describe(self) -> str:
        safe = re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", self.url)
        return f"{safe} schema {self.schema}"

    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=10,
                application_name=f"coursepilot-ledger {holder_name()}"[:63],
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise ServiceUnavailableError(
                f"Cannot reach the index ledger database ({self.describe()}): {str(exc).strip()}.",
                "start PostgreSQL or fix COURSEPILOT_INDEX_DATABASE_URL; unset it to use the embedded SQLite ledger.",
            ) from exc
        conn.execute(f'SET search_path TO "{self.schema}"')
        return conn

    def _usable(self, conn: Any) -> bool:
        return not conn.closed

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn().execute(sql.replace("?", "%s"), params)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn().cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)

    @contextlib.contextmanager
    def _transaction(self, first: str | None) -> Iterator[None]:
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        self._local.depth = 1
        try:
            with conn.transaction():
                if first:
                    conn.execute(first)
                yield
        finally:
            self._local.depth = 0

    def _write(self) -> contextlib.AbstractContextManager[None]:
        # Writers queue on one transaction-level lock, so the generation is read and bumped by one at a time.
        return self._transaction(f"SELECT pg_advisory_xact_lock({_lock_key(self.schema, 'write')})")

    def _read(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    @contextlib.contextmanager
    def lease(self, name: str, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """A session-level advisory lock on its own connection: released on exit, or when the job's session dies."""
        key = _lock_key(self.schema, "lease", name)
        conn = self._connect()
        try:
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                row = conn.execute("SELECT holder FROM leases WHERE name=%s", (name,)).fetchone()
                holder = row[0] if row else "another session"
                if not wait:
                    raise busy_error(self.collection, holder)
                if on_wait:
                    on_wait(holder)
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            conn.execute(
                "INSERT INTO leases VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "holder=excluded.holder, host=excluded.host, pid=excluded.pid, expires=excluded.expires",
                (name, holder_name(), "", conn.info.backend_pid, time.time()),
            )
            try:
                yield
            finally:
                conn.execute("DELETE FROM leases WHERE name=%s AND pid=%s", (name, conn.info.backend_pid))
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        finally:
            conn.close()

    def drop_schema(self) -> None:
        """Remove this collection's ledger tables (tests and `--full` rebuilds of a throwaway index)."""
        self.close()
        conn = self._connect()
        try:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            conn.close()
