"""Chat history for the web UI: Chainlit's SQLAlchemy data layer on the learner store's own database.

- Same database: the configured sync URL (`sqlite:///...`, `postgresql+psycopg://...`) is turned into its async
  twin (`sqlite+aiosqlite`, `postgresql+asyncpg`) for Chainlit; the learner store keeps the sync one.
- Schema: Chainlit ships no migrations, so `ensure_schema` runs `CREATE TABLE IF NOT EXISTS` for users, threads,
  steps, elements and feedbacks (columns taken from the queries in chainlit/data/sql_alchemy.py and the
  Step/Message/Element `to_dict` of Chainlit 2.12) and then adds any column an older table lacks. PostgreSQL
  gets Chainlit's documented types (UUID, JSONB, TEXT[]); SQLite gets TEXT, with dict/list parameters stored
  as JSON text and parsed back when threads are read.
- Elements without blob storage: Chainlit's SQLAlchemy layer drops elements when no storage client is set.
  CoursePilot only sends two kinds, and persists both in the `elements` row itself:
  cited passages (cl.Text) are short, so the app sends them as an inline `data:text/plain` URL (a Text given
  `content` instead is converted here), stored in `url`: they survive a resume with no file store and never
  touch Chainlit's `<app root>/.files` folder; cited PDFs (cl.Pdf) are not copied at all: their `url` points at
  `/coursepilot/source/<course>/<module>`, an app route that serves the library file to signed-in users.
  Anything else (uploads are disabled) is not persisted.
- Feedback: the thumbs are stored in Chainlit's `feedbacks` table and also recorded in the learner store's
  question log (`set_feedback`, 1 / -1) for the answer they rate, owned by the thread's author. `step_owner` and
  `feedback_owner` let the app refuse feedback on another learner's message.
- Refused messages: a learner message the MessageGate refuses (too long, too many per minute) is not stored.
- Elements read back with a NULL (or already decoded) `props` give `{}`, not a 500.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chainlit.context import context as chainlit_context
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.utils import queue_until_user_message
from chainlit.logger import logger as chainlit_logger
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from assistant.apps.ui.guards import MessageGate
from assistant.core.errors import ConfigError
from assistant.planning.learner_db import engine_for, sync_url
from assistant.planning.learners import LearnerStore

if TYPE_CHECKING:
    from chainlit.element import Element, ElementDict
    from chainlit.step import StepDict
    from chainlit.types import Feedback, ThreadDict

log = logging.getLogger(__name__)

MAX_INLINE_BYTES = 256 * 1024
THREADS_PER_USER = 200

# table -> [(column, SQLite type, PostgreSQL type)]
_ID = ("TEXT", "UUID")
_JSON = ("TEXT", "JSONB")
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "users": [
        ("id", *_ID),
        ("identifier", "TEXT", "TEXT"),
        ("metadata", *_JSON),
        ("createdAt", "TEXT", "TEXT"),
    ],
    "threads": [
        ("id", *_ID),
        ("createdAt", "TEXT", "TEXT"),
        ("name", "TEXT", "TEXT"),
        ("userId", *_ID),
        ("userIdentifier", "TEXT", "TEXT"),
        ("tags", "TEXT", "TEXT[]"),
        ("metadata", *_JSON),
    ],
    "steps": [
        ("id", *_ID),
        ("name", "TEXT", "TEXT"),
        ("type", "TEXT", "TEXT"),
        ("threadId", *_ID),
        ("parentId", *_ID),
        ("streaming", "BOOLEAN", "BOOLEAN"),
        ("waitForAnswer", "BOOLEAN", "BOOLEAN"),
        ("isError", "BOOLEAN", "BOOLEAN"),
        ("metadata", *_JSON),
        ("tags", "TEXT", "TEXT[]"),
        ("input", "TEXT", "TEXT"),
        ("output", "TEXT", "TEXT"),
        ("createdAt", "TEXT", "TEXT"),
        ("command", "TEXT", "TEXT"),
        ("modes", *_JSON),
        ("start", "TEXT", "TEXT"),
        ("end", "TEXT", "TEXT"),
        ("generation", *_JSON),
        ("showInput", "TEXT", "TEXT"),
        ("language", "TEXT", "TEXT"),
        ("indent", "INT", "INT"),
        ("defaultOpen", "BOOLEAN", "BOOLEAN"),
        ("autoCollapse", "BOOLEAN", "BOOLEAN"),
        ("icon", "TEXT", "TEXT"),
    ],
    "elements": [
        ("id", *_ID),
        ("threadId", *_ID),
        ("type", "TEXT", "TEXT"),
        ("url", "TEXT", "TEXT"),
        ("chainlitKey", "TEXT", "TEXT"),
        ("name", "TEXT", "TEXT"),
        ("display", "TEXT", "TEXT"),
        ("objectKey", "TEXT", "TEXT"),
        ("size", "TEXT", "TEXT"),
        ("page", "INT", "INT"),
        ("language", "TEXT", "TEXT"),
        ("forId", *_ID),
        ("mime", "TEXT", "TEXT"),
        ("props", *_JSON),
        ("autoPlay", "BOOLEAN", "BOOLEAN"),
        ("playerConfig", *_JSON),
    ],
    "feedbacks": [
        ("id", *_ID),
        ("forId", *_ID),
        ("threadId", *_ID),
        ("value", "INT", "INT"),
        ("comment", "TEXT", "TEXT"),
    ],
}
_NOT_NULL = {
    ("users", "identifier"),
    ("users", "metadata"),
    ("steps", "name"),
    ("steps", "type"),
    ("steps", "threadId"),
    ("steps", "streaming"),
    ("elements", "name"),
    ("feedbacks", "forId"),
    ("feedbacks", "value"),
}
_CONSTRAINTS = {
    "users": ['UNIQUE ("identifier")'],
    "threads": ['FOREIGN KEY ("userId") REFERENCES users ("id") ON DELETE CASCADE'],
    "steps": ['FOREIGN KEY ("threadId") REFERENCES threads ("id") ON DELETE CASCADE'],
    "elements": ['FOREIGN KEY ("threadId") REFERENCES threads ("id") ON DELETE CASCADE'],
    "feedbacks": ['FOREIGN KEY ("threadId") REFERENCES threads ("id") ON DELETE CASCADE'],
}
_INDEXES = [
    ("cl_threads_user", "threads", "userId"),
    ("cl_steps_thread", "steps", "threadId"),
    ("cl_steps_parent", "steps", "parentId"),
    ("cl_elements_thread", "elements", "threadId"),
    ("cl_feedbacks_for", "feedbacks", "forId"),
]


def async_url(url: str) -> str:
    """The async driver URL Chainlit needs for the configured (sync) database URL."""
    parsed = make_url(sync_url(url))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        query = dict(parsed.query)
        if "sslmode" in query:  # libpq spelling -> asyncpg's
            query["ssl"] = query.pop("sslmode")
        return parsed.set(drivername="postgresql+asyncpg", query=query).render_as_string(hide_password=False)
    raise ConfigError(
        f"The chat history needs SQLite or PostgreSQL, not '{backend}'.",
        "set COURSEPILOT_DATABASE_URL to sqlite:///path or postgresql+psycopg://user:pass@host/db.",
    )


def create_table_sql(table: str, dialect: str) -> str:
    pg = dialect == "postgresql"
    lines = []
    for name, sqlite_type, pg_type in COLUMNS[table]:
        line = f'"{name}" {pg_type if pg else sqlite_type}'
        if name == "id":
            line += " PRIMARY KEY"
        elif (table, name) in _NOT_NULL:
            line += " NOT NULL"
        lines.append(line)
    lines += _CONSTRAINTS.get(table, [])
    body = ",\n    ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n    {body}\n)"


def ensure_schema(url: str) -> None:
    """Create Chainlit's tables if missing and add columns newer Chainlit versions write (idempotent)."""
    engine = engine_for(url)
    dialect = engine.dialect.name
    with engine.begin() as conn:
        for table in COLUMNS:
            conn.execute(text(create_table_sql(table, dialect)))
        existing = inspect(conn)
        for table, columns in COLUMNS.items():
            have = {c["name"] for c in existing.get_columns(table)}
            for name, sqlite_type, pg_type in columns:
                if name not in have:
                    kind = pg_type if dialect == "postgresql" else sqlite_type
                    conn.execute(text(f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}'))
        for index, table, column in _INDEXES:
            conn.execute(text(f'CREATE INDEX IF NOT EXISTS {index} ON {table} ("{column}")'))


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Silence the parent class's 'elements will not be persisted' warning: this class persists them."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _loads(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def in_display_order(steps: list[Any]) -> list[Any]:
    """Steps by creation time, a parent before its children when the clock gave them the same instant.

    Chainlit's query orders by "createdAt" only, and PostgreSQL returns equal timestamps in any order, so a
    resumed thread could list an answer before the run that produced it.
    """
    parent_of = {str(step.get("id")): step.get("parentId") for step in steps}

    def depth(step: Any) -> int:
        seen: set[str] = set()
        parent = step.get("parentId")
        while parent and str(parent) in parent_of and str(parent) not in seen:
            seen.add(str(parent))
            parent = parent_of[str(parent)]
        return len(seen)

    return sorted(steps, key=lambda step: (str(step.get("createdAt") or ""), depth(step)))


def inline_url(content: str | bytes, mime: str = "text/plain") -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return f"data:{mime};charset=utf-8;base64,{base64.b64encode(data).decode('ascii')}"


class CoursePilotDataLayer(SQLAlchemyDataLayer):
    """SQLAlchemyDataLayer on the learner database, with inline elements and feedback into the question log."""

    def __init__(self, database_url: str, store: LearnerStore | None = None, gate: MessageGate | None = None) -> None:
        self.database_url = sync_url(database_url)
        ensure_schema(self.database_url)
        self.dialect = make_url(self.database_url).get_backend_name()
        connect_args: dict[str, Any] = {"timeout": 30} if self.dialect == "sqlite" else {}
        with _quiet(chainlit_logger):
            super().__init__(
                conninfo=async_url(self.database_url),
                connect_args=connect_args,
                user_thread_limit=THREADS_PER_USER,
            )
        self._store = store
        self.gate = gate

    @property
    def store(self) -> LearnerStore:
        if self._store is None:
            self._store = LearnerStore(self.database_url)
        return self._store

    # -- SQL ----------------------------------------------------------------------------------------------
    async def execute_sql(self, query: str, parameters: dict) -> list[dict[str, Any]] | int | None:
        """Dicts (and lists on SQLite) go in as JSON text; everything else as Chainlit passes it."""
        clean: dict[str, Any] = {}
        for key, value in parameters.items():
            if isinstance(value, dict) or (isinstance(value, list) and self.dialect == "sqlite"):
                value = json.dumps(value)
            clean[key] = value
        return await super().execute_sql(query, clean)

    async def get_all_user_threads(
        self, user_id: str | None = None, thread_id: str | None = None
    ) -> list[ThreadDict] | None:
        """Threads with JSON columns parsed back into objects (SQLite stores them as text)."""
        threads = await super().get_all_user_threads(user_id=user_id, thread_id=thread_id)
        for thread in threads or []:
            thread["metadata"] = _loads(thread.get("metadata")) or {}
            thread["tags"] = _loads(thread.get("tags"))
            thread["steps"] = in_display_order(thread.get("steps", []))
            for step in thread["steps"]:
                step["metadata"] = _loads(step.get("metadata")) or {}
                step["generation"] = _loads(step.get("generation"))
            for element in thread.get("elements") or []:
                element["props"] = _loads(element.get("props")) or {}
        return threads

    async def get_step(self, step_id: str) -> StepDict | None:
        step = await super().get_step(step_id)
        if step is not None:
            step["metadata"] = _loads(step.get("metadata")) or {}
        return step

    # -- steps --------------------------------------------------------------------------------------------
    async def create_step(self, step_dict: StepDict) -> None:
        """Every step, except a learner message the gate refuses (it is answered with a refusal only)."""
        if self.gate is not None and step_dict.get("type") == "user_message":
            user = getattr(getattr(chainlit_context, "session", None), "user", None)
            learner = str(getattr(user, "identifier", "") or "")
            verdict = self.gate.check(learner, str(step_dict.get("id")), str(step_dict.get("output") or ""))
            if verdict is not None:
                log.info("learner message %s not stored: %s", step_dict.get("id"), verdict.reason)
                return
        await super().create_step(step_dict)

    async def step_owner(self, step_id: str) -> tuple[str, str] | None:
        """(learner id, thread id) of a stored step, or None."""
        rows = await self.execute_sql(
            'SELECT t."userIdentifier" AS learner, t."id" AS thread FROM steps s '
            'JOIN threads t ON t."id" = s."threadId" WHERE s."id" = :id',
            {"id": step_id},
        )
        if not isinstance(rows, list) or not rows:
            return None
        return str(rows[0]["learner"] or ""), str(rows[0]["thread"])

    async def feedback_owner(self, feedback_id: str) -> str | None:
        """The learner who owns the message a stored feedback rates, or None."""
        rows = await self.execute_sql('SELECT "forId" AS step FROM feedbacks WHERE "id" = :id', {"id": feedback_id})
        if not isinstance(rows, list) or not rows:
            return None
        owner = await self.step_owner(str(rows[0]["step"]))
        return owner[0] if owner else None

    # -- elements -----------------------------------------------------------------------------------------
    async def get_element(self, thread_id: str, element_id: str) -> ElementDict | None:
        """Chainlit's query; `props` parsed whether stored as NULL, JSON text or JSONB."""
        rows = await self.execute_sql(
            'SELECT * FROM elements WHERE "threadId" = :thread_id AND "id" = :element_id',
            {"thread_id": thread_id, "element_id": element_id},
        )
        if not isinstance(rows, list) or not rows:
            return None
        row = rows[0]
        props = _loads(row.get("props"))
        element: dict[str, Any] = {
            key: row.get(key)
            for key in (
                "id",
                "threadId",
                "type",
                "chainlitKey",
                "url",
                "objectKey",
                "name",
                "display",
                "size",
                "language",
                "page",
                "autoPlay",
                "forId",
                "mime",
            )
        }
        element["id"] = str(element["id"])
        element["threadId"] = str(element["threadId"]) if element["threadId"] else None
        element["forId"] = str(element["forId"]) if element["forId"] else None
        element["props"] = props if isinstance(props, dict) else {}
        element["playerConfig"] = _loads(row.get("playerConfig"))
        return element  # type: ignore[return-value]

    # -- elements (writing) -------------------------------------------------------------------------------
    @queue_until_user_message()
    async def create_element(self, element: Element) -> None:
        """Persist a passage inline or a PDF by its library URL; other elements are not kept."""
        if not element.for_id:
            return
        url = element.url
        if not url and element.type == "text" and element.content is not None:
            size = len(element.content.encode("utf-8") if isinstance(element.content, str) else element.content)
            if size <= MAX_INLINE_BYTES:
                url = inline_url(element.content)
        if not url:
            log.debug("element %s (%s) is not persisted: no URL and not an inline passage", element.id, element.type)
            return
        row: dict[str, Any] = dict(element.to_dict())
        row.update({"url": url, "objectKey": None, "chainlitKey": None})
        row = {k: v for k, v in row.items() if v is not None}
        if "props" in row:
            row["props"] = json.dumps(row["props"])
        columns = ", ".join(f'"{c}"' for c in row)
        values = ", ".join(f":{c}" for c in row)
        updates = ", ".join(f'"{c}" = :{c}' for c in row if c != "id")
        await self.execute_sql(
            f'INSERT INTO elements ({columns}) VALUES ({values}) ON CONFLICT ("id") DO UPDATE SET {updates}', row
        )

    # -- feedback -----------------------------------------------------------------------------------------
    async def upsert_feedback(self, feedback: Feedback) -> str:
        """Chainlit's feedback row, plus the thumbs on the learner's logged answer (1 up, -1 down)."""
        feedback_id = await super().upsert_feedback(feedback)
        try:
            await self.record_feedback(feedback.forId, feedback.value, feedback.comment, feedback.threadId)
        except Exception:
            log.exception("could not record feedback for %s in the question log", feedback.forId)
        return feedback_id

    async def record_feedback(
        self, for_id: str, value: int, comment: str | None = None, thread_id: str | None = None
    ) -> bool:
        """Match the rated step (the message, or the run that produced it) to the logged answer."""
        owner = await self.step_owner(for_id)
        if owner is None:
            return False
        learner, owner_thread = owner
        if not learner or (thread_id and str(thread_id) != owner_thread):
            return False
        children = await self.execute_sql(
            'SELECT "id" FROM steps WHERE "parentId" = :id AND "type" = \'assistant_message\' '
            'ORDER BY "createdAt" DESC',
            {"id": for_id},
        )
        candidates = [for_id] + [str(r["id"]) for r in (children if isinstance(children, list) else [])]
        score = 1 if value == 1 else -1
        for message_id in candidates:
            if await asyncio.to_thread(
                self.store.set_feedback, learner, score, message_id=message_id, comment=comment or None
            ):
                return True
        return False


__all__ = ["COLUMNS", "CoursePilotDataLayer", "async_url", "create_table_sql", "ensure_schema", "inline_url"]
