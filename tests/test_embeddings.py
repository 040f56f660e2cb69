"""The local embedding backends: the int8 ONNX default agrees with the torch reference and never shares its vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_LIBRARY, make_settings

from assistant.core.settings import EmbeddingSettings
from assistant.models.embeddings import get_embedder
from assistant.models.local_embedder import LocalEmbedder

QUESTIONS = [
    "How do I give feedback that someone can act on?",
    "What does the GROW model stand for?",
    "How should I handle a phishing email?",
    "Which chart should I use to compare categories?",
]


def _passages() -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLE_LIBRARY.rglob("*.md"))]
    paragraphs = [part.strip() for text in texts for part in text.split("\n\n") if len(part.strip()) > 200]
    return paragraphs[:60]


@pytest.fixture(scope="module")
def torch_and_int8() -> tuple[LocalEmbedder, LocalEmbedder]:
    reference = get_embedder(EmbeddingSettings(backend="torch"))
    quantized = get_embedder(EmbeddingSettings(backend="onnx-int8"))
    assert isinstance(reference, LocalEmbedder) and isinstance(quantized, LocalEmbedder)
    return reference, quantized


def test_default_backend_is_int8_and_keeps_its_own_collection(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.embedding.backend == "onnx-int8"
    names = {
        backend: make_settings(tmp_path, embedding={"backend": backend}).collection_name()
        for backend in ("torch", "onnx", "onnx-int8")
    }
    assert names["torch"] == names["onnx"]  # fp32 export reproduces torch: its vectors are interchangeable
    assert names["onnx-int8"] != names["torch"]


def test_int8_vectors_agree_with_torch(torch_and_int8: tuple[LocalEmbedder, LocalEmbedder]) -> None:
    reference, quantized = torch_and_int8
    passages = _passages()
    assert len(passages) >= 30
    expected = reference.embed_documents(passages)
    got = quantized.embed_documents(passages)
    assert got.shape == expected.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() > 0.95 and cosines.mean() > 0.98, (cosines.min(), cosines.mean())
    assert quantized.onnx_path is not None and Path(quantized.onnx_path).is_file()

    # What retrieval sees: each question's best passages come out the same under both backends.
    for question in QUESTIONS:
        top_ref = np.argsort(-(expected @ reference.embed_query(question)))[:3]
        top_int8 = np.argsort(-(got @ quantized.embed_query(question)))[:3]
        assert top_ref[0] in top_int8, question
        assert len(set(top_ref) & set(top_int8)) >= 2, question


def test_one_query_embeds_the_same_alone_and_in_a_batch(torch_and_int8: tuple[LocalEmbedder, LocalEmbedder]) -> None:
    """Padding a short text inside a batch of long ones must not change its vector (the attention mask works)."""
    _, quantized = torch_and_int8
    texts = [QUESTIONS[0], *_passages()[:7]]
    batched = quantized.embed_documents(texts)[0]
    alone = quantized.embed_documents([QUESTIONS[0]])[0]
    assert float(batched @ alone) > 0.9999


def test_first_use_exports_the_model_once_into_the_cache_folder(tmp_path: Path) -> None:
    """From an empty cache: the export is announced, done once, checked, and then only read."""
    settings = EmbeddingSettings(backend="onnx-int8", cache_dir=tmp_path / "onnx")
    fresh = LocalEmbedder(settings)
    assert fresh.first_use_work() is not None
    fresh.prepare()
    assert fresh.first_use_work() is None
    files = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert len(files) == 2 and files[0].endswith("-fp32.onnx") and files[1].endswith("-int8.onnx")
    # A second process finds the export and does not redo it.
    again = LocalEmbedder(settings)
    assert again.first_use_work() is None
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "onnx").iterdir()}
    vector = again.embed_query("What is the SBI model?")
    assert vector.shape == (384,) and before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "onnx").iterdir()}
    assert float(vector @ fresh.embed_query("What is the SBI model?")) > 0.9999
