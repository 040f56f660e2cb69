"""Chainlit handlers for the CoursePilot web chat. Thin: route, call CoursePilot in threads, render, reply.

Start it with `coursepilot ui` (assistant.apps.ui.launch.run_ui), which sets the environment this module reads.
Every turn goes through ChatRouter.choose; questions stream with CoursePilot.astream. Learners only ever see
short friendly messages: CoursePilotError text, or a generic apology with the details in the server log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import chainlit as cl
from chainlit.auth import get_current_user
from chainlit.config import SpontaneousFileUploadFeature
from chainlit.config import config as cl_config
from chainlit.server import app as server_app
from chainlit.types import ThreadDict
from fastapi import Depends, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.apps.chat import ChatRouter
from assistant.apps.ui import render
from assistant.apps.ui.datalayer import CoursePilotDataLayer, inline_url
from assistant.apps.ui.launch import UserEntry, authenticate, parse_users, settings_from_env
from assistant.core.errors import CoursePilotError
from assistant.core.settings import Settings
from assistant.core.types import Answer, ChatTurn, Location, Playlist
from assistant.integrations.xapi import XAPIRecorder
from assistant.pilot import CoursePilot
from assistant.planning.learners import LearnerStore

log = logging.getLogger("coursepilot.ui")

SOURCE_ROUTE = "/coursepilot/source"
MAX_REQUEST_BYTES = 1024 * 1024


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

    def remember(self, user: str, assistant: str | None) -> None:
        self.history.append(ChatTurn(role="user", content=user))
        if assistant:
            self.history.append(ChatTurn(role="assistant", content=assistant))
        del self.history[: -render.HISTORY_TURNS]


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
    except CoursePilotError as exc:
        log.info("%s: %s", what, exc)
        await say(render.render_error(exc))
    except Exception as exc:
        log.exception("%s failed", what)
        await say(render.render_error(exc))


# -- elements and actions ---------------------------------------------------------------------------------
def source_url(course_id: str, module: str) -> str:
    return f"{cl_config.run.root_path}{SOURCE_ROUTE}/{quote(course_id, safe='')}/{quote(module, safe='/')}"


def to_element(spec: render.SourceSpec) -> Any:
    if spec.kind == "pdf":
        return cl.Pdf(name=spec.name, url=source_url(spec.course_id, spec.module), page=spec.page, display="side")
    # The passage travels inline (a data: URL), exactly as the data layer stores it: no file under
    # <app root>/.files, which Chainlit deletes whenever any server started from the same folder stops.
    return cl.Text(name=spec.name, url=inline_url(spec.content), display="side")


def to_actions(specs: list[render.ActionSpec]) -> list[cl.Action]:
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
    try:
        await asyncio.to_thread(store().ensure_learner, user.id, "", user.role)
    except Exception:
        log.exception("could not record learner %s", user.id)
    return cl.User(identifier=user.id, metadata={"role": user.role, "provider": "credentials"})


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
        conv = Conversation(history=render.history_turns(steps))
        cl.user_session.set("cp", conv)
        done = await asyncio.to_thread(store().completed, learner_id())
        for step in steps:
            meta = step.get("metadata")
            cp = meta.get("cp") if isinstance(meta, dict) else None
            if step.get("type") != "assistant_message" or not isinstance(cp, dict) or cp.get("kind") != "playlist":
                continue
            playlist = render.apply_progress(Playlist.model_validate(cp["playlist"]), done)
            saved_id = cp.get("saved_id")
            message = cl.Message(
                content=step.get("output") or "",
                id=step["id"],
                parent_id=step.get("parentId"),
                created_at=step.get("createdAt"),
                metadata=meta,
            )
            fresh = render.render_playlist(playlist, saved=bool(saved_id))
            if fresh != message.content:  # progress made elsewhere since: show it in this thread too
                message.content = step["output"] = fresh
                message.metadata = step["metadata"] = path_metadata(playlist, saved_id, fresh)
                await message.update()
            message.actions = to_actions(render.playlist_actions(playlist, saved=bool(saved_id)))
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
        limit = settings().limits.max_question_chars
        if not text:
            await say(render.EMPTY_MESSAGE)
            return
        if len(text) > limit:
            await say(render.too_long(len(text), limit))
            return
        learner = learner_id()
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
            reply = render.render_progress(view)
            await cl.Message(content=reply, metadata={"cp": {"kind": "progress"}}).send()
        conv.remember(text, reply)

    await guarded("turn", work)


def user_role() -> str:
    user = cl.user_session.get("user")
    metadata = getattr(user, "metadata", None) or {}
    return str(metadata.get("role", "learner"))


async def send_insights_report(learner: str) -> None:
    """The L&D insights report, for users with the 'lnd' role only."""
    if user_role() != "lnd":
        await say("The insights report is for L&D staff. Ask your L&D team if you need it.")
        return
    from assistant.apps.insights import build_report, write_html

    data = await asyncio.to_thread(build_report, store(), pilot())
    folder = Path(settings().index.dir).resolve().parent / "reports"
    path = await asyncio.to_thread(write_html, data, folder / f"insights-{learner}.html")
    gaps = data.content_gaps.clusters[:5]
    lines = [
        f"**Learning insights** · {data.totals.questions} questions, {data.totals.refused} refused, "
        f"{data.totals.low_confidence} low confidence",
        "",
        "Top content gaps:",
        *[f"{c.rank}. **{c.label}** · {c.count} question(s) · e.g. “{c.examples[0]}”" for c in gaps if c.examples],
    ]
    await cl.Message(
        content="\n".join(lines),
        elements=[cl.File(name="insights-report.html", path=str(path), display="inline")],
        metadata={"cp": {"kind": "report"}},
    ).send()


async def answer_question(question: str, history: list[ChatTurn], learner: str) -> str | None:
    """Stream the answer token by token, then replace it with the final cited text and its sources."""
    msg = cl.Message(content="")
    answer: Answer | None = None
    # 'reset' takes back what was streamed (a dropped model stream is retried, or the model failed); 'notice'
    # heads the message (why the answer is quoted). Either makes the next token replace the whole content.
    notice, streamed, replace = "", "", False
    try:
        async for event in pilot().astream(question, list(history)):
            if event.type == "token":
                streamed += event.text
                if replace:
                    await msg.stream_token(notice + streamed, is_sequence=True)
                    replace = False
                else:
                    await msg.stream_token(event.text)
            elif event.type == "reset":
                streamed, replace = "", True
            elif event.type == "notice" and event.text:
                notice, replace = f"> ⚠ {event.text}\n\n", True
            elif event.type == "answer":
                answer = event.answer
        if answer is None:
            raise RuntimeError("the answer stream ended without an answer")
        folders = await asyncio.to_thread(course_folders)
        rendered = render.render_answer(answer, settings().library.dir, folders)
    except Exception as exc:
        if not isinstance(exc, CoursePilotError):
            log.exception("answering %r failed", question[:80])
        msg.content = render.render_error(exc)
        await msg.send()
        return None
    msg.content = rendered.markdown
    msg.elements = [to_element(s) for s in rendered.sources]
    msg.metadata = {"cp": {"kind": "answer", "history": answer.text, "refused": answer.refused}}
    await msg.send()
    try:
        await asyncio.to_thread(store().log_answer, answer, learner, msg.id)
        await asyncio.to_thread(xapi().answer, learner, answer)
    except Exception:
        log.exception("could not log the answer")
    return answer.text


async def show_playlist(goal: str, learner: str, conv: Conversation) -> str:
    playlist = await asyncio.to_thread(pilot().playlist, goal, learner_id=learner)
    msg = cl.Message(content=render.render_playlist(playlist))
    msg.actions = to_actions(render.playlist_actions(playlist))
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
    msg.content = render.render_playlist(path.playlist, saved=path.saved_id is not None)
    msg.actions = to_actions(render.playlist_actions(path.playlist, saved=path.saved_id is not None))
    msg.metadata = path_metadata(path.playlist, path.saved_id, msg.content)
    await msg.update()


def open_path(action: cl.Action) -> OpenPath | None:
    return conversation().paths.get(action.forId or "")


_PATH_GONE = "That learning path isn't open any more. Ask for it again, or say “show my progress”."


@cl.action_callback(render.STEP_DONE_ACTION)
async def on_step_done(action: cl.Action) -> None:
    async def work() -> None:
        path = open_path(action)
        item_id = str(action.payload.get("item_id") or "")
        if path is None or not any(i.item_id == item_id for i in path.playlist.items):
            await say(_PATH_GONE)
            return
        await asyncio.to_thread(store().set_progress, learner_id(), item_id, True)
        await asyncio.to_thread(xapi().completed, learner_id(), item_id)
        render.mark_done(path.playlist, item_id)
        await refresh_path(path)

    await guarded("mark step done", work)


@cl.action_callback(render.SAVE_PATH_ACTION)
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
    return CoursePilotDataLayer(settings().database.url, store=store())


# -- HTTP: cited PDFs, and no uploads ---------------------------------------------------------------------
async def serve_source(course_id: str, module: str, user: Any = Depends(get_current_user)) -> FileResponse:
    """A module PDF of the library, for signed-in learners (the citation side panel loads it)."""
    if user is None:
        raise HTTPException(status_code=401, detail="Sign in to open course material.")
    catalogue = await asyncio.to_thread(pilot().catalogue)
    course = catalogue.get(course_id)
    if course is None or module not in {m.path for m in course.modules}:
        raise HTTPException(status_code=404, detail="No such module.")
    location = Location(course_id=course_id, course_title=course.title, module=module, module_title="")
    path = render.pdf_path(location, settings().library.dir, {course_id: course.folder or course_id})
    if path is None:
        raise HTTPException(status_code=404, detail="No such PDF.")
    return FileResponse(path, media_type="application/pdf", headers={"Cache-Control": "private, max-age=3600"})


def _install_route() -> None:
    """Add the PDF route ahead of Chainlit's routes (its catch-all would otherwise serve the page)."""
    path = f"{cl_config.run.root_path}{SOURCE_ROUTE}/{{course_id}}/{{module:path}}"
    routes = server_app.router.routes
    if any(getattr(r, "path", None) == path for r in routes):
        return
    server_app.add_api_route(path, serve_source, methods=["GET"], include_in_schema=False)
    route = routes.pop()
    first_chainlit = next(
        (
            i
            for i, r in enumerate(routes)
            if getattr(r, "path", "").endswith("{full_path:path}") or type(r).__name__ == "_IncludedRouter"
        ),
        len(routes),
    )
    routes.insert(first_chainlit, route)


class RequestLimits:
    """Uploads are off (also in config.toml); no request body over 1 MiB reaches Chainlit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = None
            if scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/project/file"):
                response = JSONResponse({"detail": "File uploads are disabled."}, status_code=403)
            else:
                length = dict(scope.get("headers") or []).get(b"content-length", b"0")
                if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
                    response = JSONResponse({"detail": "Request too large."}, status_code=413)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_install_route()
if not any(getattr(m.cls, "__name__", "") == "RequestLimits" for m in server_app.user_middleware):
    server_app.add_middleware(RequestLimits)
cl_config.features.spontaneous_file_upload = SpontaneousFileUploadFeature(enabled=False)
