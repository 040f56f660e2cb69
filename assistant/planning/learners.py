"""Learner profiles, progress, saved playlists and the question log (SQLAlchemy: SQLite or PostgreSQL).

The tables, their numbered migrations and the engines are in learner_db.py; LearnerStore reads and writes them.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from assistant.core.errors import ConfigError, NotFoundError, ServiceUnavailableError, StoreError
from assistant.core.types import Answer, Playlist
from assistant.planning.learner_db import (
    MIGRATIONS,
    Base,
    LearnerRow,
    PlaylistRow,
    ProgressRow,
    QuestionRow,
    RevokedSessionRow,
    SchemaVersionRow,
    engine_for,
    read_only,
    safe_url,
    utc_now,
)


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


class LearnerStore:
    """Everything CoursePilot remembers about learners."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = engine_for(url)
            self._migrate()
        except OperationalError as exc:
            if read_only(exc):  # reads still work; each write raises StoreError
                return
            # A database server that does not answer is an outage (exit 3); a SQLite file that cannot open is a setting.
            error = ConfigError if url.startswith("sqlite") else ServiceUnavailableError
            raise error(
                f"Cannot open the learner database ({safe_url(url)}): {type(exc.orig).__name__}.",
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
            reason = "it is read-only" if read_only(exc) else f"{type(exc.orig).__name__}"
            fix = (
                "make the database file and its folder writable by this user, or point COURSEPILOT_DATABASE_URL "
                "at a writable database."
                if read_only(exc)
                else "check COURSEPILOT_DATABASE_URL and that the database server is running."
            )
            raise StoreError(
                f"Could not save {what} in the learner database ({safe_url(self.url)}): {reason}.", fix
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
                row = ProgressRow(learner_id=learner_id, item_id=item_id, done=done, updated_at=utc_now())
                session.add(row)
            else:
                row.done = done
                row.updated_at = utc_now()
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
        now = utc_now()
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
                created_at=utc_now(),
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
            session.query(RevokedSessionRow).filter(RevokedSessionRow.expires_at < utc_now()).delete()
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


__all__: Sequence[str] = [
    "Learner",
    "LearnerStore",
    "ProgressItem",
    "QuestionLogEntry",
    "SavedPlaylist",
]
