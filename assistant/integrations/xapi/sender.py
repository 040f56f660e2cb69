"""The background sender: batches from the outbox to `{endpoint}/statements`, retried with backoff."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from assistant.core.settings import Settings, XAPISettings
from assistant.integrations.xapi.models import validate_statement
from assistant.integrations.xapi.outbox import Outbox
from assistant.integrations.xapi.statements import XAPI_VERSION

log = logging.getLogger("assistant.integrations.xapi")


def _split_credentials(endpoint: str) -> tuple[str, str | None, str | None]:
    """The endpoint without user:password@ (which must never be logged), and those credentials."""
    parts = urlsplit(endpoint)
    if parts.username is None and parts.password is None:
        return endpoint, None, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), parts.username, parts.password


class XAPIClient:
    """Durable, background xAPI sender for one LRS (see the package docstring)."""

    def __init__(
        self,
        settings: Settings | XAPISettings,
        queue_path: Path | None = None,
        *,
        batch_size: int = 50,
        timeout_s: float = 10.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        poll_s: float = 2.0,
        start: bool = True,
    ) -> None:
        xapi = settings.xapi if isinstance(settings, Settings) else settings
        self.enabled = bool(xapi.endpoint)
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self._secrets: list[str] = []
        self._auth: tuple[str, str] | None = None
        self._thread: threading.Thread | None = None
        self._queue: Outbox | None = None
        self._wake = threading.Event()
        self._nudge = threading.Event()
        self._stop = threading.Event()
        if queue_path is None:
            base = Path(settings.index.dir).parent if isinstance(settings, Settings) else Path(".coursepilot")
            queue_path = base / "xapi_queue.sqlite"
        self.queue_path = Path(queue_path)
        if not self.enabled:
            self.endpoint = ""
            return
        endpoint, url_user, url_password = _split_credentials(str(xapi.endpoint).strip())
        self.endpoint = endpoint.rstrip("/")
        self._url = f"{self.endpoint}/statements"
        username = xapi.username or url_user or ""
        password = xapi.password.get_secret_value() if xapi.password is not None else (url_password or "")
        if username or password:
            self._auth = (username, password)
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._secrets = [s for s in (password, url_password, token) if s]
        self._queue = Outbox(self.queue_path)
        if start:
            self.start()

    def __repr__(self) -> str:
        return f"XAPIClient(endpoint={self.endpoint!r}, queue={str(self.queue_path)!r}, enabled={self.enabled})"

    # -- public ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.enabled or self._queue is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="xapi-sender", daemon=True)
        self._thread.start()

    def enqueue(self, statement: dict[str, Any]) -> str | None:
        """Persist one statement for delivery; returns its id (None when xAPI is disabled).

        Raises ValueError (listing the problems) for a statement that fails validate_statement."""
        ids = self.enqueue_many([statement])
        return ids[0] if ids else None

    def enqueue_many(self, statements: Sequence[dict[str, Any]]) -> list[str]:
        if not self.enabled or self._queue is None:
            return []
        ready = []
        for statement in statements:
            stmt = dict(statement)
            stmt.setdefault("id", str(uuid.uuid4()))
            problems = validate_statement(stmt)
            if problems:
                raise ValueError("invalid xAPI statement: " + "; ".join(problems))
            ready.append(stmt)
        self._queue.add(ready)
        self._wake.set()
        return [s["id"] for s in ready]

    def pending(self) -> int:
        """Statements waiting for delivery (in this queue file, from any process)."""
        return self._queue.count("pending") if self._queue is not None else 0

    def rejected(self) -> list[dict[str, Any]]:
        """Statements the LRS refused as invalid: kept in the queue file for inspection, never retried."""
        return self._queue.rows("rejected") if self._queue is not None else []

    def flush(self, timeout: float = 10.0) -> bool:
        """Send now (cutting short a backoff wait) and wait until nothing is pending; False on timeout."""
        if not self.enabled:
            return True
        self.start()
        deadline = time.monotonic() + max(timeout, 0.0)
        self._wake.set()
        self._nudge.set()
        while self.pending() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to `timeout` seconds, then stop the sender; anything unsent stays queued on disk."""
        if not self.enabled:
            return True
        delivered = self.flush(timeout) if timeout > 0 else self.pending() == 0
        self._stop.set()
        self._wake.set()
        self._nudge.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1.0)
        if self._queue is not None and (self._thread is None or not self._thread.is_alive()):
            self._queue.close()
            self._queue = None
        return delivered

    # -- sender ----------------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _backoff(self) -> float:
        exp = min(self.backoff_max_s, self.backoff_base_s * (2 ** max(self.consecutive_failures - 1, 0)))
        return exp * (0.75 + random.random() / 4)

    def _run(self) -> None:
        import httpx

        assert self._queue is not None
        auth = httpx.BasicAuth(*self._auth) if self._auth else None
        headers = {"X-Experience-API-Version": XAPI_VERSION, "Content-Type": "application/json"}
        with httpx.Client(timeout=self.timeout_s, auth=auth, headers=headers, follow_redirects=False) as http:
            while not self._stop.is_set():
                try:
                    batch = self._queue.claim(self.batch_size, lease_s=self.timeout_s + 10.0)
                except sqlite3.Error as exc:
                    log.warning("xAPI queue %s unavailable (%s); retrying", self.queue_path, type(exc).__name__)
                    self._stop.wait(1.0)
                    continue
                if not batch:
                    self._wake.wait(self.poll_s)
                    self._wake.clear()
                    continue
                try:
                    delivered = self._deliver(http, batch)
                except Exception as exc:  # e.g. the queue file went read-only: keep the sender alive
                    self.last_error = f"{type(exc).__name__} while sending"
                    log.warning("xAPI: %s; will retry", self.last_error)
                    with contextlib.suppress(Exception):
                        self._queue.release([i for i, _ in batch], self.last_error)
                    delivered = False
                if delivered:
                    self.consecutive_failures = 0
                    continue
                self.consecutive_failures += 1
                delay = self._backoff()
                log.info(
                    "xAPI: %d statement(s) queued for %s; next attempt in %.1f s (%s)",
                    self.pending(),
                    self.endpoint,
                    delay,
                    self.last_error,
                )
                self._nudge.clear()
                self._nudge.wait(delay)

    def _post(self, http: Any, statements: list[Any]) -> tuple[int | None, str]:
        """(HTTP status or None, safe description). Never raises."""
        import httpx

        try:
            response = http.post(self._url, content=json.dumps(statements, ensure_ascii=False).encode("utf-8"))
        except httpx.HTTPError as exc:
            return None, self._scrub(f"{type(exc).__name__} reaching {self.endpoint}")
        except Exception as exc:  # anything else from the network stack must not kill the sender
            return None, self._scrub(f"{type(exc).__name__} sending to {self.endpoint}")
        return response.status_code, f"HTTP {response.status_code} from {self.endpoint}"

    def _deliver(self, http: Any, batch: list[tuple[str, str]]) -> bool:
        """Send a claimed batch; True when none of it needs a retry."""
        assert self._queue is not None
        ids = [i for i, _ in batch]
        status, message = self._post(http, [json.loads(body) for _, body in batch])
        if status in (200, 204):
            self._queue.delete(ids)
            log.debug("xAPI: delivered %d statement(s) to %s", len(ids), self.endpoint)
            return True
        if status in (400, 409, 413) and len(batch) > 1:
            # One bad statement fails the whole batch: send them one by one to isolate it.
            for position, row in enumerate(batch):
                if not self._deliver(http, [row]):
                    rest = [i for i, _ in batch[position + 1 :]]
                    if rest:
                        self._queue.release(rest, self.last_error or message)
                    return False
            return True
        if status in (400, 409, 413):
            self._queue.reject(ids[0], message)
            log.warning(
                "xAPI: %s rejected statement %s (%s); kept in %s", self.endpoint, ids[0], message, self.queue_path
            )
            return True
        self.last_error = message
        self._queue.release(ids, message)
        return False
