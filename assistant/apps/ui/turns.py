"""The chat UI's turns that do more than one reply: a streamed, cited answer, a learning path with its buttons,
and the L&D insights report. app.py routes each message here (ChatRouter.choose).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import chainlit as cl
from chainlit.config import config as cl_config

from assistant.apps.ui import learning_paths, render, replies, routes
from assistant.apps.ui.conversation import (
    Conversation,
    OpenPath,
    conversation,
    path_metadata,
    say,
    to_actions,
    to_element,
    user_role,
)
from assistant.apps.ui.safe_markdown import SafeStream, escape_md
from assistant.apps.ui.services import course_folders, pilot, report_folder, settings, store, xapi
from assistant.core.errors import CoursePilotError, StoreError
from assistant.core.types import Answer, ChatTurn

log = logging.getLogger("coursepilot.ui")


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
            f"{c.rank}. **{escape_md(c.label)}** · {c.count} question(s) · e.g. “{escape_md(c.examples[0])}”"
            for c in gaps
            if c.examples
        ],
    ]
    # Served by an app route, not from Chainlit's <app root>/.files (any worker that stops deletes that folder).
    url = f"{cl_config.run.root_path}{routes.REPORT_ROUTE}/{quote(routes.report_file(learner))}"
    await cl.Message(
        content="\n".join(lines),
        elements=[cl.File(name="insights-report.html", url=url, mime="text/html", display="inline")],
        metadata={"cp": {"kind": "report"}},
    ).send()


async def answer_question(question: str, history: list[ChatTurn], learner: str) -> str | None:
    """Stream the answer token by token, then replace it with the final cited text and its sources."""
    msg = cl.Message(content="")
    stream = SafeStream(msg)
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
