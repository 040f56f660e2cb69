"""Running an ONNX export of a sentence-transformers model: its tokenizer, the session, mean or CLS pooling and L2
normalisation, as the sentence-transformers pipeline does; and late-chunked vectors for character spans.

onnxruntime and tokenizers are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.core.errors import ConfigError
from assistant.models.embeddings import normalise


def read_model_config(model_path: Path, model: str) -> tuple[int, str]:
    """The model's max_seq_length and pooling ('mean' or 'cls') from its sentence-transformers config files."""
    import json

    max_seq_length = 256
    config_file = model_path / "sentence_bert_config.json"
    if config_file.is_file():
        max_seq_length = int(json.loads(config_file.read_text()).get("max_seq_length") or 256)
    pooling_file = model_path / "1_Pooling" / "config.json"
    pooling = json.loads(pooling_file.read_text()) if pooling_file.is_file() else {"pooling_mode_mean_tokens": True}
    if pooling.get("pooling_mode_mean_tokens"):
        return max_seq_length, "mean"
    if pooling.get("pooling_mode_cls_token"):
        return max_seq_length, "cls"
    raise ConfigError(
        f"The ONNX backend supports mean or CLS pooling; '{model}' uses another.",
        "set COURSEPILOT_EMBEDDING_BACKEND=torch for this model.",
    )


def load_tokenizer(model_path: Path, max_length: int) -> Any:
    """The model's fast tokenizer, truncating at `max_length`, without padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    tokenizer.no_padding()  # tokenizer.json pads to a fixed 128; batches are padded to their longest text
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def open_session(path: str) -> Any:
    """The onnxruntime session: single-threaded, shared by the embedding workers (see LocalEmbedder._encode_onnx)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads must not spin on a shared machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run_onnx_file(path: str, tokenizer: Any, texts: list[str], pooling: str) -> np.ndarray:
    """`texts` through the ONNX file at `path` in one batch (a session of its own, for checking an export)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return encode_batch(session, tokenizer, texts, pooling)


def _feed(session: Any, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> dict[str, np.ndarray]:
    """The inputs the graph takes (an export may have no token_type_ids)."""
    wanted = {i.name for i in session.get_inputs()}
    return {k: v for k, v in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types)) if k in wanted}


def encode_batch(session: Any, tokenizer: Any, texts: Sequence[str], pooling: str) -> np.ndarray:
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
    hidden = session.run(None, _feed(session, ids, mask, types))[0]
    if pooling == "cls":
        pooled = hidden[:, 0, :]
    else:
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return normalise(np.asarray(pooled, dtype=np.float32))


def encode_spans(
    session: Any, tokenizer: Any, text: str, spans: Sequence[tuple[int, int]], pooling: str
) -> tuple[np.ndarray, np.ndarray]:
    """One run over `text`: its vector (as `encode_batch` gives it) and one vector per character span.

    Late chunking: a span's vector is the mean of the contextual token outputs whose characters fall in the
    span (special tokens excluded), normalised, so every sentence of a chunk gets a vector that knows its
    neighbours at no extra model cost. A span with no token (cut off by truncation) gets a zero row.
    """
    lead = len(text) - len(text.lstrip())
    enc = tokenizer.encode(text.strip())
    ids = np.asarray([enc.ids], dtype=np.int64)
    mask = np.asarray([enc.attention_mask], dtype=np.int64)
    types = np.asarray([enc.type_ids], dtype=np.int64)
    hidden = np.asarray(session.run(None, _feed(session, ids, mask, types))[0][0], dtype=np.float32)
    pooled = hidden[0] if pooling == "cls" else hidden.mean(axis=0)
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
