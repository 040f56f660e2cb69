"""The ingest ledger's interface and the SQL both implementations share (SQLite and PostgreSQL).

The ledger is the source of truth for what is indexed: documents, chunks with their text and BM25 term counts,
the course catalogue, a generation counter bumped by every committed change, a change log per generation (so a
worker on any machine can bring its in-memory BM25 index up to date by applying a delta), the last BM25
snapshot and each chunk's late-chunked sentence vectors (sentence_rows.py). Its tables and their migrations are in
schema.py. Vector-store rows that the ledger does not list are garbage from an interrupted run and are removed by
the next ingest; retrieval only returns ledger rows.

The SQL below is written once, with `?` placeholders, in the dialect SQLite and PostgreSQL share
(`INSERT ... ON CONFLICT ... DO UPDATE`). A backend supplies the connection, the transactions and the ingest lease.
"""

from __future__ import annotations

import abc
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from pydantic import BaseModel

from assistant.core.errors import CoursePilotError
from assistant.core.types import Chunk, Course, Location
from assistant.index.ledger.schema import SCHEMA_VERSION, migrations
from assistant.index.ledger.sentence_rows import SentenceRows

# Term counts per chunk, as the lexical index takes them.
Terms = list[tuple[str, dict[str, int]]]

_IN_BATCH = 500


class DocumentRecord(BaseModel):
    """What the ledger remembers of one indexed file."""

    path: str
    course_id: str
    file_hash: str
    size: int
    mtime_ns: int
    kind: str
    title: str
    pages: int | None


class Delta(BaseModel):
    """What changed in the lexical rows between two generations: drop `removed`, then append `added`."""

    generation: int
    removed: list[str]
    added: Terms


class IngestBusyError(CoursePilotError):
    """Another ingest job holds the lease on this collection."""


def holder_name() -> str:
    """Who holds a lease, as the waiting job's message shows it."""
    return f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%H:%M:%S')}"


def busy_error(collection: str, holder: str) -> IngestBusyError:
    return IngestBusyError(
        f"Another ingest job is running on collection {collection} ({holder}).",
        "wait for it to finish, or run `coursepilot ingest --wait` to queue behind it.",
    )


