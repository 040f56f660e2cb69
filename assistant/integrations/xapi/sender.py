"""xAPI 1.0.3 statements for what learners do in CoursePilot, sent to a Learning Record Store in the background.

* ``StatementFactory`` builds statements: asked, answered, completed (a path step), saved (a learning path).
* ``validate_statement`` checks a statement against the spec's required fields and formats.
* ``XAPIClient`` persists every statement in a SQLite queue *before* sending, posts batches to
  ``{endpoint}/statements`` from a daemon thread (basic auth, ``X-Experience-API-Version: 1.0.3``), retries with
  capped exponential backoff while the LRS is down, and deletes a statement only after the LRS answered 200/204.
  A statement the LRS rejects as invalid (400/409/413 when sent alone) is kept in the queue file, marked
  ``rejected`` and not retried. A new client on the same file sends whatever an earlier process left queued.
  Statement ids are set before queueing, so a retry after a lost response cannot create a second statement in a
  conformant LRS. No-op when ``settings.xapi.endpoint`` is unset. The password never reaches logs or exceptions:
  messages carry only the endpoint without credentials, HTTP status codes and exception type names.
* ``XAPIRecorder`` is the facade the app calls; its methods never raise.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from assistant.core.settings import Settings, XAPISettings

if TYPE_CHECKING:
    from assistant.core.types import Answer, Playlist
    from assistant.planning.learners import SavedPlaylist

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ACTIVITY_BASE",
    "VERB_ANSWERED",
    "VERB_ASKED",
    "VERB_COMPLETED",
    "VERB_SAVED",
    "XAPI_VERSION",
    "StatementFactory",
    "XAPIClient",
    "XAPIRecorder",
    "emit_for_answer",
    "validate_statement",
]

XAPI_VERSION = "1.0.3"
DEFAULT_ACTIVITY_BASE = "https://coursepilot.example"
PLATFORM = "CoursePilot"

VERB_ASKED = "http://adlnet.gov/expapi/verbs/asked"
VERB_ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
VERB_COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
# ADL's vocabulary has no "save". Activity Streams 1.0 "save" ("the actor has called out the object as being of
# interest primarily to him- or herself") is in the public xAPI verb registry with the display "saved" and is
# what saving a learning path for oneself means; a registered IRI is recognised by LRS dashboards, a minted one
# is not. (https://w3id.org/xapi/dod-isd/verbs/saved is tied to the DoD ISD profile's meaning of "saved work".)
VERB_SAVED = "http://activitystrea.ms/schema/1.0/save"

ACTIVITY_QUESTION = "http://adlnet.gov/expapi/activities/question"
ACTIVITY_COURSE = "http://adlnet.gov/expapi/activities/course"
ACTIVITY_MODULE = "http://adlnet.gov/expapi/activities/module"

_VERB_DISPLAY = {VERB_ASKED: "asked", VERB_ANSWERED: "answered", VERB_COMPLETED: "completed", VERB_SAVED: "saved"}
_MAX_RESPONSE_CHARS = 4000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(ms: float) -> str:
    return f"PT{max(ms, 0.0) / 1000:.3f}S"


# ------------------------------------------------------------------------------------------------ statements


class StatementFactory:
    """Builds CoursePilot's statements; activity ids live under `activity_base` (an IRI the organisation owns)."""

    def __init__(
        self, activity_base: str = DEFAULT_ACTIVITY_BASE, home_page: str | None = None, platform: str = PLATFORM
    ) -> None:
        self.base = activity_base.rstrip("/")
        self.home_page = home_page or self.base
        self.platform = platform

    # -- building blocks -------------------------------------------------------------------------------------
    def agent(self, learner_id: str) -> dict[str, Any]:
        return {"objectType": "Agent", "account": {"homePage": self.home_page, "name": learner_id}}

    def assistant(self) -> dict[str, Any]:
        """CoursePilot itself, as the instructor in the context of an answer."""
        return {
            "objectType": "Agent",
            "name": self.platform,
            "account": {"homePage": self.home_page, "name": "coursepilot"},
        }

    def extension(self, name: str) -> str:
        return f"{self.base}/xapi/extensions/{name}"

    def question_activity(self, question: str) -> dict[str, Any]:
        key = hashlib.sha1(" ".join(question.lower().split()).encode()).hexdigest()[:20]
        return {
            "objectType": "Activity",
            "id": f"{self.base}/questions/{key}",
            "definition": {"type": ACTIVITY_QUESTION, "name": {"en-US": question[:500]}},
        }

    def course_activity(self, course_id: str, title: str | None = None) -> dict[str, Any]:
        return {
            "objectType": "Activity",
            "id": f"{self.base}/courses/{quote(course_id, safe='')}",
            "definition": {"type": ACTIVITY_COURSE, "name": {"en-US": title or course_id}},
        }

    def item_activity(self, item_id: str, title: str | None = None) -> dict[str, Any]:
        """A path step: 'course_id' (a course) or 'course_id/module_path' (a module)."""
        course_id, _, module = item_id.partition("/")
        if not module:
            return self.course_activity(course_id, title)
        return {
            "objectType": "Activity",
            "id": f"{self.base}/courses/{quote(course_id, safe='')}/modules/{quote(module, safe='')}",
            "definition": {"type": ACTIVITY_MODULE, "name": {"en-US": title or module}},
        }

    def path_activity(self, playlist_id: str, goal: str) -> dict[str, Any]:
        return {
            "objectType": "Activity",
            "id": f"{self.base}/paths/{quote(playlist_id, safe='')}",
            "definition": {"type": f"{self.base}/xapi/activity-types/learning-path", "name": {"en-US": goal[:500]}},
        }

    def statement(
        self,
        learner_id: str,
        verb: str,
        obj: dict[str, Any],
        result: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        stmt: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "actor": self.agent(learner_id),
            "verb": {"id": verb, "display": {"en-US": _VERB_DISPLAY.get(verb, verb.rsplit("/", 1)[-1])}},
            "object": obj,
            "timestamp": timestamp or _now(),
            "context": {"platform": self.platform, "language": "en-US", **(context or {})},
            "version": XAPI_VERSION,
        }
        if result:
            stmt["result"] = result
        return stmt

    # -- CoursePilot events ----------------------------------------------------------------------------------
    def asked(self, learner_id: str, question: str, timestamp: str | None = None) -> dict[str, Any]:
        """The learner asked CoursePilot a question (object: the question)."""
        return self.statement(learner_id, VERB_ASKED, self.question_activity(question), timestamp=timestamp)

    def answered(self, learner_id: str, answer: Answer, asked_id: str | None = None) -> dict[str, Any]:
        """The learner's question got its answer.

        The actor stays the learner (every CoursePilot statement is about a learner, so per-learner LRS queries
        see the whole exchange); CoursePilot, which wrote the response, is the context's instructor.
        result.response is the answer text, result.success is False when CoursePilot refused.
        """
        cited: list[dict[str, Any]] = []
        for citation in answer.citations:
            loc = citation.location
            activity = self.item_activity(f"{loc.course_id}/{loc.module}", loc.module_title)
            if activity["id"] not in {a["id"] for a in cited}:
                cited.append(activity)
        result: dict[str, Any] = {
            "success": not answer.refused,
            "response": answer.text[:_MAX_RESPONSE_CHARS],
            "extensions": {
                self.extension("refused"): answer.refused,
                self.extension("top-score"): answer.top_score,
                self.extension("mode"): answer.mode,
                self.extension("citations"): [c.label for c in answer.citations],
            },
        }
        total = answer.timings_ms.get("total")
        if total is not None:
            result["duration"] = _duration(total)
        context: dict[str, Any] = {"instructor": self.assistant()}
        if cited:
            context["contextActivities"] = {"other": cited}
        if asked_id:
            context["statement"] = {"objectType": "StatementRef", "id": asked_id}
        return self.statement(
            learner_id, VERB_ANSWERED, self.question_activity(answer.question), result=result, context=context
        )

    def completed(
        self, learner_id: str, item_id: str, title: str | None = None, course_title: str | None = None
    ) -> dict[str, Any]:
        """The learner marked a path step (a module or a course) as done."""
        context: dict[str, Any] = {}
        course_id, _, module = item_id.partition("/")
        if module:
            context["contextActivities"] = {"parent": [self.course_activity(course_id, course_title)]}
        return self.statement(
            learner_id,
            VERB_COMPLETED,
            self.item_activity(item_id, title),
            result={"completion": True},
            context=context,
        )

    def saved_path(self, learner_id: str, playlist_id: str, playlist: Playlist) -> dict[str, Any]:
        """The learner saved a learning path; its steps are the context's 'other' activities."""
        steps = [self.item_activity(item.item_id, item.title) for item in playlist.items]
        context: dict[str, Any] = {
            "extensions": {
                self.extension("steps"): [item.item_id for item in playlist.items],
                self.extension("total-minutes"): playlist.total_minutes,
            }
        }
        if steps:
            context["contextActivities"] = {"other": steps}
        return self.statement(learner_id, VERB_SAVED, self.path_activity(playlist_id, playlist.goal), context=context)


