"""Load on the real Chainlit server: 50 concurrent socket.io chat sessions over 10 signed-in learners.

Every session signs in (one /login per learner, the access-token cookie reused), connects to /ws/socket.io like
the web page does, asks 1-2 library questions tagged with a marker unique to that question ("#170" = session 17,
question 0), and waits for the final answer (the turn's `task_end`). Recorded: errors (connect failures,
timeouts, error replies), cross-talk (an event for another session's thread, or text carrying another
session's marker) and the send-to-final-answer latency. Figures: test-artifacts/load-ui.json.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import quantiles

import httpx
import pytest
from chat_client import Session, login, run_session, strings
from conftest import ARTIFACTS, running_chat_server

from assistant.core.settings import DatabaseSettings, Settings
from assistant.planning.passwords import hash_password

pytestmark = [pytest.mark.slow]

SESSIONS = 50
USERS = 10
OVERALL_TIMEOUT = 240.0  # s for the whole load phase
QUESTIONS = [
    "How do I refresh a pivot table?",
    "What is the SBI model?",
    "How do I give feedback with the SBI model?",
    "What is Power Query used for?",
    "How should I handle personal data?",
]
MARKER_RE = re.compile(r"#(\d{3})\b")
PASSWORDS = {f"load{n}-{secrets.token_hex(2)}": secrets.token_urlsafe(12) for n in range(USERS)}


@pytest.fixture(scope="module")
def server(sample_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The chat server on a free loopback port, over the ingested sample library, with USERS learners."""
    tmp = tmp_path_factory.mktemp("ui-load")
    users = ",".join(f"{name}:{hash_password(pw)}:learner" for name, pw in PASSWORDS.items())
    settings = sample_settings.model_copy(update={"database": DatabaseSettings(url=f"sqlite:///{tmp / 'ui.db'}")})
    with running_chat_server(settings, tmp, users, "load-ui-server.log") as (base, _running):
        yield base, tmp / "server.log"


def question_for(number: int, k: int) -> str:
    return f"{QUESTIONS[(number + 2 * k) % len(QUESTIONS)]} #{number:02d}{k}"


def check_cross_talk(sessions: list[Session]) -> None:
    """An event for a thread that is not the session's own, or text carrying another session's marker."""
    owners: dict[str, int] = {}
    for s in sessions:
        if s.thread_id:
            if s.thread_id in owners:
                s.cross_talk.append(f"thread {s.thread_id} also belongs to session {owners[s.thread_id]}")
            owners[s.thread_id] = s.number
    for s in sessions:
        mine = s.own_markers()
        for _, event, data in s.events:
            if isinstance(data, dict):
                thread = data.get("threadId") or data.get("thread_id")
                if thread and s.thread_id and thread != s.thread_id:
                    s.cross_talk.append(f"{event} for thread {thread} (owner: session {owners.get(thread)})")
            for text in strings(data):
                for marker in MARKER_RE.findall(text):
                    if marker not in mine:
                        s.cross_talk.append(f"{event} carries marker #{marker}: {text[:120]!r}")


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return quantiles(values, n=100, method="inclusive")[q - 1]


async def load(base: str) -> tuple[list[Session], float]:
    users = list(PASSWORDS)
    async with httpx.AsyncClient(timeout=30) as http:
        tokens = dict(
            zip(users, await asyncio.gather(*(login(http, base, u, PASSWORDS[u]) for u in users)), strict=True)
        )
        # one warm-up turn, not measured: the server loads the embedding model and indexes on first use
        warm = Session(-1, users[0], [QUESTIONS[0]])
        await run_session(base, warm, tokens[users[0]])
        assert not warm.errors and warm.answers, f"warm-up turn failed: {warm.errors}"

    sessions = [Session(n, users[n % USERS], [question_for(n, k) for k in range(1 + n % 2)]) for n in range(SESSIONS)]
    began = time.perf_counter()
    await asyncio.gather(*(run_session(base, s, tokens[s.user]) for s in sessions))
    return sessions, time.perf_counter() - began


@pytest.mark.timeout(600)  # the sample library ingest (session fixture) runs before the load phase
def test_fifty_concurrent_chat_sessions(server: tuple[str, Path]) -> None:
    base, log_path = server
    started = time.perf_counter()
    log_offset = log_path.stat().st_size
    sessions, wall = asyncio.run(asyncio.wait_for(load(base), OVERALL_TIMEOUT))
    check_cross_talk(sessions)

    latencies = sorted(t for s in sessions for t in s.latencies)
    errors = [f"session {s.number}: {e}" for s in sessions for e in s.errors]
    cross_talk = [f"session {s.number}: {c}" for s in sessions for c in s.cross_talk]
    server_log = log_path.read_text(errors="replace")[log_offset:]
    server_errors = [line for line in server_log.splitlines() if " - ERROR - " in line or "Traceback" in line]
    asked = sum(len(s.questions) for s in sessions)
    figures = {
        "sessions": SESSIONS,
        "users": USERS,
        "questions_sent": asked,
        "answers_received": len(latencies),
        "sessions_fully_answered": sum(len(s.answers) == len(s.questions) for s in sessions),
        "refusals": sum(a.startswith("I couldn't find") for s in sessions for a in s.answers),
        "errors": len(errors),
        "cross_talk": len(cross_talk),
        "latency_s": {
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "max": round(max(latencies, default=float("nan")), 3),
        },
        "load_wall_s": round(wall, 2),
        "test_wall_s": round(time.perf_counter() - started, 2),
        "server_log_errors": len(server_errors),
        "error_details": errors[:50],
        "cross_talk_details": cross_talk[:50],
        "server_log_error_lines": server_errors[:50],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-ui.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("\nload-ui:", json.dumps(figures, indent=2))

    assert not cross_talk, cross_talk[:10]
    assert not errors, errors[:10]
    assert figures["answers_received"] == asked
    assert all(len(s.answers) == len(s.questions) for s in sessions)
    assert not server_errors, server_errors[:10]
