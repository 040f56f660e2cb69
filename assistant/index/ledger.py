"""The ingest ledger: which documents and chunks the index holds, with their hashes (SQLite, WAL).

The ledger is the source of truth for what is indexed. Vector-store rows that the ledger does not list are
garbage from an interrupted run and are removed by the next ingest; retrieval only returns ledger rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel

from assistant.core.errors import ConfigError
from assistant.core.types import Chunk, Course, Location

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    course_id TEXT NOT NULL,
    file_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    pages INTEGER,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    doc_path TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    location TEXT NOT NULL,
    level TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    terms TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_path);
CREATE INDEX IF NOT EXISTS chunks_by_content ON chunks(content_hash);
CREATE TABLE IF NOT EXISTS courses (id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


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


class Ledger:
    """SQLite ledger of documents, chunks (with BM25 term counts) and the course catalogue."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        try:
            with self._conn() as conn:
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:  # a damaged or foreign file: say which, and how to rebuild it
            self.close()
            raise ConfigError(
                f"The index ledger {path} cannot be read ({exc}).",
                f"delete the folder {path.parent} and run `coursepilot ingest --full` to rebuild the index.",
            ) from exc

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- meta ---------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._conn().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        """Bumped on every committed change, so snapshots derived from the ledger can tell they are stale."""
        return int(self.get_meta("generation") or 0)

    # -- documents ----------------------------------------------------------------------------------------
    def documents(self) -> dict[str, DocumentRecord]:
        rows = self._conn().execute(
            "SELECT path, course_id, file_hash, size, mtime_ns, kind, title, pages FROM documents"
        )
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
        rows = self._conn().execute("SELECT id, content_hash FROM chunks WHERE doc_path=?", (doc_path,))
        return {r[0]: r[1] for r in rows}

    def all_chunk_ids(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT id FROM chunks")}

    def replace_document(
        self, record: DocumentRecord, chunks: Sequence[Chunk], terms: dict[str, dict[str, int]]
    ) -> list[str]:
        """Point a document at its new chunks in one transaction; returns the ids it no longer uses."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = {r[0] for r in conn.execute("SELECT id FROM chunks WHERE doc_path=?", (record.path,))}
            new_ids = {c.id for c in chunks}
            stale = sorted(old - new_ids)
            conn.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i in stale])
            conn.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
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
            conn.executemany(
                "UPDATE chunks SET ordinal=? WHERE id=?",
                [(c.ordinal, c.id) for c in chunks if c.id not in terms],
            )
            conn.execute(
                "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
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
            self._bump(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return stale

    def touch_document(self, path: str, mtime_ns: int) -> None:
        """Remember a new mtime for a file whose bytes did not change (so the next run skips hashing)."""
        self._conn().execute("UPDATE documents SET mtime_ns=? WHERE path=?", (mtime_ns, path))

    def remove_document(self, path: str) -> list[str]:
        """Forget a document; returns its chunk ids."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE doc_path=?", (path,))]
            conn.execute("DELETE FROM chunks WHERE doc_path=?", (path,))
            conn.execute("DELETE FROM documents WHERE path=?", (path,))
            self._bump(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def _bump(self, conn: sqlite3.Connection, counter: str = "generation") -> None:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (counter,)).fetchone()
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (counter, str(int(row[0] if row else 0) + 1)))

    # -- chunks -------------------------------------------------------------------------------------------
    def get_chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        ids = list(ids)
        found: dict[str, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._conn().execute(
                f"SELECT id, text, location, ordinal, tokens, content_hash, level FROM chunks WHERE id IN ({marks})",
                part,
            )
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
        hashes = sorted(set(content_hashes))
        ids: list[str] = []
        for start in range(0, len(hashes), 500):
            part = hashes[start : start + 500]
            marks = ",".join("?" * len(part))
            ids.extend(
                r[0] for r in self._conn().execute(f"SELECT id FROM chunks WHERE content_hash IN ({marks})", part)
            )
        return list(self.get_chunks(ids).values())

    def chunk_facets(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """chunk id -> (course id, level) for the ids the ledger holds: a cheap check before loading whole chunks."""
        ids = list(ids)
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._conn().execute(
                "SELECT c.id, d.course_id, c.level FROM chunks c JOIN documents d ON c.doc_path=d.path "
                f"WHERE c.id IN ({marks})",
                part,
            )
            found.update((r[0], (r[1], r[2])) for r in rows)
        return found

    def iter_terms(self) -> Iterable[tuple[str, dict[str, int]]]:
        for cid, terms in self._conn().execute("SELECT id, terms FROM chunks"):
            yield cid, json.loads(terms)

    def terms_for(self, ids: Sequence[str]) -> list[tuple[str, dict[str, int]]]:
        out: list[tuple[str, dict[str, int]]] = []
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            out.extend(
                (r[0], json.loads(r[1]))
                for r in self._conn().execute(f"SELECT id, terms FROM chunks WHERE id IN ({marks})", part)
            )
        return out

    def chunk_count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunks_of_course(self, course_id: str) -> list[Chunk]:
        ids = [
            r[0]
            for r in self._conn().execute(
                "SELECT c.id FROM chunks c JOIN documents d ON c.doc_path=d.path WHERE d.course_id=? "
                "ORDER BY c.doc_path, c.ordinal",
                (course_id,),
            )
        ]
        got = self.get_chunks(ids)
        return [got[i] for i in ids if i in got]

    def first_chunk_ids(self, course_ids: Sequence[str]) -> dict[str, str]:
        """'course_id/module' -> id of that module's first chunk (a default citation for a step)."""
        if not course_ids:
            return {}
        marks = ",".join("?" * len(course_ids))
        rows = self._conn().execute(
            "SELECT d.course_id, c.location, c.id, c.ordinal FROM chunks c JOIN documents d ON c.doc_path=d.path "
            f"WHERE d.course_id IN ({marks}) ORDER BY c.doc_path, c.ordinal",
            list(course_ids),
        )
        out: dict[str, str] = {}
        for course_id, location, chunk_id, _ in rows:
            key = f"{course_id}/{Location.model_validate_json(location).module}"
            out.setdefault(key, chunk_id)
        return out

    # -- courses ------------------------------------------------------------------------------------------
    def save_courses(self, courses: Sequence[Course]) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM courses")
            conn.executemany("INSERT INTO courses VALUES (?, ?)", [(c.id, c.model_dump_json()) for c in courses])
            # Its own counter, not the generation: a catalogue write must not make the lexical snapshot look stale.
            self._bump(conn, "courses_version")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def courses_version(self) -> int:
        """Bumped on every catalogue write, so a cached catalogue can tell it is stale."""
        return int(self.get_meta("courses_version") or 0)

    def courses(self) -> dict[str, Course]:
        return {r[0]: Course.model_validate_json(r[1]) for r in self._conn().execute("SELECT id, body FROM courses")}
