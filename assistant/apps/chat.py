"""Routes one chat turn: question, find-a-course, learning path or progress (the chat UI runs what it picks).

With a chat model configured the model picks one of the tool schemas below; otherwise a deterministic router
decides.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.pilot import CoursePilot
from assistant.planning.learners import SavedPlaylist

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

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


class AskLibrary(BaseModel):
    """Answer a question from the course library, with citations to course, module, section and page."""

    model_config = ConfigDict(title="ask_library")
    question: str = Field(description="The learner's question, as a standalone sentence.")


class FindCourse(BaseModel):
    """Find which courses teach a skill, with the sections and pages where it is taught."""

    model_config = ConfigDict(title="find_course")
    query: str = Field(description="The skill or topic.")


class BuildLearningPath(BaseModel):
    """Build an ordered learning path (playlist) for a goal, respecting prerequisites and a time budget."""

    model_config = ConfigDict(title="build_learning_path")
    goal: str = Field(description="What the learner wants to get good at.")
    minutes: int | None = Field(default=None, description="Time budget in minutes, if the learner gave one.")


class ShowProgress(BaseModel):
    """Show the signed-in learner's completed items and saved learning paths."""

    model_config = ConfigDict(title="show_progress")


# The tools the chat model may pick from: only their schemas are sent; the router runs the chosen intent itself.
TOOLS: dict[str, tuple[Intent, type[BaseModel]]] = {
    "ask_library": ("question", AskLibrary),
    "find_course": ("find", FindCourse),
    "build_learning_path": ("playlist", BuildLearningPath),
    "show_progress": ("progress", ShowProgress),
}


class ChatRouter:
    """Decides what one chat turn is (the UI then runs it): a question, find-a-course, a learning path, progress."""

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

    def _model_route(self, model: BaseChatModel, message: str) -> tuple[Intent, str] | None:
        from langchain_core.messages import HumanMessage, SystemMessage
        from pydantic import ValidationError

        from assistant.answering.prompts import load_prompt
        from assistant.models.chat import ModelCallError, invoke_with_retries

        bound = model.bind_tools([schema for _, schema in TOOLS.values()])
        messages = [SystemMessage(content=load_prompt("router").text), HumanMessage(content=message)]
        try:
            reply = invoke_with_retries(bound, messages, self.pilot.settings.chat)
        except ModelCallError as exc:
            log.warning("model routing failed, using rules: %s", exc.reason)
            return None
        for call in getattr(reply, "tool_calls", None) or []:
            tool = TOOLS.get(call.get("name", ""))
            if tool is None:
                continue
            intent, schema = tool
            try:
                args = schema.model_validate(call.get("args") or {})
            except ValidationError:  # model output is hostile: a malformed call falls back to the message
                return intent, message
            text = getattr(args, "question", None) or getattr(args, "query", None) or getattr(args, "goal", None)
            return intent, str(text or message)
        return None
