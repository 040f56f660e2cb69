"""A real, in-process HTTP server speaking the OpenAI chat-completions and embeddings protocol.

Used by the test suite instead of a real model endpoint. It is stdlib-only (``http.server``), binds
``127.0.0.1`` on an ephemeral port and runs in a daemon thread, so the product's real HTTP stack
(``langchain_openai.ChatOpenAI`` -> ``openai`` client -> httpx) is exercised end to end.

Default answer policy (deterministic, derived from the prompt it receives; see :func:`default_answer`):

* no ``<question>...</question>`` anywhere in the messages -> ``"REWRITE: " + last user message``
  (query-rewrite / playlist-intro style prompts);
* no ``<evidence key=...>`` blocks, or the question contains ``UNANSWERABLE`` -> :data:`REFUSAL`;
* otherwise the first sentence of each of the first two evidence blocks, each followed by
  ``" [KEY]"``, joined by a space.

Faults and overrides are scripted per request with :class:`Reply` (FIFO via
:meth:`FakeOpenAIServer.script`, or pattern rules via :meth:`FakeOpenAIServer.when`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = [
    "EMBEDDING_DIM",
    "REFUSAL",
    "FakeOpenAIServer",
    "Reply",
    "default_answer",
    "embed_text",
    "fake_openai",
    "messages_text",
]

REFUSAL = "I cannot answer this from the course library."
REWRITE_PREFIX = "REWRITE: "
EMBEDDING_DIM = 384
CREATED = 1_700_000_000  # fixed timestamp: responses are fully deterministic

_EVIDENCE_RE = re.compile(r"<evidence\b([^>]*)>(.*?)</evidence>", re.DOTALL | re.IGNORECASE)
_ATTR_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_QUESTION_RE = re.compile(r"<question>(.*?)</question>", re.DOTALL | re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
_WORD_RE = re.compile(r"\w+", re.UNICODE)


# --------------------------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """One scripted response. Fields left at their defaults behave like the default policy.

    text: answer text instead of :func:`default_answer` (for errors: the error message).
    status: HTTP status; non-200 returns an OpenAI-style ``{"error": {...}}`` JSON body.
    retry_after: seconds, sent as ``Retry-After`` (and ``retry-after-ms``); use with 429.
    malformed: 200 with a truncated/non-JSON body (streaming: a non-JSON ``data:`` event).
    delay: seconds to sleep before responding (added to the server's default delay).
    stream_drop_after: streaming: send N content chunks, then close the connection without the
        terminating chunk or ``[DONE]``; non-streaming: send half of the body and close.
    stream_stall: streaming: send the role chunk and two content chunks, then sleep this long,
        then continue normally.
    tool_call: ``(name, arguments)``: if the request has ``tools``, answer with a single tool call
        (``finish_reason="tool_calls"``); otherwise this field is ignored.
    finish_reason: override the final ``finish_reason`` (e.g. ``"length"``).
    code: the ``error.code`` of an error body (e.g. ``"context_length_exceeded"``).
    headers: extra response headers.
    """

    text: str | None = None
    status: int = 200
    retry_after: float | None = None
    malformed: bool = False
    delay: float = 0.0
    stream_drop_after: int | None = None
    stream_stall: float | None = None
    tool_call: tuple[str, dict[str, Any]] | None = None
    finish_reason: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int = 500, message: str | None = None, code: str | None = None) -> Reply:
        return cls(text=message, status=status, code=code)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0, message: str | None = None) -> Reply:
        return cls(text=message, status=429, retry_after=retry_after)

    @classmethod
    def answer(cls, text: str) -> Reply:
        return cls(text=text)

    @classmethod
    def slow(cls, delay: float) -> Reply:
        return cls(delay=delay)

    @classmethod
    def garbage(cls) -> Reply:
        return cls(malformed=True)

    @classmethod
    def dropped(cls, after: int = 2) -> Reply:
        return cls(stream_drop_after=after)

    @classmethod
    def stalled(cls, seconds: float) -> Reply:
        return cls(stream_stall=seconds)

    @classmethod
    def tool(cls, name: str, arguments: dict[str, Any] | None = None) -> Reply:
        return cls(tool_call=(name, dict(arguments or {})))


# --------------------------------------------------------------------------------------- pure helpers


def _content_text(content: Any) -> str:
    """Text of an OpenAI message ``content`` (a string or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


def messages_text(messages: list[dict[str, Any]]) -> str:
    """All message contents concatenated (newline separated), in order."""
    return "\n".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return _content_text(messages[-1].get("content")) if messages else ""


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return _SENTENCE_END_RE.split(text, maxsplit=1)[0] if text else ""


def parse_evidence(text: str) -> list[dict[str, str]]:
    """``[{"key", "source", "text"}]`` for every ``<evidence ...>...</evidence>`` block, in order."""
    blocks = []
    for attrs, body in _EVIDENCE_RE.findall(text):
        attr = dict(_ATTR_RE.findall(attrs))
        blocks.append({"key": attr.get("key", ""), "source": attr.get("source", ""), "text": body.strip()})
    return blocks


def default_answer(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer the server gives for ``messages`` when nothing is scripted."""
    text = messages_text(messages)
    question = _QUESTION_RE.search(text)
    if question is None:
        return REWRITE_PREFIX + _last_user_text(messages)
    evidence = parse_evidence(text)
    if not evidence or re.search(r"\bUNANSWERABLE\b", question.group(1)):
        return REFUSAL
    return " ".join(f"{_first_sentence(block['text'])} [{block['key']}]" for block in evidence[:2])


def embed_text(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """Deterministic unit vector: signed bag of hashed lower-cased words (similar texts, similar vectors)."""
    vec = [0.0] * dim
    tokens = [t.lower() for t in _WORD_RE.findall(text)] or ["\x00empty"]
    for token in tokens:
        h = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
        vec[h % dim] += 1.0 if (h >> 40) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:  # every token cancelled out (possible, if unlikely)
        vec[0], norm = 1.0, 1.0
    return [v / norm for v in vec]


def _stream_pieces(text: str) -> list[str]:
    """Word-ish chunks (leading whitespace kept) whose concatenation is exactly ``text``."""
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces = [tail]
    return pieces


def _count_tokens(text: str) -> int:
    return len(text.split())


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


# ---------------------------------------------------------------------------------------------- server


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # pragma: no cover - quiet
        pass  # client disconnects (timeouts, dropped streams) are expected; don't spam stderr

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.fake._lock:
            self.fake._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.fake._lock:
            self.fake._connections.discard(request)
        super().shutdown_request(request)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked transfer for SSE
    server: _HTTPServer

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeOpenAIServer:
        return self.server.fake

    def _send_bytes(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", f"req_fake_{self.fake._next_id()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def _send_error(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        err_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        if code is None and status == 429:
            code = "rate_limit_exceeded"
        if code is None and status == 401:
            code = "invalid_api_key"
        body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        self._send_json(status, body, headers)

    def _reply_headers(self, reply: Reply) -> dict[str, str]:
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            ra = reply.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else f"{ra:g}"
            headers["retry-after-ms"] = str(round(ra * 1000))
        return headers

    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, None

    def _record(self, body: Any, raw: bytes) -> dict[str, Any]:
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "raw": raw.decode("utf-8", "replace"),
            "time": time.monotonic(),
        }
        self.fake._record(record)
        return record

    def _authorized(self) -> bool:
        expected = self.fake.api_key
        if expected is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {expected}":
            return True
        self._send_error(401, "Incorrect API key provided.")
        return False

    # ------------------------------------------------------------------ verbs

    def do_GET(self) -> None:
        self._record(None, b"")
        path = self.path.split("?", 1)[0].rstrip("/")
        if not self._authorized():
            return
        if path == "/v1/models":
            models = [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "coursepilot-tests"}
                for m in self.fake.models
            ]
            self._send_json(200, {"object": "list", "data": models})
        elif path.startswith("/v1/models/"):
            model_id = path.removeprefix("/v1/models/")
            self._send_json(
                200, {"id": model_id, "object": "model", "created": CREATED, "owned_by": "coursepilot-tests"}
            )
        else:
            self._send_error(404, f"Unknown path {self.path}")

    def do_POST(self) -> None:
        raw, body = self._read_body()
        self._record(body, raw)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/embeddings"):
            self._send_error(404, f"Unknown path {self.path}")
            return
        if not isinstance(body, dict):
            self._send_error(400, "Request body must be a JSON object.")
            return
        if not self._authorized():
            return
        if path == "/v1/chat/completions":
            self._chat(body)
        else:
            self._embeddings(body)

    # ------------------------------------------------------------------ embeddings

    def _embeddings(self, body: dict[str, Any]) -> None:
        reply = self.fake._next_embedding_reply()
        if not self.fake._sleep(self.fake.default_delay + reply.delay):
            return
        if reply.status != 200:
            self._send_error(
                reply.status,
                reply.text or f"Fake error {reply.status}",
                reply.code,
                self._reply_headers(reply),
            )
            return
        if reply.malformed:
            self._send_bytes(
                200, b'{"object": "list", "data": [{"embedd', "application/json", self._reply_headers(reply)
            )
            return
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            self._send_error(400, "'input' must be a non-empty string or array.")
            return
        dim = body.get("dimensions") or EMBEDDING_DIM
        texts = [x if isinstance(x, str) else " ".join(f"tok{t}" for t in x) for x in inputs]
        data = []
        for i, text in enumerate(texts):
            vec = embed_text(text, int(dim))
            embedding: Any = vec
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = sum(_count_tokens(t) for t in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        self._send_json(200, payload, self._reply_headers(reply))

    # ------------------------------------------------------------------ chat

    def _chat(self, body: dict[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._send_error(400, "'messages' must be a non-empty array.")
            return
        reply = self.fake._next_chat_reply(_last_user_text(messages))
        if not self.fake._sleep(self.fake.default_delay + reply.delay):
            return
        headers = self._reply_headers(reply)
        if reply.status != 200:
            self._send_error(reply.status, reply.text or f"Fake error {reply.status}", reply.code, headers)
            return

        model = str(body.get("model") or "fake")
        completion_id = f"chatcmpl-fake-{self.fake._next_id()}"
        tool_call = reply.tool_call if body.get("tools") else None
        text = "" if tool_call else (reply.text if reply.text is not None else default_answer(messages))
        finish = reply.finish_reason or ("tool_calls" if tool_call else "stop")
        prompt_tokens = _count_tokens(messages_text(messages))
        completion_tokens = _count_tokens(text) + (len(json.dumps(tool_call[1]).split()) if tool_call else 0)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        tool_calls = None
        if tool_call:
            tool_calls = [
                {
                    "id": f"call_fake_{self.fake._next_id()}",
                    "type": "function",
                    "function": {"name": tool_call[0], "arguments": json.dumps(tool_call[1])},
                }
            ]

        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._chat_stream(completion_id, model, text, tool_calls, finish, usage, include_usage, reply, headers)
            return

        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if not tool_calls else None,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        if reply.malformed:
            self._send_bytes(200, json.dumps(payload).encode()[:40], "application/json", headers)
            return
        if reply.stream_drop_after is not None:  # announce the full body, send half, hang up
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send_json(200, payload, headers)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _chat_stream(
        self,
        completion_id: str,
        model: str,
        text: str,
        tool_calls: list[dict[str, Any]] | None,
        finish: str,
        usage: dict[str, int],
        include_usage: bool,
        reply: Reply,
        headers: dict[str, str],
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_fake_{self.fake._next_id()}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

        def event(choices: list[dict[str, Any]], with_usage: dict[str, int] | None = None) -> None:
            chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                chunk["usage"] = with_usage
            self._write_chunk(b"data: " + json.dumps(chunk).encode("utf-8") + b"\n\n")

        def delta(d: dict[str, Any], finish_reason: str | None = None) -> None:
            event([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}])

        first: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else "", "refusal": None}
        delta(first)
        if reply.malformed:
            self._write_chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n')
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
            return

        pieces: list[dict[str, Any]]
        if tool_calls:
            call = tool_calls[0]
            args = call["function"]["arguments"]
            pieces = [
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            ]
            pieces += [
                {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 8]}}]}
                for i in range(0, len(args), 8)
            ]
        else:
            pieces = [{"content": piece} for piece in _stream_pieces(text)]

        for n, piece in enumerate(pieces):
            if reply.stream_drop_after is not None and n >= reply.stream_drop_after:
                self.close_connection = True  # EOF without terminating chunk / [DONE]
                return
            if reply.stream_stall is not None and n == 2 and not self.fake._sleep(reply.stream_stall):
                return
            delta(piece)
        if reply.stream_drop_after is not None and reply.stream_drop_after >= len(pieces):
            self.close_connection = True
            return
        if reply.stream_stall is not None and len(pieces) <= 2 and not self.fake._sleep(reply.stream_stall):
            return
        delta({}, finish)
        if include_usage:
            event([], usage)
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # terminating zero-length chunk


class FakeOpenAIServer:
    """In-process fake of the OpenAI HTTP API. ``with FakeOpenAIServer() as srv: ... srv.url``."""

    def __init__(self, *, api_key: str | None = None, models: tuple[str, ...] = ("fake", "fake-embedding")):
        self.api_key = api_key  # if set, requests without ``Authorization: Bearer <api_key>`` get 401
        self.models = models
        self.default_delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._embedding_queue: deque[Reply] = deque()
        self._rules: list[tuple[re.Pattern[str], Reply, list[int | None]]] = []
        self._ids = itertools.count(1)
        self._connections: set[Any] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._request_seen = threading.Condition(self._lock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping on delays/stalls
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:  # unblock keep-alive handler threads waiting for the next request
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (append ``/v1`` for an OpenAI ``base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``url + "/v1"``, ready for ``openai.OpenAI(base_url=...)`` / ``ChatOpenAI(base_url=...)``."""
        return self.url + "/v1"

    # ------------------------------------------------------------------ scripting

    def script(self, *replies: Reply | str) -> None:
        """Queue chat replies, consumed one per chat request (FIFO). A ``str`` means ``Reply(text=...)``."""
        with self._lock:
            self._queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def script_embeddings(self, *replies: Reply) -> None:
        """Queue replies for ``/v1/embeddings`` (status/delay/malformed/retry_after are honoured)."""
        with self._lock:
            self._embedding_queue.extend(replies)

    def when(self, pattern: str, reply: Reply | str, *, times: int | None = None) -> None:
        """Rule: a chat request whose last user message matches regex ``pattern`` gets ``reply``.

        Rules are checked before the FIFO queue (first match wins), ``times=None`` means forever.
        """
        r = Reply(text=reply) if isinstance(reply, str) else reply
        with self._lock:
            self._rules.append((re.compile(pattern, re.IGNORECASE | re.DOTALL), r, [times]))

    def set_default_delay(self, seconds: float) -> None:
        """Sleep this long before every POST response (scripted ``Reply.delay`` is added on top)."""
        self.default_delay = max(0.0, float(seconds))

    def pending(self) -> int:
        """Scripted chat replies not yet consumed."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget recorded requests, queued replies, rules and the default delay."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._embedding_queue.clear()
            self._rules.clear()
        self.default_delay = 0.0

    # ------------------------------------------------------------------ inspection

    def chat_requests(self) -> list[dict[str, Any]]:
        """Recorded ``/v1/chat/completions`` requests: ``{"method","path","headers","body","raw","time"}``."""
        with self._lock:
            return [r for r in self.requests if r["path"].split("?")[0].rstrip("/") == "/v1/chat/completions"]

    def embedding_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].split("?")[0].rstrip("/") == "/v1/embeddings"]

    @property
    def last_request(self) -> dict[str, Any]:
        with self._lock:
            if not self.requests:
                raise AssertionError("FakeOpenAIServer received no requests")
            return self.requests[-1]

    def last_messages(self) -> list[dict[str, Any]]:
        """``messages`` of the most recent chat request."""
        chats = self.chat_requests()
        if not chats:
            raise AssertionError("FakeOpenAIServer received no chat requests")
        return list(chats[-1]["body"]["messages"])

    def last_prompt(self) -> str:
        """All message contents of the most recent chat request, concatenated."""
        return messages_text(self.last_messages())

    def wait_for_requests(self, n: int, timeout: float = 2.0) -> bool:
        """Block until at least ``n`` requests were recorded (True) or ``timeout`` elapses (False)."""
        with self._request_seen:
            return self._request_seen.wait_for(lambda: len(self.requests) >= n, timeout)

    # ------------------------------------------------------------------ internals (handler side)

    def _record(self, record: dict[str, Any]) -> None:
        with self._request_seen:
            self.requests.append(record)
            self._request_seen.notify_all()

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _next_chat_reply(self, last_user: str) -> Reply:
        with self._lock:
            for pattern, reply, remaining in self._rules:
                if remaining[0] != 0 and pattern.search(last_user):
                    if remaining[0] is not None:
                        remaining[0] -= 1
                    return reply
            return self._queue.popleft() if self._queue else Reply()

    def _next_embedding_reply(self) -> Reply:
        with self._lock:
            return self._embedding_queue.popleft() if self._embedding_queue else Reply()

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early if the server stops. False if it stopped (handler should bail out)."""
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A started :class:`FakeOpenAIServer`; stopped after the test."""
    server = FakeOpenAIServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
