"""Chainlit handlers for the CoursePilot web chat. Thin: route, call CoursePilot in threads, render, reply.

Start it with `coursepilot ui` (assistant.apps.ui.launch.run_ui), which sets the environment this module reads.
Every turn goes through ChatRouter.choose; questions stream with CoursePilot.astream. Learners only ever see
short friendly messages: CoursePilotError text, or a generic apology with the details in the server log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import chainlit as cl
from chainlit.config import SpontaneousFileUploadFeature
from chainlit.config import config as cl_config
from chainlit.server import app as server_app
from chainlit.types import ThreadDict

from assistant.apps.chat import ChatRouter
from assistant.apps.ui import learning_paths, render, replies, routes, safe_markdown
from assistant.apps.ui.datalayer import CoursePilotDataLayer, inline_url
from assistant.apps.ui.guards import LoginThrottle, MessageGate
from assistant.apps.ui.launch import UserEntry, authenticate, demo_allowed, parse_users, settings_from_env
from assistant.apps.ui.sessions import SessionPolicy
from assistant.core.errors import CoursePilotError, StoreError
from assistant.core.settings import DEMO_ID, Settings
from assistant.core.types import Answer, ChatTurn, Playlist
from assistant.integrations.xapi import XAPIRecorder
from assistant.pilot import CoursePilot
from assistant.planning.learners import LearnerStore

log = logging.getLogger("coursepilot.ui")

SOURCE_ROUTE = routes.SOURCE_ROUTE
REPORT_ROUTE = routes.REPORT_ROUTE


# -- lazily built services --------------------------------------------------------------------------------
@cache
def settings() -> Settings:
    return settings_from_env()


@cache
def pilot() -> CoursePilot:
    return CoursePilot(settings())


@cache
def router() -> ChatRouter:
    return ChatRouter(pilot())


@cache
def users() -> dict[str, UserEntry]:
    return parse_users(settings().ui.users)


def store() -> LearnerStore:
    return pilot().learners


@cache
def throttle() -> LoginThrottle:
    return LoginThrottle(settings().ui.login_max_failures, settings().ui.login_max_failures_address)


@cache
def gate() -> MessageGate:
    return MessageGate(settings().limits.max_question_chars, settings().ui.messages_per_minute)


@cache
def policy() -> SessionPolicy:
    return SessionPolicy(users, store)


@cache
def xapi() -> XAPIRecorder:
    """xAPI statements to the configured LRS (a no-op when COURSEPILOT_XAPI_ENDPOINT is unset)."""
    return XAPIRecorder.from_settings(settings())


_warm_up: asyncio.Future[None] | None = None


def _warm_up_blocking() -> None:
    try:
        store()
        pilot().warm_up()
        log.info("CoursePilot is ready: model and indexes loaded")
    except Exception:  # the first turn reports it to the learner in friendly words
        log.exception("warm-up failed")


def start_warm_up() -> asyncio.Future[None]:
    """Load the embedding model and indexes in the background, once per server."""
    global _warm_up
    if _warm_up is None:
        _warm_up = asyncio.get_running_loop().run_in_executor(None, _warm_up_blocking)
    return _warm_up


async def ready() -> None:
    await asyncio.shield(start_warm_up())


# -- per-conversation state -------------------------------------------------------------------------------
class OpenPath:
    """A learning path shown in this conversation, with the message that shows it."""

    def __init__(self, message: cl.Message, playlist: Playlist, saved_id: str | None = None) -> None:
        self.message = message
        self.playlist = playlist
        self.saved_id = saved_id


class Conversation:
    """Kept in cl.user_session under 'cp' (not JSON, so Chainlit does not copy it into thread metadata).

    Plain classes, not dataclasses: Chainlit loads this file without registering it in sys.modules.
    """

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
    return f"{cl_config.run.root_path}{SOURCE_ROUTE}/{quote(course_id, safe='')}/{quote(module, safe='/')}"


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


def course_folders() -> dict[str, str]:
    return {cid: course.folder or cid for cid, course in pilot().catalogue().items()}


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


def user_role() -> str:
    """The role in the current COURSEPILOT_UI_USERS (not the one stored when the user first signed in)."""
    user = cl.user_session.get("user")
    entry = users().get(str(getattr(user, "identifier", "") or ""))
    return entry.role if entry else "learner"


async def send_insights_report(learner: str) -> None:
    """The L&D insights report, for users with the 'lnd' role only."""
    if user_role() != "lnd":
        await say("The insights report is for L&D staff. Ask your L&D team if you need it.")
        return
    from assistant.apps.insights import build_report, write_html

    data = await asyncio.to_thread(build_report, store(), pilot())
    await asyncio.to_thread(write_html, data, report_folder() / routes.report_file(learner))
    gaps = data.content_gaps.clusters[:5]
    lines = [
        f"**Learning insights** · {data.totals.questions} questions, {data.totals.refused} refused, "
        f"{data.totals.low_confidence} low confidence",
        "",
        "Top content gaps:",
        *[
            f"{c.rank}. **{safe_markdown.escape_md(c.label)}** · {c.count} question(s) · e.g. “{safe_markdown.escape_md(c.examples[0])}”"
            for c in gaps
            if c.examples
        ],
    ]
    # Served by an app route, not from Chainlit's <app root>/.files (any worker that stops deletes that folder).
    url = f"{cl_config.run.root_path}{REPORT_ROUTE}/{quote(routes.report_file(learner))}"
    await cl.Message(
        content="\n".join(lines),
        elements=[cl.File(name="insights-report.html", url=url, mime="text/html", display="inline")],
        metadata={"cp": {"kind": "report"}},
    ).send()


def report_folder() -> Path:
    return Path(settings().index.dir).resolve().parent / "reports"


async def answer_question(question: str, history: list[ChatTurn], learner: str) -> str | None:
    """Stream the answer token by token, then replace it with the final cited text and its sources."""
    msg = cl.Message(content="")
    stream = safe_markdown.SafeStream(msg)
    answer: Answer | None = None
    # 'reset' takes back what was streamed (a dropped model stream is retried, or the model failed); 'notice'
    # heads the message (why the answer is quoted). Either makes the next token replace the whole content.
    try:
        async for event in pilot().astream(question, list(history)):
            if event.type == "token":
                await stream.token(event.text)
            elif event.type == "reset":
                stream.reset()
            elif event.type == "notice" and event.text:
                stream.set_notice(f"> ⚠ {event.text}\n\n")
            elif event.type == "answer":
                answer = event.answer
        if answer is None:
            raise RuntimeError("the answer stream ended without an answer")
        folders = await asyncio.to_thread(course_folders)
        rendered = render.render_answer(answer, settings().library.dir, folders)
    except Exception as exc:
        if not isinstance(exc, CoursePilotError):
            log.exception("answering %r failed", question[:80])
        msg.content = replies.render_error(exc)
        await msg.send()
        return None
    msg.content = rendered.markdown
    msg.elements = [to_element(s) for s in rendered.sources]
    msg.metadata = {"cp": {"kind": "answer", "history": answer.text, "refused": answer.refused}}
    await msg.send()
    try:
        await asyncio.to_thread(store().log_answer, answer, learner, msg.id)
    except StoreError as exc:  # e.g. a read-only database: answering goes on, the learner is told once
        log.error("the question log is not being written: %s", exc)
        if not conversation().told_not_saved:
            conversation().told_not_saved = True
            await say(replies.NOT_SAVED)
    except Exception:
        log.exception("could not log the answer")
    try:  # independent of the question log: the LRS gets the statement either way
        await asyncio.to_thread(xapi().answer, learner, answer)
    except Exception:
        log.exception("could not send the xAPI statement")
    return answer.text


async def show_playlist(goal: str, learner: str, conv: Conversation) -> str:
    playlist = await asyncio.to_thread(pilot().playlist, goal, learner_id=learner)
    msg = cl.Message(content=learning_paths.render_playlist(playlist))
    msg.actions = to_actions(learning_paths.playlist_actions(playlist))
    msg.metadata = path_metadata(playlist, None, msg.content)
    await msg.send()
    if msg.actions:
        conv.paths[msg.id] = OpenPath(msg, playlist)
    return msg.content


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
