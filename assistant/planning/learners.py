"""Learner profiles, progress, saved playlists and the question log (SQLAlchemy: SQLite or PostgreSQL).

Schema evolution: tables are created with `create_all`; each later change is a numbered function in
MIGRATIONS, applied once in order and recorded in `schema_version`. Never edit a shipped migration.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from assistant.core.errors import ConfigError, NotFoundError, ServiceUnavailableError, StoreError
from assistant.core.types import Answer, Playlist


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class LearnerRow(Base):
    __tablename__ = "cp_learners"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    role: Mapped[str] = mapped_column(String(32), default="learner")
    goals: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ProgressRow(Base):
    __tablename__ = "cp_progress"
    learner_id: Mapped[str] = mapped_column(ForeignKey("cp_learners.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    done: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class PlaylistRow(Base):
    __tablename__ = "cp_playlists"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_id: Mapped[str] = mapped_column(ForeignKey("cp_learners.id", ondelete="CASCADE"), index=True)
    goal: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)


class RevokedSessionRow(Base):
    """A signed-out web session token (its SHA-256), refused until it would have expired anyway."""

    __tablename__ = "cp_revoked_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner_id: Mapped[str] = mapped_column(String(128), default="")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SchemaVersionRow(Base):
    __tablename__ = "cp_schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


# Numbered, append-only. Version 1 is the create_all schema above.
MIGRATIONS: list[Callable[[Session], None]] = []


class Learner(BaseModel):
    id: str
    name: str = ""
    role: str = "learner"
    goals: list[str] = Field(default_factory=list)


class ProgressItem(BaseModel):
    item_id: str
    done: bool
    updated_at: datetime


class SavedPlaylist(BaseModel):
    id: str
    learner_id: str
    goal: str
    created_at: datetime
    playlist: Playlist


class QuestionLogEntry(BaseModel):
    id: int
    learner_id: str | None
    message_id: str | None
    kind: str
    question: str
    standalone: str
    refused: bool
    top_score: float
    latency_ms: float
    mode: str
    answer: str
    citations: list[dict[str, Any]]
    feedback: int | None
    feedback_comment: str | None
    created_at: datetime


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


class LearnerStore:
    """Everything CoursePilot remembers about learners."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = engine_for(url)
            self._migrate()
        except OperationalError as exc:
            if _read_only(exc):  # reads still work; each write raises StoreError
                return
            # A database server that does not answer is an outage (exit 3); a SQLite file that cannot open is a setting.
            error = ConfigError if url.startswith("sqlite") else ServiceUnavailableError
            raise error(
                f"Cannot open the learner database ({_safe_url(url)}): {type(exc.orig).__name__}.",
                "check COURSEPILOT_DATABASE_URL and that the database server is running.",
            ) from exc

    def _migrate(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
        except IntegrityError:
            # Another process (a second UI worker, the CLI) created the tables at the same moment.
            Base.metadata.create_all(self.engine)
        # Same race on the version rows: the other process recorded them; nothing is left to do.
        with contextlib.suppress(IntegrityError):
            self._apply_migrations()

    def _apply_migrations(self) -> None:
        with Session(self.engine) as session, session.begin():
            current = session.scalar(select(func.max(SchemaVersionRow.version))) or 0
            if current == 0:
                session.add(SchemaVersionRow(version=1))
                current = 1
            for number, migration in enumerate(MIGRATIONS, start=2):
                if number > current:
                    migration(session)
                    session.add(SchemaVersionRow(version=number))

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """A write; a read-only or unreachable database becomes StoreError with the fix, not raw SQL."""
        try:
            yield
        except OperationalError as exc:
            reason = "it is read-only" if _read_only(exc) else f"{type(exc.orig).__name__}"
            fix = (
                "make the database file and its folder writable by this user, or point COURSEPILOT_DATABASE_URL "
                "at a writable database."
                if _read_only(exc)
                else "check COURSEPILOT_DATABASE_URL and that the database server is running."
            )
            raise StoreError(
                f"Could not save {what} in the learner database ({_safe_url(self.url)}): {reason}.", fix
            ) from exc

    def schema_version(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.max(SchemaVersionRow.version))) or 0)

    # -- learners -----------------------------------------------------------------------------------------
    def ensure_learner(self, learner_id: str, name: str = "", role: str = "learner") -> Learner:
        with self._writing("the learner"), Session(self.engine) as session, session.begin():
            row = session.get(LearnerRow, learner_id)
            if row is None:
                row = LearnerRow(id=learner_id, name=name or learner_id, role=role, goals=[])
                session.add(row)
            elif role and row.role != role and role != "learner":
                row.role = role
            return Learner(id=row.id, name=row.name, role=row.role, goals=list(row.goals or []))

    def get_learner(self, learner_id: str) -> Learner:
        with Session(self.engine) as session:
            row = session.get(LearnerRow, learner_id)
            if row is None:
                raise NotFoundError(
                    f"No learner '{learner_id}'.",
                    "check the id, or create it with `coursepilot progress ID --done ITEM`.",
                )
            return Learner(id=row.id, name=row.name, role=row.role, goals=list(row.goals or []))

    def add_goal(self, learner_id: str, goal: str) -> None:
        self.ensure_learner(learner_id)
        with self._writing("the goal"), Session(self.engine) as session, session.begin():
            row = session.get(LearnerRow, learner_id)
            assert row is not None
            goals = list(row.goals or [])
            if goal not in goals:
                row.goals = [*goals, goal][-20:]

    # -- progress -----------------------------------------------------------------------------------------
    def set_progress(self, learner_id: str, item_id: str, done: bool = True) -> ProgressItem:
        self.ensure_learner(learner_id)
        with self._writing("the progress"), Session(self.engine) as session, session.begin():
            row = session.get(ProgressRow, (learner_id, item_id))
            if row is None:
                row = ProgressRow(learner_id=learner_id, item_id=item_id, done=done, updated_at=_now())
                session.add(row)
            else:
                row.done = done
                row.updated_at = _now()
            return ProgressItem(item_id=item_id, done=done, updated_at=row.updated_at)

    def progress(self, learner_id: str) -> list[ProgressItem]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ProgressRow)
                .where(ProgressRow.learner_id == learner_id)
                .order_by(ProgressRow.updated_at, ProgressRow.item_id)
            )
            return [ProgressItem(item_id=r.item_id, done=r.done, updated_at=r.updated_at) for r in rows]

    def completed(self, learner_id: str) -> set[str]:
        return {p.item_id for p in self.progress(learner_id) if p.done}

    # -- playlists ----------------------------------------------------------------------------------------
    def save_playlist(self, learner_id: str, playlist: Playlist) -> SavedPlaylist:
        self.ensure_learner(learner_id)
        playlist_id = uuid.uuid4().hex[:12]
        now = _now()
        with self._writing("the learning path"), Session(self.engine) as session, session.begin():
            session.add(
                PlaylistRow(
                    id=playlist_id,
                    learner_id=learner_id,
                    goal=playlist.goal,
                    body=playlist.model_dump_json(),
                    created_at=now,
                )
            )
        return SavedPlaylist(
            id=playlist_id, learner_id=learner_id, goal=playlist.goal, created_at=now, playlist=playlist
        )

    def playlists(self, learner_id: str) -> list[SavedPlaylist]:
        """A learner's saved playlists, newest first, with item statuses from their current progress."""
        done = self.completed(learner_id)
        with Session(self.engine) as session:
            rows = session.scalars(
                select(PlaylistRow)
                .where(PlaylistRow.learner_id == learner_id)
                .order_by(PlaylistRow.created_at.desc(), PlaylistRow.id)
            ).all()
            return [self._saved(r, done) for r in rows]

    def get_playlist(self, learner_id: str, playlist_id: str) -> SavedPlaylist:
        """One saved playlist; another learner's id is treated as not found."""
        with Session(self.engine) as session:
            row = session.get(PlaylistRow, playlist_id)
            if row is None or row.learner_id != learner_id:
                raise NotFoundError(f"No saved playlist '{playlist_id}' for this learner.", "list them with /paths.")
            return self._saved(row, self.completed(learner_id))

    @staticmethod
    def _saved(row: PlaylistRow, done: set[str]) -> SavedPlaylist:
        playlist = Playlist.model_validate_json(row.body)
        for item in playlist.items:
            item.status = "done" if item.item_id in done else "todo"
        return SavedPlaylist(
            id=row.id, learner_id=row.learner_id, goal=row.goal, created_at=row.created_at, playlist=playlist
        )

    def all_playlists(self) -> list[SavedPlaylist]:
        """Every saved playlist (for the L&D report)."""
        with Session(self.engine) as session:
            rows = session.scalars(select(PlaylistRow).order_by(PlaylistRow.created_at, PlaylistRow.id)).all()
            progress: dict[str, set[str]] = {}
            out = []
            for row in rows:
                if row.learner_id not in progress:
                    progress[row.learner_id] = self.completed(row.learner_id)
                out.append(self._saved(row, progress[row.learner_id]))
            return out

    # -- question log -------------------------------------------------------------------------------------
    def log_answer(
        self, answer: Answer, learner_id: str | None = None, message_id: str | None = None, kind: str = "question"
    ) -> int:
        """Record a question and how it went; refusals feed the L&D gap report."""
        with self._writing("the question"), Session(self.engine) as session, session.begin():
            row = QuestionRow(
                learner_id=learner_id,
                message_id=message_id,
                kind=kind,
                question=answer.question,
                standalone=answer.standalone_question,
                refused=answer.refused,
                top_score=answer.top_score,
                latency_ms=answer.timings_ms.get("total", 0.0),
                mode=answer.mode,
                answer=answer.text,
                citations=[json.loads(c.location.model_dump_json()) for c in answer.citations],
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            return int(row.id)

    def set_feedback(
        self,
        learner_id: str | None,
        value: int,
        entry_id: int | None = None,
        message_id: str | None = None,
        comment: str | None = None,
    ) -> bool:
        """Thumbs up (1) or down (-1) on a logged answer owned by this learner; False if none matched."""
        with self._writing("the feedback"), Session(self.engine) as session, session.begin():
            query = select(QuestionRow)
            if entry_id is not None:
                query = query.where(QuestionRow.id == entry_id)
            elif message_id is not None:
                query = query.where(QuestionRow.message_id == message_id)
            else:
                return False
            row = session.scalars(query).first()
            if row is None or row.learner_id != learner_id:
                return False
            row.feedback = value
            row.feedback_comment = comment
            return True

    def questions(self, since: datetime | None = None, learner_id: str | None = None) -> list[QuestionLogEntry]:
        with Session(self.engine) as session:
            query = select(QuestionRow).order_by(QuestionRow.id)
            if since is not None:
                query = query.where(QuestionRow.created_at >= since)
            if learner_id is not None:
                query = query.where(QuestionRow.learner_id == learner_id)
            return [
                QuestionLogEntry(
                    id=r.id,
                    learner_id=r.learner_id,
                    message_id=r.message_id,
                    kind=r.kind,
                    question=r.question,
                    standalone=r.standalone,
                    refused=r.refused,
                    top_score=r.top_score,
                    latency_ms=r.latency_ms,
                    mode=r.mode,
                    answer=r.answer,
                    citations=list(r.citations or []),
                    feedback=r.feedback,
                    feedback_comment=r.feedback_comment,
                    created_at=r.created_at,
                )
                for r in session.scalars(query)
            ]

    # -- signed-out web sessions ---------------------------------------------------------------------------
    def revoke_session(self, token_hash: str, learner_id: str, expires_at: datetime) -> None:
        """Refuse this session token from now on (expired entries are purged on the way)."""
        with self._writing("the sign-out"), Session(self.engine) as session, session.begin():
            session.query(RevokedSessionRow).filter(RevokedSessionRow.expires_at < _now()).delete()
            if session.get(RevokedSessionRow, token_hash) is None:
                session.add(RevokedSessionRow(token_hash=token_hash, learner_id=learner_id, expires_at=expires_at))

    def session_revoked(self, token_hash: str) -> bool:
        with Session(self.engine) as session:
            try:
                return session.get(RevokedSessionRow, token_hash) is not None
            except OperationalError as exc:
                if "no such table" in str(exc).lower():  # a read-only database from before this table
                    return False
                raise

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


def _read_only(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "readonly" in text or "read-only" in text or "read only" in text


def _safe_url(url: str) -> str:
    """A database URL with any password replaced, for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
    return url


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt hash as 'scrypt$salt$hash' (hex)."""
    salt = salt or uuid.uuid4().bytes
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    import hmac

    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)


__all__: Sequence[str] = [
    "Learner",
    "LearnerStore",
    "ProgressItem",
    "QuestionLogEntry",
    "SavedPlaylist",
    "hash_password",
    "verify_password",
]
