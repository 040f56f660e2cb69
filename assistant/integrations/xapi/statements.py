"""CoursePilot's xAPI statements: asked, answered, completed (a path step), saved (a learning path)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from assistant.core.types import Answer, Playlist

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
