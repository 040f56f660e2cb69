"""The ONNX files of the 'local' embedder: where the export of a model folder is cached, the export of the bundled
weights (torch + the `onnx` package, no download) and its dynamic int8 quantization, each checked against its
reference before it is published atomically.

torch, sentence-transformers, onnx and onnxruntime are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from assistant.core.errors import ConfigError, ModelError
from assistant.models.onnx_encode import load_tokenizer, run_onnx_file

log = logging.getLogger("assistant.models.local_embedder")

# Bump when the exported graph or the quantization recipe changes: old cached files are then ignored.
ONNX_FORMAT = 1
ONNX_OPSET = 17

_CHECK_TEXTS = (
    "What is the SBI model?",
    "Pivot tables summarise thousands of rows in seconds. " * 40,  # longer than max_seq_length: truncated
    "Feedback works best when it is specific, timely and about behaviour rather than personality.",
    "x",
)


class _DropMessages(logging.Filter):
    """Drops log records whose message contains `fragment`."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def onnx_file(cache_dir: Path, model: str, model_path: Path, quantized: bool) -> Path:
    """Where the export of this exact model folder lives (named after its weights, config and tokenizer)."""
    import hashlib

    digest = hashlib.sha1(f"v{ONNX_FORMAT}|opset{ONNX_OPSET}".encode())
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
    slug = "".join(c if c.isalnum() else "-" for c in model.lower()).strip("-")[:32]
    suffix = "int8" if quantized else "fp32"
    return cache_dir / f"{slug}-{digest.hexdigest()[:16]}-{suffix}.onnx"


def export_onnx(model: str, model_path: Path, target: Path, max_seq_length: int, pooling: str) -> None:
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
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        check_export(model, model_path, tmp_name, max_seq_length, pooling, 0.9999, st=st)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
        log.info("exported %s to ONNX at %s", model, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def quantize_onnx(model: str, model_path: Path, source: Path, target: Path, max_seq_length: int, pooling: str) -> None:
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
        check_export(model, model_path, tmp_name, max_seq_length, pooling, 0.95, reference=str(source))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
        log.info("quantized %s to int8 at %s", model, target)
    finally:
        logging.getLogger().removeFilter(quiet)
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def check_export(
    model: str,
    model_path: Path,
    path: str,
    max_seq_length: int,
    pooling: str,
    min_cosine: float,
    st: Any = None,
    reference: str | None = None,
) -> None:
    """Refuse an export whose vectors stray from torch's (`st`, or the fp32 export at `reference`), batched and
    one at a time."""
    tokenizer = load_tokenizer(model_path, max_seq_length)
    texts = list(_CHECK_TEXTS)
    if reference is None:
        expected = np.asarray(st.encode(texts, normalize_embeddings=True, convert_to_numpy=True), np.float32)
    else:
        expected = run_onnx_file(reference, tokenizer, texts, pooling)
    got = run_onnx_file(path, tokenizer, texts, pooling)
    single = np.vstack([run_onnx_file(path, tokenizer, [t], pooling) for t in texts])
    worst = float(min((got * expected).sum(axis=1).min(), (single * expected).sum(axis=1).min()))
    if worst < min_cosine:
        raise ModelError(
            f"The ONNX export of '{model}' does not reproduce the model (cosine {worst:.4f}).",
            "set COURSEPILOT_EMBEDDING_BACKEND=torch, and report the versions of torch and onnxruntime.",
        )