# ------------------------------------------------------------------------------------------------ validation

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_IRL = re.compile(r"^https?://[^\s<>\"{}|\\^`/]+[^\s<>\"{}|\\^`]*$", re.IGNORECASE)
_MAILTO = re.compile(r"^mailto:[^@\s]+@[^@\s]+$", re.IGNORECASE)
_SHA1 = re.compile(r"^[0-9a-f]{40}$", re.IGNORECASE)
_LANG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$",
    re.IGNORECASE,
)
_DURATION = re.compile(
    r"^P(?=\d|T\d)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)
_STATEMENT_KEYS = {
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
}
_OBJECT_TYPES = {"Activity", "Agent", "Group", "SubStatement", "StatementRef"}
_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


def _is_uuid(value: Any) -> bool:
    return isinstance(value, str) and bool(_UUID.match(value))


def _is_iri(value: Any) -> bool:
    return isinstance(value, str) and bool(_IRI.match(value))


def _check_timestamp(value: Any, where: str, errors: list[str]) -> None:
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        errors.append(f"{where}: must be an ISO 8601 date-time, e.g. 2024-05-01T09:30:00.000Z")
        return
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        errors.append(f"{where}: is not a valid date-time")
        return
    if parsed.tzinfo is None:
        errors.append(f"{where}: must include a time zone (Z or ±hh:mm)")


def _check_language_map(value: Any, where: str, errors: list[str]) -> None:
    if not isinstance(value, dict) or not value:
        errors.append(f"{where}: must be a language map such as {{'en-US': '...'}}")
        return
    for tag, text in value.items():
        if not isinstance(tag, str) or not _LANG.match(tag):
            errors.append(f"{where}: '{tag}' is not an RFC 5646 language tag")
        if not isinstance(text, str):
            errors.append(f"{where}.{tag}: must be a string")


def _check_extensions(value: Any, where: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: must be an object")
        return
    errors.extend(f"{where}: key '{key}' must be an IRI" for key in value if not _is_iri(key))


def _check_agent(value: Any, where: str, errors: list[str], object_type_required: bool = False) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: must be an Agent or Group object")
        return
    kind = value.get("objectType", None if not object_type_required else "")
    if kind == "Group":
        _check_group(value, where, errors)
        return
    if kind not in (None, "Agent"):
        errors.append(f"{where}.objectType: must be 'Agent' or 'Group'")
        return
    ifis = [k for k in _IFIS if k in value]
    if len(ifis) != 1:
        errors.append(f"{where}: an Agent needs exactly one of {', '.join(_IFIS)} (found {len(ifis)})")
    _check_ifis(value, where, errors)
    if "name" in value and not isinstance(value["name"], str):
        errors.append(f"{where}.name: must be a string")
    if "member" in value:
        errors.append(f"{where}: an Agent cannot have 'member'")


def _check_ifis(value: dict[str, Any], where: str, errors: list[str]) -> None:
    if "mbox" in value and not (isinstance(value["mbox"], str) and _MAILTO.match(value["mbox"])):
        errors.append(f"{where}.mbox: must be a 'mailto:' IRI with an email address")
    if "mbox_sha1sum" in value and not (isinstance(value["mbox_sha1sum"], str) and _SHA1.match(value["mbox_sha1sum"])):
        errors.append(f"{where}.mbox_sha1sum: must be 40 hex digits (SHA-1 of the mailto IRI)")
    if "openid" in value and not _is_iri(value["openid"]):
        errors.append(f"{where}.openid: must be a URI")
    if "account" in value:
        account = value["account"]
        if not isinstance(account, dict):
            errors.append(f"{where}.account: must be an object with homePage and name")
            return
        home = account.get("homePage")
        if not (isinstance(home, str) and _IRL.match(home)):
            errors.append(f"{where}.account.homePage: must be an IRL (an http or https URL)")
        name = account.get("name")
        if not (isinstance(name, str) and name):
            errors.append(f"{where}.account.name: must be a non-empty string")
        extra = set(account) - {"homePage", "name"}
        if extra:
            errors.append(f"{where}.account: unexpected properties {sorted(extra)}")


def _check_group(value: dict[str, Any], where: str, errors: list[str]) -> None:
    ifis = [k for k in _IFIS if k in value]
    if len(ifis) > 1:
        errors.append(f"{where}: a Group has at most one of {', '.join(_IFIS)}")
    _check_ifis(value, where, errors)
    members = value.get("member")
    if not ifis and not (isinstance(members, list) and members):
        errors.append(f"{where}.member: an anonymous Group needs a non-empty member list")
    if members is not None:
        if not isinstance(members, list):
            errors.append(f"{where}.member: must be a list of Agents")
            return
        for i, member in enumerate(members):
            if isinstance(member, dict) and member.get("objectType") == "Group":
                errors.append(f"{where}.member[{i}]: a Group cannot contain a Group")
            else:
                _check_agent(member, f"{where}.member[{i}]", errors)


def _check_verb(value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append("verb: required, an object with an IRI 'id'")
        return
    if not _is_iri(value.get("id")):
        errors.append("verb.id: required, must be an IRI")
    if "display" in value:
        _check_language_map(value["display"], "verb.display", errors)


def _check_activity(value: dict[str, Any], where: str, errors: list[str]) -> None:
    if not _is_iri(value.get("id")):
        errors.append(f"{where}.id: an Activity needs an IRI id")
    definition = value.get("definition")
    if definition is None:
        return
    if not isinstance(definition, dict):
        errors.append(f"{where}.definition: must be an object")
        return
    for key in ("name", "description"):
        if key in definition:
            _check_language_map(definition[key], f"{where}.definition.{key}", errors)
    if "type" in definition and not _is_iri(definition["type"]):
        errors.append(f"{where}.definition.type: must be an IRI")
    if "moreInfo" in definition and not (
        isinstance(definition["moreInfo"], str) and _IRL.match(definition["moreInfo"])
    ):
        errors.append(f"{where}.definition.moreInfo: must be an IRL")
    if "extensions" in definition:
        _check_extensions(definition["extensions"], f"{where}.definition.extensions", errors)


def _check_object(value: Any, errors: list[str], where: str = "object", sub: bool = False) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: required, an Activity, Agent, Group, SubStatement or StatementRef")
        return
    kind = value.get("objectType", "Activity")
    if kind not in _OBJECT_TYPES:
        errors.append(f"{where}.objectType: '{kind}' is not one of {', '.join(sorted(_OBJECT_TYPES))}")
        return
    if kind == "Activity":
        _check_activity(value, where, errors)
    elif kind in ("Agent", "Group"):
        _check_agent(value, where, errors, object_type_required=True)
    elif kind == "StatementRef":
        if not _is_uuid(value.get("id")):
            errors.append(f"{where}.id: a StatementRef needs a UUID id")
    elif sub:
        errors.append(f"{where}: a SubStatement cannot contain a SubStatement")
    else:
        for key in ("id", "stored", "version", "authority"):
            if key in value:
                errors.append(f"{where}.{key}: not allowed in a SubStatement")
        _check_agent(value.get("actor"), f"{where}.actor", errors)
        _check_verb(value.get("verb"), errors)
        _check_object(value.get("object"), errors, f"{where}.object", sub=True)


def _check_result(value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append("result: must be an object")
        return
    for key in ("success", "completion"):
        if key in value and not isinstance(value[key], bool):
            errors.append(f"result.{key}: must be true or false")
    if "response" in value and not isinstance(value["response"], str):
        errors.append("result.response: must be a string")
    if "duration" in value and not (isinstance(value["duration"], str) and _DURATION.match(value["duration"])):
        errors.append("result.duration: must be an ISO 8601 duration such as PT1.5S")
    score = value.get("score")
    if score is not None:
        if not isinstance(score, dict):
            errors.append("result.score: must be an object")
        else:
            scaled = score.get("scaled")
            if scaled is not None and not (isinstance(scaled, int | float) and -1 <= scaled <= 1):
                errors.append("result.score.scaled: must be a number from -1 to 1")
            low, raw, high = score.get("min"), score.get("raw"), score.get("max")
            if low is not None and high is not None and low > high:
                errors.append("result.score: min must not exceed max")
            if raw is not None and ((low is not None and raw < low) or (high is not None and raw > high)):
                errors.append("result.score.raw: must lie between min and max")
    if "extensions" in value:
        _check_extensions(value["extensions"], "result.extensions", errors)


def _check_context(value: Any, object_type: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append("context: must be an object")
        return
    if "registration" in value and not _is_uuid(value["registration"]):
        errors.append("context.registration: must be a UUID")
    if "instructor" in value:
        _check_agent(value["instructor"], "context.instructor", errors)
    if "team" in value:
        team = value["team"]
        if not (isinstance(team, dict) and team.get("objectType") == "Group"):
            errors.append("context.team: must be a Group")
        else:
            _check_group(team, "context.team", errors)
    activities = value.get("contextActivities")
    if activities is not None:
        if not isinstance(activities, dict):
            errors.append("context.contextActivities: must be an object")
        else:
            for key, entries in activities.items():
                if key not in ("parent", "grouping", "category", "other"):
                    errors.append(f"context.contextActivities: unknown key '{key}'")
                    continue
                for i, activity in enumerate(entries if isinstance(entries, list) else [entries]):
                    where = f"context.contextActivities.{key}[{i}]"
                    if not isinstance(activity, dict) or activity.get("objectType", "Activity") != "Activity":
                        errors.append(f"{where}: must be an Activity")
                    else:
                        _check_activity(activity, where, errors)
    for key in ("revision", "platform"):
        if key in value:
            if not isinstance(value[key], str):
                errors.append(f"context.{key}: must be a string")
            if object_type != "Activity":
                errors.append(f"context.{key}: only allowed when the object is an Activity")
    if "language" in value and not (isinstance(value["language"], str) and _LANG.match(value["language"])):
        errors.append("context.language: must be an RFC 5646 language tag")
    if "statement" in value:
        ref = value["statement"]
        if not (isinstance(ref, dict) and ref.get("objectType") == "StatementRef" and _is_uuid(ref.get("id"))):
            errors.append("context.statement: must be a StatementRef with a UUID id")
    if "extensions" in value:
        _check_extensions(value["extensions"], "context.extensions", errors)


def validate_statement(stmt: Any) -> list[str]:
    """Problems with an xAPI 1.0.3 statement (empty when valid): required actor/verb/object, id UUID, verb and
    activity ids IRIs, ISO 8601 timestamp (with a time zone), Agent identified by exactly one of mbox /
    mbox_sha1sum / openid / account, valid objectType values, result and context formats."""
    errors: list[str] = []
    if not isinstance(stmt, dict):
        return ["statement: must be a JSON object"]
    unknown = set(stmt) - _STATEMENT_KEYS
    if unknown:
        errors.append(f"statement: unknown properties {sorted(unknown)}")
    if "id" in stmt and not _is_uuid(stmt["id"]):
        errors.append("id: must be a UUID (RFC 4122)")
    if "actor" not in stmt:
        errors.append("actor: required")
    else:
        _check_agent(stmt["actor"], "actor", errors)
    if "verb" not in stmt:
        errors.append("verb: required")
    else:
        _check_verb(stmt["verb"], errors)
    if "object" not in stmt:
        errors.append("object: required")
    else:
        _check_object(stmt["object"], errors)
    object_type = stmt["object"].get("objectType", "Activity") if isinstance(stmt.get("object"), dict) else ""
    if "result" in stmt:
        _check_result(stmt["result"], errors)
    if "context" in stmt:
        _check_context(stmt["context"], object_type, errors)
    for key in ("timestamp", "stored"):
        if key in stmt:
            _check_timestamp(stmt[key], key, errors)
    if "version" in stmt and not (isinstance(stmt["version"], str) and re.match(r"^1\.0(\.\d+)?$", stmt["version"])):
        errors.append("version: must be 1.0.x")
    if "authority" in stmt:
        _check_agent(stmt["authority"], "authority", errors)
    return errors


# ------------------------------------------------------------------------------------------------ queue

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


class _Queue:
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


# ------------------------------------------------------------------------------------------------ client


def _split_credentials(endpoint: str) -> tuple[str, str | None, str | None]:
    """The endpoint without user:password@ (which must never be logged), and those credentials."""
    parts = urlsplit(endpoint)
    if parts.username is None and parts.password is None:
        return endpoint, None, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), parts.username, parts.password


class XAPIClient:
    """Durable, background xAPI sender for one LRS (see the module docstring)."""

    def __init__(
        self,
        settings: Settings | XAPISettings,
        queue_path: Path | None = None,
        *,
        batch_size: int = 50,
        timeout_s: float = 10.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        poll_s: float = 2.0,
        start: bool = True,
    ) -> None:
        xapi = settings.xapi if isinstance(settings, Settings) else settings
        self.enabled = bool(xapi.endpoint)
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self._secrets: list[str] = []
        self._auth: tuple[str, str] | None = None
        self._thread: threading.Thread | None = None
        self._queue: _Queue | None = None
        self._wake = threading.Event()
        self._nudge = threading.Event()
        self._stop = threading.Event()
        if queue_path is None:
            base = Path(settings.index.dir).parent if isinstance(settings, Settings) else Path(".coursepilot")
            queue_path = base / "xapi_queue.sqlite"
        self.queue_path = Path(queue_path)
        if not self.enabled:
            self.endpoint = ""
            return
        endpoint, url_user, url_password = _split_credentials(str(xapi.endpoint).strip())
        self.endpoint = endpoint.rstrip("/")
        self._url = f"{self.endpoint}/statements"
        username = xapi.username or url_user or ""
        password = xapi.password.get_secret_value() if xapi.password is not None else (url_password or "")
        if username or password:
            self._auth = (username, password)
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._secrets = [s for s in (password, url_password, token) if s]
        self._queue = _Queue(self.queue_path)
        if start:
            self.start()

    def __repr__(self) -> str:
        return f"XAPIClient(endpoint={self.endpoint!r}, queue={str(self.queue_path)!r}, enabled={self.enabled})"

    # -- public ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled or self._queue is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="xapi-sender", daemon=True)
        self._thread.start()

    def enqueue(self, statement: dict[str, Any]) -> str | None:
        """Persist one statement for delivery; returns its id (None when xAPI is disabled).

        Raises ValueError (listing the problems) for a statement that fails validate_statement."""
        ids = self.enqueue_many([statement])
        return ids[0] if ids else None

    def enqueue_many(self, statements: Sequence[dict[str, Any]]) -> list[str]:
        if not self.enabled or self._queue is None:
            return []
        ready = []
        for statement in statements:
            stmt = dict(statement)
            stmt.setdefault("id", str(uuid.uuid4()))
            problems = validate_statement(stmt)
            if problems:
                raise ValueError("invalid xAPI statement: " + "; ".join(problems))
            ready.append(stmt)
        self._queue.add(ready)
        self._wake.set()
        return [s["id"] for s in ready]

    def pending(self) -> int:
        """Statements waiting for delivery (in this queue file, from any process)."""
        return self._queue.count("pending") if self._queue is not None else 0

    def rejected(self) -> list[dict[str, Any]]:
        """Statements the LRS refused as invalid: kept in the queue file for inspection, never retried."""
        return self._queue.rows("rejected") if self._queue is not None else []

    def flush(self, timeout: float = 10.0) -> bool:
        """Send now (cutting short a backoff wait) and wait until nothing is pending; False on timeout."""
        if not self.enabled:
            return True
        self.start()
        deadline = time.monotonic() + max(timeout, 0.0)
        self._wake.set()
        self._nudge.set()
        while self.pending() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to `timeout` seconds, then stop the sender; anything unsent stays queued on disk."""
        if not self.enabled:
            return True
        delivered = self.flush(timeout) if timeout > 0 else self.pending() == 0
        self._stop.set()
        self._wake.set()
        self._nudge.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1.0)
        if self._queue is not None and (self._thread is None or not self._thread.is_alive()):
            self._queue.close()
            self._queue = None
        return delivered

    # -- sender ----------------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _backoff(self) -> float:
        exp = min(self.backoff_max_s, self.backoff_base_s * (2 ** max(self.consecutive_failures - 1, 0)))
        return exp * (0.75 + random.random() / 4)

    def _run(self) -> None:
        import httpx

        assert self._queue is not None
        auth = httpx.BasicAuth(*self._auth) if self._auth else None
        headers = {"X-Experience-API-Version": XAPI_VERSION, "Content-Type": "application/json"}
        with httpx.Client(timeout=self.timeout_s, auth=auth, headers=headers, follow_redirects=False) as http:
            while not self._stop.is_set():
                try:
                    batch = self._queue.claim(self.batch_size, lease_s=self.timeout_s + 10.0)
                except sqlite3.Error as exc:
                    log.warning("xAPI queue %s unavailable (%s); retrying", self.queue_path, type(exc).__name__)
                    self._stop.wait(1.0)
                    continue
                if not batch:
                    self._wake.wait(self.poll_s)
                    self._wake.clear()
                    continue
                try:
                    delivered = self._deliver(http, batch)
                except Exception as exc:  # e.g. the queue file went read-only: keep the sender alive
                    self.last_error = f"{type(exc).__name__} while sending"
                    log.warning("xAPI: %s; will retry", self.last_error)
                    with contextlib.suppress(Exception):
                        self._queue.release([i for i, _ in batch], self.last_error)
                    delivered = False
                if delivered:
                    self.consecutive_failures = 0
                    continue
                self.consecutive_failures += 1
                delay = self._backoff()
                log.info(
                    "xAPI: %d statement(s) queued for %s; next attempt in %.1f s (%s)",
                    self.pending(),
                    self.endpoint,
                    delay,
                    self.last_error,
                )
                self._nudge.clear()
                self._nudge.wait(delay)

    def _post(self, http: Any, statements: list[Any]) -> tuple[int | None, str]:
        """(HTTP status or None, safe description). Never raises."""
        import httpx

        try:
            response = http.post(self._url, content=json.dumps(statements, ensure_ascii=False).encode("utf-8"))
        except httpx.HTTPError as exc:
            return None, self._scrub(f"{type(exc).__name__} reaching {self.endpoint}")
        except Exception as exc:  # anything else from the network stack must not kill the sender
            return None, self._scrub(f"{type(exc).__name__} sending to {self.endpoint}")
        return response.status_code, f"HTTP {response.status_code} from {self.endpoint}"

    def _deliver(self, http: Any, batch: list[tuple[str, str]]) -> bool:
        """Send a claimed batch; True when none of it needs a retry."""
        assert self._queue is not None
        ids = [i for i, _ in batch]
        status, message = self._post(http, [json.loads(body) for _, body in batch])
        if status in (200, 204):
            self._queue.delete(ids)
            log.debug("xAPI: delivered %d statement(s) to %s", len(ids), self.endpoint)
            return True
        if status in (400, 409, 413) and len(batch) > 1:
            # One bad statement fails the whole batch: send them one by one to isolate it.
            for position, row in enumerate(batch):
                if not self._deliver(http, [row]):
                    rest = [i for i, _ in batch[position + 1 :]]
                    if rest:
                        self._queue.release(rest, self.last_error or message)
                    return False
            return True
        if status in (400, 409, 413):
            self._queue.reject(ids[0], message)
            log.warning(
                "xAPI: %s rejected statement %s (%s); kept in %s", self.endpoint, ids[0], message, self.queue_path
            )
            return True
        self.last_error = message
        self._queue.release(ids, message)
        return False


# ------------------------------------------------------------------------------------------------ facade


class XAPIRecorder:
    """What the app calls: one method per learner event. Never raises; no-op when xAPI is disabled or the
    learner is anonymous (an xAPI actor must be identified)."""

    def __init__(
        self,
        client: XAPIClient,
        activity_base: str = DEFAULT_ACTIVITY_BASE,
        home_page: str | None = None,
        platform: str = PLATFORM,
    ) -> None:
        self.client = client
        self.factory = StatementFactory(activity_base, home_page, platform)

    @classmethod
    def from_settings(
        cls, settings: Settings, queue_path: Path | None = None, activity_base: str = DEFAULT_ACTIVITY_BASE
    ) -> XAPIRecorder:
        return cls(XAPIClient(settings, queue_path), activity_base)

    @property
    def enabled(self) -> bool:
        return self.client.enabled

    def _emit(self, learner_id: str | None, build: Any) -> str | None:
        if not self.client.enabled or not learner_id:
            return None
        try:
            return self.client.enqueue(build())
        except Exception as exc:  # recording must never break answering
            log.warning("xAPI: could not queue a statement: %s", self.client._scrub(f"{type(exc).__name__}: {exc}"))
            return None

    def asked(self, learner_id: str | None, question: str) -> str | None:
        return self._emit(learner_id, lambda: self.factory.asked(str(learner_id), question))

    def answered(self, learner_id: str | None, answer: Answer, asked_id: str | None = None) -> str | None:
        return self._emit(learner_id, lambda: self.factory.answered(str(learner_id), answer, asked_id))

    def answer(self, learner_id: str | None, answer: Answer) -> tuple[str | None, str | None]:
        """'asked' then 'answered' (referring to it) for one finished answer; returns both statement ids."""
        total_ms = answer.timings_ms.get("total", 0.0)
        asked_at = datetime.fromtimestamp(time.time() - total_ms / 1000, UTC).isoformat(timespec="milliseconds")
        asked_id = self._emit(
            learner_id, lambda: self.factory.asked(str(learner_id), answer.question, asked_at.replace("+00:00", "Z"))
        )
        return asked_id, self.answered(learner_id, answer, asked_id)

    def completed(
        self, learner_id: str | None, item_id: str, title: str | None = None, course_title: str | None = None
    ) -> str | None:
        return self._emit(learner_id, lambda: self.factory.completed(str(learner_id), item_id, title, course_title))

    def saved_path(self, learner_id: str | None, saved: SavedPlaylist) -> str | None:
        return self._emit(learner_id, lambda: self.factory.saved_path(str(learner_id), saved.id, saved.playlist))

    def flush(self, timeout: float = 10.0) -> bool:
        return self.client.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        return self.client.close(timeout)


def emit_for_answer(
    client: XAPIClient, learner_id: str | None, answer: Answer, activity_base: str = DEFAULT_ACTIVITY_BASE
) -> tuple[str | None, str | None]:
    """Queue 'asked' + 'answered' for one answer; returns their statement ids (None when not sent)."""
    return XAPIRecorder(client, activity_base).answer(learner_id, answer)
