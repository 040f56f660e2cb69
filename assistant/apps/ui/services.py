"""The chat UI's services, built once per process on first use: settings, CoursePilot, the turn router, the user
table, the learner store, the sign-in throttle, the message gate, the session policy and the xAPI recorder; and
the background warm-up that loads the embedding model and indexes before the first turn.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from pathlib import Path

from assistant.apps.chat import ChatRouter
from assistant.apps.ui.guards import LoginThrottle, MessageGate
from assistant.apps.ui.launch import UserEntry, parse_users, settings_from_env
from assistant.apps.ui.sessions import SessionPolicy
from assistant.core.settings import Settings
from assistant.integrations.xapi import XAPIRecorder
from assistant.pilot import CoursePilot
from assistant.planning.learners import LearnerStore

log = logging.getLogger("coursepilot.ui")


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


def course_folders() -> dict[str, str]:
    return {cid: course.folder or cid for cid, course in pilot().catalogue().items()}


def report_folder() -> Path:
    return Path(settings().index.dir).resolve().parent / "reports"
