"""The chat UI's fixed replies (errors, refused and empty messages) and the history of a resumed thread.

Pure, like render.py: a learner only ever reads these short messages, never a stack trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from assistant.core.errors import CoursePilotError
from assistant.core.types import ChatTurn

HISTORY_TURNS = 20

GENERIC_ERROR = (
    "Sorry, something went wrong on my side and I couldn't finish that. Please try again in a moment; "
    "if it keeps happening, let your L&D team know."
)


# -- messages and errors ----------------------------------------------------------------------------------
def render_error(exc: BaseException) -> str:
    """A short message for the learner; never a stack trace."""
    if isinstance(exc, CoursePilotError) and exc.learner_message:
        return exc.learner_message
    if isinstance(exc, CoursePilotError):
        text = f"Sorry, I couldn't do that: {exc.message}"
        if exc.fix:
            text += f" Try this: {exc.fix}"
        return text
    return GENERIC_ERROR


NOT_SAVED = (
    "Heads up: your history is not being saved right now, so this conversation, your progress and saved paths "
    "may be gone next time. I can still answer. Please let your L&D team know."
)


def refused_message(reason: str, length: int, limit: int) -> str:
    """The reply to a message the gate refused ('too_long' or 'rate'); the message itself is not stored."""
    if reason == "too_long":
        return too_long(length, limit)
    return f"You're sending messages faster than I can take them (up to {limit} a minute). Please wait a moment."


def too_long(length: int, limit: int) -> str:
    return (
        f"That message is {length:,} characters long and I can take up to {limit:,}. "
        "Please shorten it to the question itself and ask again."
    )


EMPTY_MESSAGE = (
    "Type a question about the course library, ask which course teaches a skill, or ask for a learning path."
)


# -- history ----------------------------------------------------------------------------------------------
def history_turns(steps: Sequence[Mapping[str, Any]], limit: int = HISTORY_TURNS) -> list[ChatTurn]:
    """Conversation turns from a resumed thread's steps (an answer's plain text when its metadata has it)."""
    turns: list[ChatTurn] = []
    for step in steps:
        kind = step.get("type")
        if kind not in ("user_message", "assistant_message"):
            continue
        text = str(step.get("output") or "")
        meta = step.get("metadata")
        if isinstance(meta, Mapping):
            cp = meta.get("cp")
            if isinstance(cp, Mapping) and isinstance(cp.get("history"), str):
                text = cp["history"]
        if not text.strip():
            continue
        turns.append(ChatTurn(role="user" if kind == "user_message" else "assistant", content=text))
    return turns[-limit:]
