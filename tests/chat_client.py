"""A minimal Chainlit web client for the server tests: sign in over HTTP, chat over socket.io like the page does."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import socketio

from assistant.apps.ui.replies import GENERIC_ERROR

ANSWER_TIMEOUT = 90.0  # s per question


async def login(http: httpx.AsyncClient, base: str, user: str, password: str) -> str:
    response = await http.post(f"{base}/login", data={"username": user, "password": password})
    response.raise_for_status()
    token = response.cookies.get("access_token")
    assert token, f"no access_token cookie for {user}"
    return token


@dataclass
class Session:
    number: int
    user: str
    questions: list[str]
    thread_id: str | None = None
    events: list[tuple[float, str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cross_talk: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def own_markers(self) -> set[str]:
        return {f"{self.number:02d}{k}" for k in range(len(self.questions))}


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


async def run_session(base: str, session: Session, token: str) -> None:
    client = socketio.AsyncClient(reconnection=False)

    @client.on("*")
    async def on_any(event: str, *args: Any) -> None:
        data = args[0] if args else None
        session.events.append((time.perf_counter(), event, data))
        session.changed.set()

    async def wait_for(check: Any, timeout: float) -> Any:
        deadline = time.perf_counter() + timeout
        while (value := check()) is None:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError
            session.changed.clear()
            if (value := check()) is not None:
                return value
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.changed.wait(), remaining)
        return value

    try:
        await client.connect(
            base,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers={"Cookie": f"access_token={token}"},
            auth={"clientType": "webapp", "sessionId": str(uuid.uuid4()), "threadId": None, "userEnv": "{}"},
            wait_timeout=30,
        )
    except Exception as exc:
        session.errors.append(f"connect failed: {exc!r}")
        return
    try:
        await client.emit("connection_successful")

        def thread_of_chat_start() -> str | None:
            for _, event, data in session.events:
                if event == "new_message" and isinstance(data, dict) and data.get("name") == "on_chat_start":
                    return str(data["threadId"])
            return None

        try:
            session.thread_id = await wait_for(thread_of_chat_start, 30)
        except TimeoutError:
            session.errors.append("timeout waiting for the chat to start")
            return
        for question in session.questions:
            start = len(session.events)
            sent = time.perf_counter()
            message = {
                "threadId": session.thread_id,
                "id": str(uuid.uuid4()),
                "name": session.user,
                "type": "user_message",
                "output": question,
                "createdAt": datetime.now(UTC).isoformat(),
            }
            await client.emit("client_message", {"message": message, "fileReferences": []})

            def turn_end(start: int = start) -> int | None:
                began = False
                for i in range(start, len(session.events)):
                    event = session.events[i][1]
                    began = began or event == "task_start"
                    if began and event == "task_end":
                        return i
                return None

            try:
                end = await wait_for(turn_end, ANSWER_TIMEOUT)
            except TimeoutError:
                session.errors.append(f"timeout: no answer to {question!r} within {ANSWER_TIMEOUT:.0f} s")
                return
            replies = [
                (t, d)
                for t, e, d in session.events[start:end]
                if e in ("new_message", "update_message")
                and isinstance(d, dict)
                and d.get("type") == "assistant_message"
            ]
            if not replies:
                session.errors.append(f"no answer message for {question!r}")
                continue
            answered, final = replies[-1]
            text = str(final.get("output") or "")
            if final.get("isError") or text == GENERIC_ERROR or text.startswith("Sorry, I couldn't do that"):
                session.errors.append(f"error reply to {question!r}: {text[:200]}")
                continue
            session.latencies.append(answered - sent)
            session.answers.append(text)
    except Exception as exc:
        session.errors.append(f"client failure: {exc!r}")
    finally:
        await client.disconnect()
