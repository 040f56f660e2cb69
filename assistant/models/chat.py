"""Chat models: an OpenAI-compatible LangChain chat model, and bounded retries for one message or one stream.

The vendor SDK is imported lazily inside the adapter so that importing CoursePilot stays cheap.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from assistant.core.errors import ConfigError, ModelError
from assistant.core.settings import ChatSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable


def get_chat_model(settings: ChatSettings, streaming: bool = False) -> BaseChatModel | None:
    """A LangChain chat model for an OpenAI-compatible endpoint, or None for the extractive path."""
    if settings.provider == "none":
        return None
    if settings.api_key is None and settings.base_url is None:
        raise ConfigError(
            "The openai chat provider needs an API key or a base URL.",
            "set COURSEPILOT_CHAT_API_KEY, or COURSEPILOT_CHAT_BASE_URL for a local server (Ollama, vLLM).",
        )
    from langchain_openai import ChatOpenAI

    # Retries are ours (invoke_with_retries) so that backoff, Retry-After and fallback are visible and bounded.
    return ChatOpenAI(
        model=settings.model,
        base_url=settings.base_url,
        api_key=settings.api_key or "not-needed",  # type: ignore[arg-type]
        timeout=settings.timeout_s,
        max_retries=0,
        temperature=settings.temperature,
        streaming=streaming,
    )


class ModelCallError(ModelError):
    """The chat model failed after bounded retries; `reason` is short and safe to show (no secrets)."""

    def __init__(self, reason: str, attempts: int) -> None:
        self.reason = reason
        self.attempts = attempts
        super().__init__(
            f"The chat model failed after {attempts} attempt(s): {reason}.",
            "check COURSEPILOT_CHAT_BASE_URL / COURSEPILOT_CHAT_MODEL and the endpoint's status.",
        )


def _classify(exc: BaseException) -> tuple[bool, float | None, str]:
    """(retryable, retry-after seconds, short reason) for an exception from the OpenAI client stack."""
    import openai

    status = getattr(exc, "status_code", None)
    retry_after: float | None = None
    response = getattr(exc, "response", None)
    if response is not None:
        header = response.headers.get("retry-after") if hasattr(response, "headers") else None
        try:
            retry_after = float(header) if header is not None else None
        except ValueError:
            retry_after = None
    if isinstance(exc, openai.RateLimitError):
        return True, retry_after, "rate limited (HTTP 429)"
    if isinstance(exc, openai.APITimeoutError):
        return True, None, "timed out"
    if isinstance(exc, openai.APIConnectionError):
        return True, None, "connection failed"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return False, None, f"not authorised (HTTP {status}); check the API key"
    if isinstance(exc, openai.NotFoundError):
        return False, None, "model or endpoint not found (HTTP 404)"
    if isinstance(exc, openai.BadRequestError):
        return False, None, "request rejected (HTTP 400)"
    if isinstance(exc, openai.APIStatusError):
        return True, retry_after, f"server error (HTTP {status})"
    # Malformed JSON, a stream cut midway (httpx protocol errors), validation errors: worth one more try.
    return True, None, f"bad response ({type(exc).__name__})"


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, 20.0)
    return min(0.25 * (2**attempt), 8.0) * (0.5 + random.random() / 2)


def message_text(result: Any) -> str:
    """The text of a chat model's reply (a message with str or list-of-parts content, or anything else)."""
    text = result.content if hasattr(result, "content") else str(result)
    if not isinstance(text, str):
        text = "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in text)
    return text


def _with_retries(call: Callable[[], T], settings: ChatSettings, what: str, on_failure: Callable[[], None]) -> T:
    """Run `call` with bounded retries and backoff (honouring Retry-After); `on_failure` runs after each failure."""
    attempts = settings.max_retries + 1
    reason = "unknown error"
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:  # classified below; anything unknown is retried, then reported
            retryable, retry_after, reason = _classify(exc)
            log.warning("chat model %s failed (attempt %d/%d): %s", what, attempt + 1, attempts, reason)
            on_failure()
            if not retryable or attempt == attempts - 1:
                raise ModelCallError(reason, attempt + 1) from exc
            time.sleep(_backoff(attempt, retry_after))
    raise ModelCallError(reason, attempts)


def invoke_with_retries(
    model: Runnable[Any, Any], messages: str | Sequence[BaseMessage], settings: ChatSettings
) -> Any:
    """One request to a chat model (or a model with tools bound) with bounded retries and backoff.

    `messages` is a prompt (sent as one user message) or the message list; returns the model's reply message.
    Retries honour Retry-After; after the last attempt a ModelCallError says why, without secrets.
    """
    if isinstance(messages, str):
        from langchain_core.messages import HumanMessage

        messages = [HumanMessage(content=messages)]
    sent = list(messages)
    return _with_retries(lambda: model.invoke(sent), settings, "call", lambda: None)


def complete(model: Runnable[Any, Any], messages: str | Sequence[BaseMessage], settings: ChatSettings) -> str:
    """invoke_with_retries, returning the reply's text."""
    return message_text(invoke_with_retries(model, messages, settings))


def stream_with_retries(
    open_stream: Callable[[], Any],
    settings: ChatSettings,
    on_token: Callable[[str], None],
    on_reset: Callable[[], None] | None = None,
) -> str:
    """Stream tokens with the same retry policy as invoke_with_retries.

    A stream cut midway restarts from the beginning; `on_reset` is called first when tokens were already handed to
    `on_token`, so the caller can take them back instead of showing them twice.
    """
    parts: list[str] = []

    def attempt() -> str:
        parts.clear()
        for chunk in open_stream():
            token = chunk.content if hasattr(chunk, "content") else str(chunk)
            if isinstance(token, str) and token:
                parts.append(token)
                on_token(token)
        return "".join(parts)

    def failed() -> None:
        if parts and on_reset is not None:
            on_reset()

    return _with_retries(attempt, settings, "stream", failed)
