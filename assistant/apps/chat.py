"""Routes one chat turn: question, find-a-course, learning path or progress. Shared by the UI and the CLI.

With a chat model configured the model picks a LangChain tool; otherwise a deterministic router decides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.core.errors import CoursePilotError
from assistant.core.types import Answer, ChatTurn, Playlist
from assistant.pilot import CoursePilot, FindResult
from assistant.planning.learners import SavedPlaylist

log = logging.getLogger(__name__)

Intent = Literal["question", "find", "playlist", "progress"]

_PLAYLIST = re.compile(
    r"\b(learning path|learning plan|playlist|study plan|roadmap|curriculum|(build|make|give|plan|create) me\b.*\b(path|plan)"
    r"|path (to|for|on)|plan (to|for) (learn|get|become)|get (good|better) at|become a better|what should i learn)\b",
    re.IGNORECASE,
)
_FIND = re.compile(
    r"\b((which|what) (course|courses|module|modules|training|class)|where (can|do|should) i (learn|find)"
    r"|is there (a|any) (course|module|training)|do we have (a|any) (course|training)|(course|module) (on|about|for)"
    r"|teaches|taught)\b",
    re.IGNORECASE,
)
_PROGRESS = re.compile(
    r"\b(my progress|my paths|my playlists|saved paths|what have i (done|completed|finished)|how far am i)\b",
    re.IGNORECASE,
)


def route(message: str) -> Intent:
    """The deterministic router used when no chat model is configured."""
    if _PROGRESS.search(message):
        return "progress"
    if _PLAYLIST.search(message):
        return "playlist"
    if _FIND.search(message):
        return "find"
    return "question"


class ProgressView(BaseModel):
    """A learner's progress: completed items and saved paths with their completion."""

    learner_id: str
    completed: list[str] = Field(default_factory=list)
    playlists: list[SavedPlaylist] = Field(default_factory=list)


class TurnResult(BaseModel):
    """What one chat turn produced; exactly one of the payloads is set."""

    intent: Intent
    routed_by: Literal["rules", "model"] = "rules"
    answer: Answer | None = None
    find: FindResult | None = None
    playlist: Playlist | None = None
    progress: ProgressView | None = None


class ChatRouter:
    """One turn in, one typed result out."""

    def __init__(self, pilot: CoursePilot) -> None:
        self.pilot = pilot

    def progress_view(self, learner_id: str) -> ProgressView:
        store = self.pilot.learners
        return ProgressView(
            learner_id=learner_id,
            completed=sorted(store.completed(learner_id)),
            playlists=store.playlists(learner_id),
        )

    def choose(self, message: str) -> tuple[Intent, str, Literal["rules", "model"]]:
        """(intent, the text to pass on, who decided)."""
        model = self.pilot.answerer.chat_model
        if model is not None:
            picked = self._model_route(model, message)
            if picked is not None:
                return picked[0], picked[1], "model"
        return route(message), message, "rules"

    def _model_route(self, model: Any, message: str) -> tuple[Intent, str] | None:
        from langchain_core.messages import HumanMessage, SystemMessage

        from assistant.answering.prompts import load_prompt
        from assistant.models.chat import ModelCallError, call_with_retries

        tools = make_tools(self.pilot, learner_id=None)
        bound = model.bind_tools(tools)
        captured: dict[str, Any] = {}

        def invoke() -> Any:
            result = bound.invoke([SystemMessage(content=load_prompt("router").text), HumanMessage(content=message)])
            captured["calls"] = getattr(result, "tool_calls", None) or []
            return result

        try:
            call_with_retries(invoke, self.pilot.settings.chat)
        except ModelCallError as exc:
            log.warning("model routing failed, using rules: %s", exc.reason)
            return None
        intents: dict[str, Intent] = {
            "ask_library": "question",
            "find_course": "find",
            "build_learning_path": "playlist",
            "show_progress": "progress",
        }
        for call in captured.get("calls", []):
            intent = intents.get(call.get("name", ""))
            if intent is not None:
                args = call.get("args") or {}
                text = str(args.get("question") or args.get("query") or args.get("goal") or message)
                return intent, text
        return None

    def handle(
        self,
        message: str,
        learner_id: str | None = None,
        history: Sequence[ChatTurn] | None = None,
        minutes: int | None = None,
    ) -> TurnResult:
        """Route and run one turn (answers are not streamed here; the UI streams questions itself)."""
        intent, text, routed_by = self.choose(message)
        if intent == "progress":
            if not learner_id:
                raise CoursePilotError("Progress needs a signed-in learner.", "sign in, or pass --learner ID.")
            return TurnResult(intent=intent, routed_by=routed_by, progress=self.progress_view(learner_id))
        if intent == "playlist":
            path = self.pilot.playlist(text, learner_id=learner_id, minutes=minutes)
            return TurnResult(intent=intent, routed_by=routed_by, playlist=path)
        if intent == "find":
            return TurnResult(intent=intent, routed_by=routed_by, find=self.pilot.find(text))
        return TurnResult(
            intent="question", routed_by=routed_by, answer=self.pilot.ask(text, history=list(history or []))
        )


def make_tools(pilot: CoursePilot, learner_id: str | None) -> list[Any]:
    """The LangChain tools the chat model can call; each returns JSON of the typed result."""
    from langchain_core.tools import tool

    @tool
    def ask_library(question: str) -> str:
        """Answer a question from the course library, with citations to course, module, section and page."""
        return pilot.ask(question).model_dump_json(exclude={"evidence"})

    @tool
    def find_course(query: str) -> str:
        """Find which courses teach a skill, with the sections and pages where it is taught."""
        return pilot.find(query).model_dump_json()

    @tool
    def build_learning_path(goal: str, minutes: int | None = None) -> str:
        """Build an ordered learning path (playlist) for a goal, respecting prerequisites and a time budget."""
        return pilot.playlist(goal, learner_id=learner_id, minutes=minutes).model_dump_json()

    @tool
    def show_progress() -> str:
        """Show the signed-in learner's completed items and saved learning paths."""
        if not learner_id:
            return '{"error": "not signed in"}'
        return ChatRouter(pilot).progress_view(learner_id).model_dump_json()

    return [ask_library, find_course, build_learning_path, show_progress]
