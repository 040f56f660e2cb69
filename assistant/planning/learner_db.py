"""The learner database (SQLAlchemy: SQLite or PostgreSQL): its tables, the numbered migrations after them, and one
engine per database URL.

Schema evolution: tables are created with `create_all`; each later change is a numbered function in
MIGRATIONS, applied once in order (by LearnerStore) and recorded in `cp_schema_version`. Never edit a shipped
migration.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Engine, Float, ForeignKey, Integer, String, Text, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class LearnerRow(Base):
    __tablename__ = "cp_learners"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[str] = mapped_column(String(32), default="learner")
    goals: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ProgressRow(Base):
    __tablename__ = "cp_progress"
    learner_id: Mapped[str] = mapped_column(ForeignKey("cp_learners.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    done: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class PlaylistRow(Base):
    __tablename__ = "cp_playlists"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_id: Mapped[str] = mapped_column(ForeignKey("cp_learners.id", ondelete="CASCADE"), index=True)
    goal: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class QuestionRow(Base):
    __tablename__ = "cp_questions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    learner_id: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    kind: Mapped[str] = mapped_column(String(32), default="question")
    question: Mapped[str] = mapped_column(Text)
    standalone: Mapped[str] = mapped_column(Text, default="")
    refused: Mapped[bool] = mapped_column(Boolean, default=False)
    top_score: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    mode: Mapped[str] = mapped_column(String(32), default="extractive")
    answer: Mapped[str] = mapped_column(Text, default="")
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    feedback: Mapped[int | None] = mapped_column(Integer, nullable=True)
    feedback_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)


class RevokedSessionRow(Base):
    """A signed-out web session token (its SHA-256), refused until it would have expired anyway."""

    __tablename__ = "cp_revoked_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_id: Mapped[str] = mapped_column(String(128), default="")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SchemaVersionRow(Base):
    __tablename__ = "cp_schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


# Numbered, append-only. Version 1 is the create_all schema above.
MIGRATIONS: list[Callable[[Session], None]] = []


def sync_url(url: str) -> str:
    """The synchronous driver URL for a configured database URL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url.replace("+asyncpg", "+psycopg").replace("+aiosqlite", "")


_ENGINES: dict[str, Engine] = {}
_ENGINE_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process; SQLite files get their folder created and WAL enabled."""
    url = sync_url(url)
    with _ENGINE_LOCK:
        if url not in _ENGINES:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                path = url.split("///", 1)[-1]
                if path.startswith("file:"):  # a URI filename (?mode=ro&uri=true): the folder is before '?'
                    path = path.removeprefix("file:").split("?", 1)[0]
                if path and path != ":memory:" and not path.startswith("?"):
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            engine = create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                with engine.connect() as conn, contextlib.suppress(OperationalError):  # read-only: as it is
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            _ENGINES[url] = engine
        return _ENGINES[url]


def read_only(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "readonly" in text or "read-only" in text or "read only" in text


def safe_url(url: str) -> str:
    """A database URL with any password replaced, for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
    return url
