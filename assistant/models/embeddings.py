"""Embedding models, found by name: one base class, one registry, adapters in their own modules.

- `EmbeddingModel` is the interface the index, the retriever and ingest use.
- `BaseEmbedder` holds what every backend shares (the query cache, empty input, the vector checks);
  an adapter implements only `_embed`.
- The registry maps `COURSEPILOT_EMBEDDING_PROVIDER` to a factory: 'local' (assistant.models.local_embedder,
  sentence-transformers / ONNX), 'openai' (assistant.models.openai_embedder), anything added with
  `register_embedder`, and any package that declares an entry point in the `coursepilot.embedders` group
  (`name = "package.module:factory"`, the factory taking EmbeddingSettings).

Vendor SDKs are imported lazily inside the adapters so that importing CoursePilot stays cheap.
"""

from __future__ import annotations

import importlib
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from assistant.core.errors import ConfigError, ModelError
from assistant.core.settings import EmbeddingSettings

ENTRY_POINT_GROUP = "coursepilot.embedders"


class EmbeddingModel(Protocol):
    """Turns texts into unit-length vectors."""

    name: str
    dimensions: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def first_use_work(self) -> str | None:
        """What the first embedding call will do beyond loading (e.g. a one-time export), or None."""
        ...

    def prepare(self) -> None:
        """Do that work (and load the model) now."""
        ...


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


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


class BaseEmbedder(ABC):
    """The shared half of every embedding adapter.

    An adapter implements `_embed(texts, query)`, returning one row per text. The base class answers an empty
    batch without calling it, caches query vectors (LRU, `settings.query_cache_size`), checks that the adapter
    returned one finite row per text and keeps `dimensions` up to date.
    """

    def __init__(self, settings: EmbeddingSettings, dimensions: int = 0) -> None:
        self.name = settings.model
        self.dimensions = dimensions
        self._settings = settings
        self._cache = _QueryCache(settings.query_cache_size)

    @abstractmethod
    def _embed(self, texts: Sequence[str], query: bool) -> np.ndarray:
        """Vectors for a non-empty list of texts; `query` is True for one learner question."""

    def _checked(self, texts: Sequence[str], query: bool) -> np.ndarray:
        vectors = np.asarray(self._embed(texts, query), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts) or not np.isfinite(vectors).all():
            raise ModelError(
                f"The '{self._settings.provider}' embedding model returned {vectors.shape} values for "
                f"{len(texts)} text(s), or non-finite numbers.",
                "check the embedding model and endpoint; every text needs one vector of finite numbers.",
            )
        self.dimensions = int(vectors.shape[1])
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return self._checked(list(texts), query=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self._cache.get_or_compute(text, lambda: self._checked([text], query=True)[0])

    def first_use_work(self) -> str | None:
        return None

    def prepare(self) -> None:
        return None


EmbedderFactory = Callable[[EmbeddingSettings], EmbeddingModel]
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _lazy(module: str, attribute: str) -> EmbedderFactory:
    """A factory that imports its adapter on first use (torch, onnxruntime and SDKs stay unimported until then)."""

    def factory(settings: EmbeddingSettings) -> EmbeddingModel:
        made: EmbeddingModel = getattr(importlib.import_module(module), attribute)(settings)
        return made

    return factory


_EMBEDDERS: dict[str, EmbedderFactory] = {
    "local": _lazy("assistant.models.local_embedder", "LocalEmbedder"),
    "openai": _lazy("assistant.models.openai_embedder", "OpenAIEmbedder"),
}
_EMBEDDER_INSTANCES: dict[str, EmbeddingModel] = {}
_INSTANCE_LOCK = threading.Lock()


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `factory` the embedding backend called `name` (COURSEPILOT_EMBEDDING_PROVIDER=name selects it)."""
    if not _NAME.match(name):
        raise ConfigError(
            f"Embedding provider name '{name}' is not valid.",
            "use lower-case letters, digits, '.', '_' or '-' (up to 64 characters), e.g. 'my-embedder'.",
        )
    with _INSTANCE_LOCK:
        _EMBEDDERS[name] = factory
        # Instances built by an earlier factory of that name must not be handed out any more.
        for key in [k for k in _EMBEDDER_INSTANCES if _provider_of(k) == name]:
            del _EMBEDDER_INSTANCES[key]


def _provider_of(key: str) -> str:
    return str(EmbeddingSettings.model_validate_json(key).provider)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def registered_embedders() -> list[str]:
    """Every provider name COURSEPILOT_EMBEDDING_PROVIDER accepts: built in, registered and from entry points."""
    return sorted(set(_EMBEDDERS) | set(_entry_points()))


def _factory(name: str) -> EmbedderFactory:
    factory = _EMBEDDERS.get(name)
    if factory is not None:
        return factory
    point = _entry_points().get(name)
    if point is None:
        raise ConfigError(
            f"Unknown embedding provider '{name}'.",
            f"set COURSEPILOT_EMBEDDING_PROVIDER to one of: {', '.join(registered_embedders())} "
            f"(a plugin adds one with register_embedder() or an '{ENTRY_POINT_GROUP}' entry point).",
        )
    try:
        loaded = point.load()
    except Exception as exc:  # a broken plugin must say which one, not crash the command
        raise ConfigError(
            f"The embedding provider '{name}' ({point.value}) cannot be loaded: {type(exc).__name__}: {exc}.",
            f"reinstall the package that provides it, or set COURSEPILOT_EMBEDDING_PROVIDER to another of: "
            f"{', '.join(sorted(_EMBEDDERS))}.",
        ) from exc
    if not callable(loaded):
        raise ConfigError(
            f"The embedding provider '{name}' ({point.value}) is not a factory.",
            "point the entry point at a class or function that takes EmbeddingSettings.",
        )
    _EMBEDDERS[name] = loaded
    return loaded


def get_embedder(settings: EmbeddingSettings) -> EmbeddingModel:
    """The embedder for these settings; one shared instance per configuration (models are heavy)."""
    key = settings.model_dump_json()
    with _INSTANCE_LOCK:
        if key not in _EMBEDDER_INSTANCES:
            _EMBEDDER_INSTANCES[key] = _factory(settings.provider)(settings)
        return _EMBEDDER_INSTANCES[key]


def __getattr__(name: str) -> Any:
    """`LocalEmbedder` and `OpenAIEmbedder` still import from here (their modules load on first access)."""
    if name == "LocalEmbedder":
        from assistant.models.local_embedder import LocalEmbedder

        return LocalEmbedder
    if name == "OpenAIEmbedder":
        from assistant.models.openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder
    raise AttributeError(name)
