"""Chainlit handlers for the CoursePilot web chat (the file `chainlit run` loads). Thin: route, call CoursePilot in
threads, render, reply.

Start it with `coursepilot ui` (assistant.apps.ui.launch.run_ui), which sets the environment services.py reads.
Every turn goes through ChatRouter.choose; questions stream with CoursePilot.astream (turns.py). Learners only
ever see short friendly messages: CoursePilotError text, or a generic apology with the details in the server log
(conversation.guarded). Every Chainlit handler is registered here; the services are built in services.py, the
conversation state and shared helpers live in conversation.py, the longer turns in turns.py.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import chainlit as cl
from chainlit.config import SpontaneousFileUploadFeature
from chainlit.config import config as cl_config
from chainlit.server import app as server_app
from chainlit.types import ThreadDict

from assistant.apps.ui import learning_paths, render, replies, routes
from assistant.apps.ui.conversation import (
    Conversation,
    OpenPath,
    conversation,
    guarded,
    learner_id,
    open_path,
    path_metadata,
    refresh_path,
    say,
    to_actions,
)
from assistant.apps.ui.datalayer import CoursePilotDataLayer
from assistant.apps.ui.launch import authenticate, demo_allowed
from assistant.apps.ui.services import (
    gate,
    pilot,
    policy,
    ready,
    report_folder,
    router,
    settings,
    start_warm_up,
    store,
    throttle,
    users,
    xapi,
)
from assistant.apps.ui.turns import answer_question, send_insights_report, show_playlist
from assistant.core.errors import CoursePilotError
from assistant.core.settings import DEMO_ID
from assistant.core.types import Playlist

log = logging.getLogger("coursepilot.ui")


# -- sign-in, starters, start and resume ------------------------------------------------------------------
@cl.password_auth_callback
async def auth_callback(username: str, password: str) -> cl.User | None:
    try:
        table = users()
    except CoursePilotError as exc:
        log.error("sign-in is misconfigured: %s", exc)
        return None
    user = await asyncio.to_thread(authenticate, table, username, password)
    if user is None:
        return None
    if user.id == DEMO_ID and not settings().ui.users.strip() and not demo_allowed(settings(), cl_config.run.host):
        log.error("the demo user may only sign in on a loopback address (see COURSEPILOT_UI_ALLOW_DEMO)")
        return None
    try:
        await asyncio.to_thread(store().ensure_learner, user.id, "", user.role)
    except Exception:
        log.exception("could not record learner %s", user.id)
    # A nonce per sign-in: two sign-ins in one second would otherwise get the same token, and signing out one
    # (its hash is revoked) would sign out the other device too.
    return cl.User(
        identifier=user.id,
        metadata={"role": user.role, "provider": "credentials", "session": secrets.token_hex(8)},
    )


@cl.set_starters
async def starters(user: cl.User | None = None) -> list[cl.Starter]:
    return [
        cl.Starter(label="Ask a question", message="How do I refresh a pivot table?", icon="/public/ask.svg"),
        cl.Starter(
            label="Find where a skill is taught", message="Which course teaches pivot tables?", icon="/public/find.svg"
        ),
        cl.Starter(
            label="Get a learning path",
            message="Build me a 3-hour path to become a better coach",
            icon="/public/path.svg",
        ),
    ]


@cl.on_app_startup
async def on_app_startup() -> None:
    if not settings().ui.users.strip():
        log.warning("COURSEPILOT_UI_USERS is empty: the demo user 'demo' / 'demo' can sign in.")
    start_warm_up()


@cl.on_chat_start
async def on_chat_start() -> None:
    cl.user_session.set("cp", Conversation())
    start_warm_up()


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    async def work() -> None:
        steps = list(thread.get("steps") or [])
        conv = Conversation(history=replies.history_turns(steps))
        cl.user_session.set("cp", conv)
        done = await asyncio.to_thread(store().completed, learner_id())
        for step in steps:
            meta = step.get("metadata")
            cp = meta.get("cp") if isinstance(meta, dict) else None
            if step.get("type") != "assistant_message" or not isinstance(cp, dict) or cp.get("kind") != "playlist":
                continue
            playlist = learning_paths.apply_progress(Playlist.model_validate(cp["playlist"]), done)
            saved_id = cp.get("saved_id")
            message = cl.Message(
                content=step.get("output") or "",
                id=step["id"],
                parent_id=step.get("parentId"),
                created_at=step.get("createdAt"),
                metadata=meta,
            )
            fresh = learning_paths.render_playlist(playlist, saved=bool(saved_id))
            if fresh != message.content:  # progress made elsewhere since: show it in this thread too
                message.content = step["output"] = fresh
                message.metadata = step["metadata"] = path_metadata(playlist, saved_id, fresh)
                await message.update()
            message.actions = to_actions(learning_paths.playlist_actions(playlist, saved=bool(saved_id)))
            for action in message.actions:
                await action.send(for_id=message.id)
            conv.paths[message.id] = OpenPath(message, playlist, saved_id)

    await guarded("resume", work)


# -- turns ------------------------------------------------------------------------------------------------
@cl.on_message
async def on_message(message: cl.Message) -> None:
    text = (message.content or "").strip()
    conv = conversation()

    async def work() -> None:
        if not text:
            await say(replies.EMPTY_MESSAGE)
            return
        learner = learner_id()
        verdict = gate().check(learner, message.id, text)  # the data layer asked the same: not stored
        if verdict is not None:
            await say(replies.refused_message(verdict.reason, verdict.length, verdict.limit))
            return
        await ready()
        if text.lower().startswith("/report"):
            await send_insights_report(learner)
            return
        intent, routed, _ = await asyncio.to_thread(router().choose, text)
        reply: str | None
        if intent == "question":
            reply = await answer_question(routed, conv.history, learner)
        elif intent == "find":
            result = await asyncio.to_thread(pilot().find, routed)
            reply = render.render_find(result)
            await cl.Message(content=reply, metadata={"cp": {"kind": "find"}}).send()
        elif intent == "playlist":
            reply = await show_playlist(routed, learner, conv)
        else:
            view = await asyncio.to_thread(router().progress_view, learner)
            reply = learning_paths.render_progress(view)
            await cl.Message(content=reply, metadata={"cp": {"kind": "progress"}}).send()
        conv.remember(text, reply)

    await guarded("turn", work)


_PATH_GONE = "That learning path isn't open any more. Ask for it again, or say “show my progress”."


@cl.action_callback(learning_paths.STEP_DONE_ACTION)
async def on_step_done(action: cl.Action) -> None:
    async def work() -> None:
        path = open_path(action)
        item_id = str(action.payload.get("item_id") or "")
        if path is None or not any(i.item_id == item_id for i in path.playlist.items):
            await say(_PATH_GONE)
            return
        await asyncio.to_thread(store().set_progress, learner_id(), item_id, True)
        await asyncio.to_thread(xapi().completed, learner_id(), item_id)
        learning_paths.mark_done(path.playlist, item_id)
        await refresh_path(path)

    await guarded("mark step done", work)


@cl.action_callback(learning_paths.SAVE_PATH_ACTION)
async def on_save_path(action: cl.Action) -> None:
    async def work() -> None:
        path = open_path(action)
        if path is None:
            await say(_PATH_GONE)
            return
        if path.saved_id is None:
            saved = await asyncio.to_thread(store().save_playlist, learner_id(), path.playlist)
            await asyncio.to_thread(xapi().saved_path, learner_id(), saved)
            path.saved_id = saved.id
        await refresh_path(path)

    await guarded("save path", work)


# -- chat history -----------------------------------------------------------------------------------------
@cl.data_layer
def data_layer() -> CoursePilotDataLayer:
    return CoursePilotDataLayer(settings().database.url, store=store(), gate=gate())


@cl.on_logout
async def on_logout(request: Any, response: Any) -> dict[str, bool]:
    """Sign-out revokes the token itself (Chainlit only clears the cookie)."""
    from chainlit.auth import get_token_from_cookies

    await policy().revoke(get_token_from_cookies(request.cookies))
    return {"success": True}


# -- HTTP: cited PDFs, reports, guards and middleware ------------------------------------------------------
def _install() -> None:
    """Routes, middleware, origins and session checks on Chainlit's FastAPI app (once per process)."""
    root = cl_config.run.root_path
    routes.install_files(server_app, root, pilot=pilot, settings=settings, users=users, reports=report_folder)
    routes.install_guards(server_app, root, data_layer_of=get_data_layer_instance)
    cl_config.project.user_session_timeout = settings().ui.session_minutes * 60
    routes.install_middleware(server_app, throttle, root, settings().ui.allowed_origins)
    import chainlit.socket as chainlit_socket

    policy().install(server_app, chainlit_socket)


def get_data_layer_instance() -> CoursePilotDataLayer | None:
    from chainlit.data import get_data_layer

    layer = get_data_layer()
    return layer if isinstance(layer, CoursePilotDataLayer) else None


_install()
cl_config.features.spontaneous_file_upload = SpontaneousFileUploadFeature(enabled=False)
