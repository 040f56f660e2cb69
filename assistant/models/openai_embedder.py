"""The 'openai' embedding provider: any OpenAI-compatible /embeddings endpoint, through langchain-openai."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assistant.core.errors import ConfigError, ModelError
from assistant.core.settings import EmbeddingSettings
from assistant.models.embeddings import BaseEmbedder, normalise


class OpenAIEmbedder(BaseEmbedder):
    """Vectors from an OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama...), normalised."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        if settings.api_key is None and settings.base_url is None:
            raise ConfigError(
                "The openai embedding provider needs an API key or a base URL.",
                "set COURSEPILOT_EMBEDDING_API_KEY (and COURSEPILOT_EMBEDDING_BASE_URL for a compatible server).",
            )
        from langchain_openai import OpenAIEmbeddings

        super().__init__(settings)
        self._client = OpenAIEmbeddings(
            model=settings.model,
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",  # type: ignore[arg-type]
            chunk_size=settings.batch_size,
            check_embedding_ctx_length=False,
            max_retries=2,
        )

    def _embed(self, texts: Sequence[str], query: bool) -> np.ndarray:
        try:
            vectors = self._client.embed_documents(list(texts))
        except Exception as exc:  # the SDK raises many types; the user needs one message
            raise ModelError(
                f"The embedding endpoint failed: {type(exc).__name__}.",
                "check COURSEPILOT_EMBEDDING_BASE_URL and COURSEPILOT_EMBEDDING_API_KEY, then re-run.",
            ) from exc
        return normalise(np.asarray(vectors, dtype=np.float32))