class Ledger(SentenceRows, abc.ABC):
    """Documents, chunks (with text and BM25 term counts), the catalogue, generations, change log, snapshots,
    sentence vectors (SentenceRows)."""

    #: 'sqlite' or 'postgresql', for messages and figures.
    backend: str
    collection: str

    # -- what a backend supplies ----------------------------------------------------------------------------
    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement with `?` placeholders on this thread's connection; returns a cursor."""

    @abc.abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[None]:
        """One write transaction; writers are serialised (the generation counter is read and bumped in it)."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[None]:
        """One read transaction that sees a single committed state."""

    @abc.abstractmethod
    def lease(
        self, name: str, wait: bool = False, on_wait: Callable[[str], None] | None = None
    ) -> AbstractContextManager[None]:
        """Hold the named lease in the ledger database; a dead holder releases it (session end or expiry).

        wait=False raises IngestBusyError when another job holds it; wait=True blocks until it is free,
        calling `on_wait(holder)` once.
        """

    # One connection per thread, opened on first use: `_local` is a threading.local() set by each backend.
    _local: Any

    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new connection to the ledger database."""

    def _usable(self, conn: Any) -> bool:
        """Whether this thread's connection can still be used (PostgreSQL's can be closed by the server)."""
        return True

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or not self._usable(conn):
            conn = self._connect()
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the ledger lives (a path or a database and schema, no password)."""

    # -- meta ---------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value", (key, value)
        )

    @property
    def schema_version(self) -> int:
        """The schema step this ledger is at (ledger/schema.py); a ledger written before versions is at 1."""
        return int(self.get_meta("schema_version") or 1)

    @property
    def needs_migration(self) -> bool:
        return self.schema_version < SCHEMA_VERSION

    def _migrate(self, blob: str) -> None:
        """Apply the schema steps this ledger lacks, in order; the caller holds the backend's schema lock."""
        found = self.schema_version
        if found >= SCHEMA_VERSION:
            return
        for version, statements in sorted(migrations(blob).items()):
            if version > found:
                for statement in statements:
                    self._execute(statement)
                self.set_meta("schema_version", str(version))

    @property
    def generation(self) -> int:
        """Bumped on every committed change, so snapshots derived from the ledger can tell they are stale."""
        return int(self.get_meta("generation") or 0)

    def _bump(self, counter: str = "generation") -> int:
        row = self._execute("SELECT value FROM meta WHERE key=?", (counter,)).fetchone()
        value = int(row[0] if row else 0) + 1
        self.set_meta(counter, str(value))
        return value

    # -- documents ----------------------------------------------------------------------------------------
    def documents(self) -> dict[str, DocumentRecord]:
        rows = self._execute(
            "SELECT path, course_id, file_hash, size, mtime_ns, kind, title, pages FROM documents"
        ).fetchall()
        return {
            r[0]: DocumentRecord(
                path=r[0],
                course_id=r[1],
                file_hash=r[2],
                size=r[3],
                mtime_ns=r[4],
                kind=r[5],
                title=r[6],
                pages=r[7],
            )
            for r in rows
        }

    def chunk_hashes(self, doc_path: str) -> dict[str, str]:
        """chunk id -> content hash for one document."""
        rows = self._execute("SELECT id, content_hash FROM chunks WHERE doc_path=?", (doc_path,)).fetchall()
        return {r[0]: r[1] for r in rows}

    def all_chunk_ids(self) -> set[str]:
        return {r[0] for r in self._execute("SELECT id FROM chunks").fetchall()}

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], terms: dict[str, dict[str, int]]
    ) -> list[str]:
        """Point a document at its new chunks in one transaction; returns the ids it no longer uses."""
        with self._write():
            generation = self._bump()
            old = {r[0] for r in self._execute("SELECT id FROM chunks WHERE doc_path=?", (record.path,)).fetchall()}
            stale = sorted(old - {c.id for c in chunks})
            self._executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in stale])
            self._executemany(
                "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET "
                "doc_path=excluded.doc_path, ordinal=excluded.ordinal, text=excluded.text, "
                "location=excluded.location, level=excluded.level, tokens=excluded.tokens, "
                "content_hash=excluded.content_hash, terms=excluded.terms",
                [
                    (
                        c.id,
                        record.path,
                        c.ordinal,
                        c.text,
                        c.location.model_dump_json(),
                        c.level,
                        c.tokens,
                        c.content_hash,
                        json.dumps(terms[c.id]),
                    )
                    for c in chunks
                    if c.id in terms
                ],
            )
            # Kept chunks only move: their text, vectors and term counts are unchanged.
            self._executemany(
                "UPDATE chunks SET ordinal=? WHERE id=?", [(c.ordinal, c.id) for c in chunks if c.id not in terms]
            )
            self._execute(
                "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (path) DO UPDATE SET "
                "course_id=excluded.course_id, file_hash=excluded.file_hash, size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, kind=excluded.kind, title=excluded.title, pages=excluded.pages, "
                "updated_at=excluded.updated_at",
                (
                    record.path,
                    record.course_id,
                    record.file_hash,
                    record.size,
                    record.mtime_ns,
                    record.kind,
                    record.title,
                    record.pages,
                    time.time(),
                ),
            )
            self._log(generation, stale, [c.id for c in chunks if c.id in terms])
        return stale

    def touch_document(self, path: str, mtime_ns: int) -> None:
        """Remember a new mtime for a file whose bytes did not change (so the next run skips hashing)."""
        with self._write():
            self._execute("UPDATE documents SET mtime_ns=? WHERE path=?", (mtime_ns, path))

    def remove_document(self, path: str) -> list[str]:
        """Forget a document; returns its chunk ids."""
        with self._write():
            generation = self._bump()
            ids = [r[0] for r in self._execute("SELECT id FROM chunks WHERE doc_path=?", (path,)).fetchall()]
            self._execute("DELETE FROM chunks WHERE doc_path=?", (path,))
            self._execute("DELETE FROM documents WHERE path=?", (path,))
            self._log(generation, ids, [])
        return ids

    def _log(self, generation: int, removed: Sequence[str], added: Sequence[str]) -> None:
        self._executemany(
            "INSERT INTO changes VALUES (?, ?, ?)",
            [(generation, cid, 0) for cid in removed] + [(generation, cid, 1) for cid in added],
        )

    # -- lexical rows: full, delta, snapshot ------------------------------------------------------------------
    def iter_terms(self) -> Iterable[tuple[str, dict[str, int]]]:
        for cid, terms in self._execute("SELECT id, terms FROM chunks").fetchall():
            yield cid, json.loads(terms)

    def all_terms(self) -> tuple[int, Terms]:
        """Every chunk's term counts and the generation they belong to, read in one transaction."""
        with self._read():
            return self.generation, list(self.iter_terms())

    def terms_for(self, ids: Sequence[str]) -> Terms:
        out: Terms = []
        for part in _batches(list(ids)):
            rows = self._execute(f"SELECT id, terms FROM chunks WHERE id IN ({_marks(part)})", part).fetchall()
            out.extend((r[0], json.loads(r[1])) for r in rows)
        return out

    def delta_since(self, generation: int) -> Delta | None:
        """The lexical rows changed after `generation`, up to now; None when the log no longer reaches back."""
        with self._read():
            current = self.generation
            if current == generation:
                return Delta(generation=current, removed=[], added=[])
            if generation > current or generation < int(self.get_meta("log_floor") or 0):
                return None
            rows = self._execute(
                "SELECT chunk_id, added FROM changes WHERE generation > ? AND generation <= ? ORDER BY generation",
                (generation, current),
            ).fetchall()
            last: dict[str, int] = {}
            for cid, added in rows:
                last[cid] = int(added)
            added_ids = sorted(cid for cid, flag in last.items() if flag)
            return Delta(generation=current, removed=sorted(last), added=self.terms_for(added_ids))

    def save_snapshot(self, name: str, generation: int, body: bytes) -> None:
        """Store a snapshot taken at `generation`; the change log before the previous snapshot is pruned."""
        with self._write():
            row = self._execute("SELECT generation FROM snapshots WHERE name=?", (name,)).fetchone()
            if row is not None and int(row[0]) < generation:
                # A worker more than one snapshot behind reloads the snapshot instead of replaying the log.
                self._execute("DELETE FROM changes WHERE generation <= ?", (int(row[0]),))
                self.set_meta("log_floor", str(int(row[0])))
            self._execute(
                "INSERT INTO snapshots VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "generation=excluded.generation, body=excluded.body",
                (name, generation, body),
            )

    def load_snapshot(self, name: str) -> tuple[int, bytes] | None:
        row = self._execute("SELECT generation, body FROM snapshots WHERE name=?", (name,)).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    # -- chunks -------------------------------------------------------------------------------------------
    def get_chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        found: dict[str, Chunk] = {}
        for part in _batches(list(ids)):
            rows = self._execute(
                "SELECT id, text, location, ordinal, tokens, content_hash, level FROM chunks "
                f"WHERE id IN ({_marks(part)})",
                part,
            ).fetchall()
            for r in rows:
                found[r[0]] = Chunk(
                    id=r[0],
                    text=r[1],
                    location=Location.model_validate_json(r[2]),
                    ordinal=r[3],
                    tokens=r[4],
                    content_hash=r[5],
                    level=r[6],
                )
        return found

    def chunks_with_content(self, content_hashes: Iterable[str]) -> list[Chunk]:
        """Indexed chunks whose text has one of these hashes, wherever they are (to reuse their vectors)."""
        ids: list[str] = []
        for part in _batches(sorted(set(content_hashes))):
            rows = self._execute(f"SELECT id FROM chunks WHERE content_hash IN ({_marks(part)})", part).fetchall()
            ids.extend(r[0] for r in rows)
        return list(self.get_chunks(ids).values())

    def chunk_facets(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """chunk id -> (course id, level) for the ids the ledger holds: a cheap check before loading whole chunks."""
        found: dict[str, tuple[str, str]] = {}
        for part in _batches(list(ids)):
            rows = self._execute(
                "SELECT c.id, d.course_id, c.level FROM chunks c JOIN documents d ON c.doc_path=d.path "
                f"WHERE c.id IN ({_marks(part)})",
                part,
            ).fetchall()
            found.update((r[0], (r[1], r[2])) for r in rows)
        return found

    def chunk_count(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunks_of_course(self, course_id: str) -> list[Chunk]:
        ids = [
            r[0]
            for r in self._execute(
                "SELECT c.id FROM chunks c JOIN documents d ON c.doc_path=d.path WHERE d.course_id=? "
                "ORDER BY c.doc_path, c.ordinal",
                (course_id,),
            ).fetchall()
        ]
        got = self.get_chunks(ids)
        return [got[i] for i in ids if i in got]

    def first_chunk_ids(self, course_ids: Sequence[str]) -> dict[str, str]:
        """'course_id/module' -> id of that module's first chunk (a default citation for a step)."""
        if not course_ids:
            return {}
        rows = self._execute(
            "SELECT d.course_id, c.location, c.id, c.ordinal FROM chunks c JOIN documents d ON c.doc_path=d.path "
            f"WHERE d.course_id IN ({_marks(course_ids)}) ORDER BY c.doc_path, c.ordinal",
            list(course_ids),
        ).fetchall()
        out: dict[str, str] = {}
        for course_id, location, chunk_id, _ in rows:
            key = f"{course_id}/{Location.model_validate_json(location).module}"
            out.setdefault(key, chunk_id)
        return out

    # -- courses ------------------------------------------------------------------------------------------
    def save_courses(self, courses: Sequence[Course]) -> None:
        with self._write():
            self._execute("DELETE FROM courses")
            self._executemany("INSERT INTO courses VALUES (?, ?)", [(c.id, c.model_dump_json()) for c in courses])
            # Its own counter, not the generation: a catalogue write must not make the lexical snapshot look stale.
            self._bump("courses_version")

    @property
    def courses_version(self) -> int:
        """Bumped on every catalogue write, so a cached catalogue can tell it is stale."""
        return int(self.get_meta("courses_version") or 0)

    def courses(self) -> dict[str, Course]:
        rows = self._execute("SELECT id, body FROM courses").fetchall()
        return {r[0]: Course.model_validate_json(r[1]) for r in rows}


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _IN_BATCH):
        yield items[start : start + _IN_BATCH]


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))
