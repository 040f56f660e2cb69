"""Per-conversation state of the chat UI and the helpers every handler uses: the learner signed in, friendly
failures, and CoursePilot's element and button specs as Chainlit elements and actions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import chainlit as cl
from chainlit.config import config as cl_config

from assistant.apps.ui import learning_paths, render, replies, routes
from assistant.apps.ui.datalayer import inline_url
from assistant.apps.ui.services import users
from assistant.core.errors import CoursePilotError, StoreError
from assistant.core.types import ChatTurn, Playlist

log = logging.getLogger("coursepilot.ui")


class OpenPath:
    """A learning path shown in this conversation, with the message that shows it."""

    def __init__(self, message: cl.Message, playlist: Playlist, saved_id: str | None = None) -> None:
        self.message = message
        self.playlist = playlist
        self.saved_id = saved_id


class Conversation:
    """Kept in cl.user_session under 'cp' (not JSON, so Chainlit does not copy it into thread metadata)."""

    def __init__(self, history: list[ChatTurn] | None = None) -> None:
        self.history: list[ChatTurn] = list(history or [])
        self.paths: dict[str, OpenPath] = {}
        self.told_not_saved = False

    def remember(self, user: str, assistant: str | None) -> None:
        self.history.append(ChatTurn(role="user", content=user))
        if assistant:
            self.history.append(ChatTurn(role="assistant", content=assistant))
        del self.history[: -replies.HISTORY_TURNS]


def conversation() -> Conversation:
    conv = cl.user_session.get("cp")
    if not isinstance(conv, Conversation):
        conv = Conversation()
        cl.user_session.set("cp", conv)
    return conv


def learner_id() -> str:
    user = cl.user_session.get("user")
    if user is None or not getattr(user, "identifier", None):
        raise CoursePilotError("You are not signed in.", "reload the page and sign in.")
    return str(user.identifier)


def user_role() -> str:
    """The role in the current COURSEPILOT_UI_USERS (not the one stored when the user first signed in)."""
    user = cl.user_session.get("user")
    entry = users().get(str(getattr(user, "identifier", "") or ""))
    return entry.role if entry else "learner"


async def say(text: str) -> None:
    await cl.Message(content=text).send()


async def guarded(what: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run a handler; any failure becomes a friendly message (details only in the log)."""
    try:
        await work()
    except StoreError as exc:
        log.error("%s: %s", what, exc)
        await say(replies.NOT_SAVED)
    except CoursePilotError as exc:
        log.info("%s: %s", what, exc)
        await say(replies.render_error(exc))
    except Exception as exc:
        log.exception("%s failed", what)
        await say(replies.render_error(exc))


# -- elements and actions ---------------------------------------------------------------------------------
def source_url(course_id: str, module: str) -> str:
    return f"{cl_config.run.root_path}{routes.SOURCE_ROUTE}/{quote(course_id, safe='')}/{quote(module, safe='/')}"


def to_element(spec: render.SourceSpec) -> Any:
    if spec.kind == "pdf":
        return cl.Pdf(name=spec.name, url=source_url(spec.course_id, spec.module), page=spec.page, display="side")
    if spec.kind == "video":  # a media fragment (#t=seconds) makes the player open at the cited time
        url = f"{source_url(spec.course_id, spec.module)}#t={int(spec.start or 0)}"
        return cl.Video(name=spec.name, url=url, display="side")
    # The passage travels inline (a data: URL), exactly as the data layer stores it: no file under
    # <app root>/.files, which Chainlit deletes whenever any server started from the same folder stops.
    return cl.Text(name=spec.name, url=inline_url(spec.content), display="side")


def to_actions(specs: list[learning_paths.ActionSpec]) -> list[cl.Action]:
    return [cl.Action(name=s.name, payload=s.payload, label=s.label, tooltip=s.tooltip, icon=s.icon) for s in specs]


def path_metadata(playlist: Playlist, saved_id: str | None, text: str) -> dict[str, Any]:
    return {
        "cp": {
            "kind": "playlist",
            "playlist": playlist.model_dump(mode="json"),
            "saved_id": saved_id,
            "history": text,
        }
    }


async def refresh_path(path: OpenPath) -> None:
    """Re-render the checklist in place, with buttons for what is left."""
    msg = path.message
    await msg.remove_actions()
    msg.content = learning_paths.render_playlist(path.playlist, saved=path.saved_id is not None)
    msg.actions = to_actions(learning_paths.playlist_actions(path.playlist, saved=path.saved_id is not None))
    msg.metadata = path_metadata(path.playlist, path.saved_id, msg.content)
    await msg.update()


def open_path(action: cl.Action) -> OpenPath | None:
    return conversation().paths.get(action.forId or "")
