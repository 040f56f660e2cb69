"""The ledger's tables and their migrations, for both backends.

Version 1 is the schema as shipped up to release 19, which recorded no version: its tables are created with
`CREATE TABLE IF NOT EXISTS`, so a ledger of any age has them. Every later version is a list of statements, applied
once and in order under the backend's schema lock, then recorded in meta `schema_version`. Never edit a shipped
step: add one.
"""

from __future__ import annotations

SCHEMA_VERSION = 2


def base_schema(blob: str) -> str:
    """The version-1 tables; `blob` is the binary column type of the backend."""
    return f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    course_id TEXT NOT NULL,
    file_hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    pages INTEGER,
    updated_at DOUBLE PRECISION NOT NULL
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
CREATE TABLE IF NOT EXISTS changes (generation BIGINT NOT NULL, chunk_id TEXT NOT NULL, added INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_generation ON changes(generation);
CREATE TABLE IF NOT EXISTS snapshots (name TEXT PRIMARY KEY, generation BIGINT NOT NULL, body {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    expires DOUBLE PRECISION NOT NULL
);
"""


def migrations(blob: str) -> dict[int, list[str]]:
    """version -> the statements that bring a ledger of the version before it up to it."""
    return {
        # Late-chunked sentence vectors, one row per chunk (assistant/index/sentences.py): `body` holds `n` records
        # (float32 scale, int32 start, int32 end) then n x dim int8 vectors. `text_key` is the hash of the text the
        # chunk was embedded from, so a chunk with a new id but the same text copies its row instead of re-embedding.
        # The end of every ingest lists (chunk id, text key) of all rows: the covering index serves that without
        # reading the blobs (SQLite: 0.35 s at 100k chunks without it, since a row fills a page).
        2: [
            f"""CREATE TABLE IF NOT EXISTS sentences (
    chunk_id TEXT PRIMARY KEY,
    text_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    n INTEGER NOT NULL,
    body {blob} NOT NULL
)""",
            "CREATE INDEX IF NOT EXISTS sentences_keys ON sentences(version, chunk_id, text_key, n)",
        ],
    }
