"""HTTP hardening of the Chainlit server, as plain ASGI middleware (no Chainlit import here).

- RequestLimits: no upload route; no request body over 1 MiB, counted as it streams (chunked bodies have no
  Content-Length), so the cap holds whatever the headers say.
- SecurityHeaders: a Content-Security-Policy whose img-src is the app itself (plus data:/blob: it makes), no
  framing (frame-ancestors 'none', X-Frame-Options DENY), nosniff, and `Secure` on every cookie when the request
  came over HTTPS (directly, or through a proxy uvicorn trusts: FORWARDED_ALLOW_IPS, 127.0.0.1 by default).
- LoginGuard: backoff on POST /login per user name and per client address (guards.LoginThrottle), and an audit
  log line for each failure, naming the user and address, never the password.
- Origins: `configure_origins` replaces Chainlit's allow-all CORS (`allow_origins = ["*"]` plus credentials, which
  Starlette answers by reflecting any Origin) with the configured extra origins only, and turns socket.io's
  origin check back on (Chainlit passes `cors_allowed_origins=[]`, which disables it): the app's own origin and
  the configured ones may connect, no other page.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.apps.ui.guards import LoginThrottle

log = logging.getLogger("coursepilot.ui.security")
audit = logging.getLogger("coursepilot.audit")

MAX_REQUEST_BYTES = 1024 * 1024
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",  # Chainlit's index.html has an inline bootstrap script
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",  # no remote image ever loads: nothing can leak a conversation by URL
        "font-src 'self' data:",
        "connect-src 'self' data: blob:",  # cited passages travel as data: URLs
        "media-src 'self' data: blob:",
        "worker-src 'self' blob:",
        "frame-src 'self' blob: data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
}


def _json(status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None) -> list[Message]:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])},
        {"type": "http.response.body", "body": data},
    ]


class _TooLarge(Exception):
    pass


class RequestLimits:
    """Uploads are off (also in config.toml); no request body over `limit` bytes reaches Chainlit."""

    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/project/file"):
            refusal = _json(403, {"detail": "File uploads are disabled."})
        else:
            length = dict(scope.get("headers") or []).get(b"content-length", b"0")
            refusal = (
                _json(413, {"detail": "Request too large."}) if length.isdigit() and int(length) > self.limit else []
            )
        if refusal:
            for message in refusal:
                await send(message)
            return

        counted = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal counted, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > self.limit:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app answers after the cap (a 400 for a cut body): the client gets 413
                if not started:
                    started = True
                    for refusal_message in _json(413, {"detail": "Request too large."}):
                        await send(refusal_message)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if over and not started:
            for message in _json(413, {"detail": "Request too large."}):
                await send(message)
        if over:
            log.warning("refused a request body over %d bytes on %s", self.limit, scope.get("path"))


class SecurityHeaders:
    """CSP, no framing, nosniff on every HTTP response; `Secure` cookies over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for name, value in message.get("headers") or []:
                    if https and name.lower() == b"set-cookie" and b"secure" not in value.lower():
                        value = value + b"; Secure"
                    headers.append((name, value))
                have = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS.items() if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class LoginGuard:
    """Backoff and an audit line for POST <root>/login (Chainlit's password sign-in)."""

    def __init__(self, app: ASGIApp, throttle: Callable[[], LoginThrottle], root_path: str = "") -> None:
        self.app = app
        self.throttle = throttle
        self.path = f"{root_path}/login"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        form = parse_qs(body.decode("utf-8", "replace"))
        user = (form.get("username") or [""])[0].strip()[:128]
        address = client_address(scope)
        throttle = self.throttle()
        wait = throttle.retry_after(user, address)
        if wait > 0:
            seconds = int(wait) + 1
            throttle.refused(address)
            audit.warning("sign-in refused (paused %d s) for user %r from %s", seconds, user, address)
            detail = f"Too many failed sign-ins. Try again in {seconds} seconds."
            for message in _json(429, {"detail": detail}, [(b"retry-after", str(seconds).encode())]):
                await send(message)
            return
        status = 0
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, replay, watch)
        if status == 200:
            throttle.succeeded(user)
        elif status == 401:
            count = throttle.failed(user, address)
            audit.warning("sign-in failed for user %r from %s (%d failure(s) in a row)", user, address, count)


def parse_origins(spec: str) -> list[str]:
    """'https://a.example, https://b.example' -> the origins, without trailing slashes."""
    return [o.strip().rstrip("/") for o in spec.split(",") if o.strip()]


def socket_origin_check(extra: list[str]) -> Callable[[str | None, dict[str, Any]], bool]:
    """engine.io's `cors_allowed_origins` callable: the page's own origin (scheme://Host) or a configured one."""
    allowed = set(extra)

    def check(origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return True  # not a browser page (no Origin header): the cookie still has to be valid
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own or origin in allowed

    return check


def configure_origins(app: Any, sio: Any, extra: list[str]) -> None:
    """Only `extra` origins get CORS headers; socket.io checks the Origin of every connection."""
    for middleware in app.user_middleware:
        if getattr(middleware.cls, "__name__", "") == "CORSMiddleware":
            middleware.kwargs["allow_origins"] = list(extra)
    sio.eio.cors_allowed_origins = socket_origin_check(extra)


__all__ = [
    "CSP",
    "MAX_REQUEST_BYTES",
    "LoginGuard",
    "RequestLimits",
    "SecurityHeaders",
    "client_address",
    "configure_origins",
    "parse_origins",
    "socket_origin_check",
]
