"""Start-up to first answer: the Chainlit UI over its socket, else a cold CLI run."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from assistant.core.processes import ProcessSpec, free_port, stop_process
from assistant.core.settings import DEMO_ID, DEMO_PASSWORD, DatabaseSettings, Settings, UISettings
from evals.bench.models import ROOT, StartupRun

# Builds the command that starts the chat UI (settings, host, port); the CLI passes the UI's own launcher.
UILauncher = Callable[[Settings, str, int], ProcessSpec]

UI_QUESTION = "What is the SBI model?"


def _ui_first_answer(settings: Settings, work_dir: Path, ui_launcher: UILauncher, timeout: float = 300.0) -> StartupRun:
    """Start the chat UI as `run_ui` does, sign in as the demo user, ask over its socket, time the first answer."""
    import requests
    import socketio

    ui_settings = settings.model_copy(
        update={
            "database": DatabaseSettings(url=f"sqlite:///{work_dir / 'ui.db'}"),
            "ui": UISettings(users="", auth_secret=SecretStr(uuid.uuid4().hex + uuid.uuid4().hex)),
        }
    )
    port = free_port()
    spec = ui_launcher(ui_settings, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    log_path = work_dir / "ui-server.log"
    run = StartupRun(kind="ui", label="UI start to first answer (Chainlit, socket.io)", ok=False, question=UI_QUESTION)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(spec.argv, env=spec.env, cwd=spec.cwd, stdout=log, stderr=subprocess.STDOUT)
    client = socketio.Client(reconnection=False)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the chat server did not start: {log_path.read_text()[-1500:]}")
            time.sleep(0.2)
        run.seconds_to_health = round(time.perf_counter() - started, 3)
        login = requests.post(
            f"{base}/login", data={"username": DEMO_ID, "password": DEMO_PASSWORD}, timeout=30, allow_redirects=False
        )
        login.raise_for_status()
        cookies = "; ".join(f"{c.name}={c.value}" for c in login.cookies)
        if not cookies:
            raise RuntimeError(f"sign-in returned no session cookie (HTTP {login.status_code})")
        done = threading.Event()
        state: dict[str, Any] = {"content": "", "first_token": None, "answered": False}

        def on_message(data: Any) -> None:
            if isinstance(data, dict) and data.get("type") == "assistant_message" and data.get("output"):
                state["content"] = str(data["output"])
                state["answered"] = True

        def on_token(_data: Any) -> None:
            if state["first_token"] is None:
                state["first_token"] = time.perf_counter()

        def on_task_end(_data: Any = None) -> None:
            if state["answered"]:
                done.set()

        client.on("new_message", on_message)
        client.on("update_message", on_message)
        client.on("stream_token", on_token)
        client.on("task_end", on_task_end)
        client.connect(
            base,
            headers={"Cookie": cookies},
            auth={"clientType": "webapp", "sessionId": str(uuid.uuid4()), "threadId": None, "userEnv": "{}"},
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            wait_timeout=30,
        )
        client.emit("connection_successful")
        message = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": DEMO_ID,
            "type": "user_message",
            "output": UI_QUESTION,
            "createdAt": datetime.now(UTC).isoformat(),
        }
        client.emit("client_message", {"message": message, "fileReferences": []})
        if not done.wait(max(1.0, deadline - time.time())):
            raise RuntimeError("no complete answer arrived before the timeout")
        run.seconds_to_first_answer = round(time.perf_counter() - started, 3)
        if state["first_token"] is not None:
            run.seconds_to_first_token = round(state["first_token"] - started, 3)
        run.answer_preview = " ".join(state["content"].split())[:160]
        run.ok = True
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        stop_process(proc, timeout=20)
    return run


def _cli_first_answer(settings: Settings, timeout: float = 300.0) -> StartupRun:
    """`python -m assistant.apps.cli ask` in a fresh process over the given index: cold start to first answer."""
    env = dict(os.environ)
    env.update(
        {
            "COURSEPILOT_INDEX_DIR": str(settings.index.dir),
            "COURSEPILOT_LIBRARY_DIR": str(settings.library.dir),
            "COURSEPILOT_EMBEDDING_BACKEND": str(settings.embedding.backend),
            "HF_HUB_OFFLINE": "1",
        }
    )
    run = StartupRun(kind="cli", label="cold start to first answer (CLI)", ok=False, question=UI_QUESTION)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "assistant.apps.cli", "ask", UI_QUESTION, "--json"],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        run.seconds_to_first_answer = round(time.perf_counter() - started, 3)
        if done.returncode != 0:
            run.error = (done.stderr or done.stdout)[-500:]
        else:
            run.answer_preview = " ".join(str(json.loads(done.stdout).get("text", "")).split())[:160]
            run.ok = True
    except (subprocess.TimeoutExpired, ValueError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"[:500]
    return run


def first_answer(settings: Settings, work_dir: Path, ui_launcher: UILauncher | None) -> StartupRun:
    """Seconds from starting the Chainlit UI to its first answer; the CLI cold start if the UI run fails."""
    if ui_launcher is None:
        run = StartupRun(kind="ui", label="UI start to first answer", ok=False, question=UI_QUESTION)
        run.error = "no UI launcher was given (run it as `coursepilot bench`)"
    else:
        run = _ui_first_answer(settings, work_dir, ui_launcher)
    if run.ok:
        return run
    cli = _cli_first_answer(settings)
    cli.label += f" — the UI measurement failed ({run.error})"
    return cli
