"""Smoke test of the performance benchmark: a tiny run fills every field and renders; no speed is asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLE_LIBRARY, make_settings
from rich.console import Console

from evals.bench import (
    BenchReport,
    ProxyEmbedder,
    build_pool,
    generate_library,
    render_growth,
    render_markdown,
    render_table,
)
from ingest.chunker import chunk_document
from ingest.loaders import load_document
from ingest.manifest import load_manifest

COURSE = "giving-feedback"
# Two text modules of one sample course (no course.yaml: the course is inferred), so the model-vector part is tiny.
MODULES = ("01-why-feedback-matters.md", "04-feedback-conversations-in-practice.txt")


def _tiny_library(root: Path) -> Path:
    folder = root / COURSE
    folder.mkdir(parents=True)
    for name in MODULES:
        shutil.copy(SAMPLE_LIBRARY / COURSE / name, folder / name)
    return root


def test_generated_library_is_deterministic_and_near_its_size(tmp_path: Path) -> None:
    pool = build_pool(_tiny_library(tmp_path / "library"), scifact_dir=None)
    first = generate_library(tmp_path / "a", 120, pool, seed=3)
    second = generate_library(tmp_path / "b", 120, pool, seed=3)
    texts_a = sorted(p.read_text() for p in Path(first.path).rglob("*.md"))
    texts_b = sorted(p.read_text() for p in Path(second.path).rglob("*.md"))
    assert texts_a == texts_b
    chunks = 0
    for folder in sorted(Path(first.path).iterdir()):  # each with its course.yaml
        course = load_manifest(folder)
        for path in sorted(folder.glob("*.md")):
            chunks += len(chunk_document(load_document(path), course, path.name, make_settings(tmp_path).chunking))
    assert 0.8 * 120 <= chunks <= 1.25 * 120, chunks
    vectors = ProxyEmbedder(pool, _unit_vectors(len(pool.sources))).embed_documents(["x", texts_a[0][:400]])
    assert vectors.shape == (2, 8)


def test_a_proxy_library_stores_a_sentence_vector_per_sentence_like_a_real_one(tmp_path: Path) -> None:
    """Proxy vectors come with late-chunked proxy sentence vectors, written by the real ingest (SentenceStore.sync),
    for the same spans a real library stores; a sentence of a pool passage leans towards that passage."""
    import numpy as np

    from assistant.index.library import LibraryIndex
    from assistant.index.sentences import sentence_spans
    from evals.bench.systems import index_settings, ingest_ours

    pool = build_pool(_tiny_library(tmp_path / "library"), scifact_dir=None)
    vectors = _unit_vectors(len(pool.sources))
    lib = Path(generate_library(tmp_path / "synthetic", 60, pool, seed=3).path)
    settings = index_settings(make_settings(tmp_path), tmp_path / "index", lib)
    proxy = ProxyEmbedder(pool, vectors)
    assert ingest_ours(settings, lib, proxy).chunks > 0
    index = LibraryIndex(settings)
    chunks = index.ledger.get_chunks(index.ledger.all_chunk_ids())
    stored = index.sentence_store.sentences(list(chunks))
    assert set(stored) == set(chunks)
    for cid, chunk in chunks.items():
        held = stored[cid]
        assert held.spans == sentence_spans(chunk.text) and held.vectors.shape == (len(held.spans), 8)
        for (start, end), row in zip(held.spans, held.vectors, strict=True):
            source = pool.sentence_source.get(chunk.text[start:end])
            if source is not None:  # nearer its own passage than the average passage is
                assert float(row @ vectors[source]) > float(np.mean(vectors @ row)), chunk.text[start:end]
    index.ledger.close()


def _unit_vectors(n: int):  # type: ignore[no-untyped-def]
    import numpy as np

    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, 8)).astype("float32")
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_bench_command_quick_run_reports_every_field(tmp_path: Path) -> None:
    """`coursepilot bench --quick --json`, the smoke run: every field filled, the exit code follows the targets."""
    library = _tiny_library(tmp_path / "library")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "HF_HUB_OFFLINE": "1",
        "COURSEPILOT_LIBRARY_DIR": str(library),
        "COURSEPILOT_INDEX_DIR": str(tmp_path / "index"),
        "COURSEPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}",
    }
    plot = tmp_path / "bench.png"
    argv = [sys.executable, "-m", "assistant.apps.cli", "bench", "--quick", "--json", "--extra-backends", "onnx"]
    result = subprocess.run(
        [*argv, "--work-dir", str(tmp_path / "bench"), "--plot", str(plot)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = BenchReport.model_validate(json.loads(result.stdout))
    failed = [t.name for t in report.targets if t.passed is False]
    assert result.returncode == (1 if failed else 0), failed
    assert plot.stat().st_size > 1000

    assert isinstance(report, BenchReport)
    comparison = [r for r in report.ingest if not r.primary]
    assert [(r.library, r.system, r.embedder) for r in comparison] == [("sample", "coursepilot", "onnx")]
    assert comparison[0].chunks and comparison[0].chunks_per_s
    ingest = {(r.library, r.system): r for r in report.ingest if r.primary}
    assert set(ingest) == {
        ("sample", "coursepilot"),
        ("sample", "baseline"),
        ("synthetic-300", "coursepilot"),
        ("synthetic-300", "baseline"),
    }
    for run in report.ingest:
        assert run.skipped is None
        assert run.chunks and run.chunks > 0
        assert run.seconds is not None and run.chunks_per_s is not None and run.pages_per_s is not None
        assert run.disk_mb and run.disk_mb_per_1k_chunks, run  # the index's size on disk (Chroma + ledger)
    assert ingest[("sample", "coursepilot")].vectors == "model"
    assert ingest[("synthetic-300", "coursepilot")].vectors == "proxy"
    assert 150 <= (ingest[("synthetic-300", "coursepilot")].chunks or 0) <= 450

    assert [r.library for r in report.reingest] == ["sample", "synthetic-300"]
    for re_run in report.reingest:
        assert re_run.ours_edit_chunks_embedded > 0
        assert re_run.baseline_rebuild_s is not None
        assert re_run.unchanged_speedup is not None and re_run.edit_speedup is not None

    # The shipped setting (stored sentence vectors where the index has them), then embedding forced, same index.
    assert [(r.library, r.mode, r.sentence_vectors) for r in report.latency] == [
        ("synthetic-300", "embedded", "default"),
        ("synthetic-300", "embedded", "stored"),
    ]
    for latency in report.latency:
        assert latency.queries == 10
        assert 0 < latency.p50_ms <= latency.p95_ms <= latency.max_ms
        assert "retrieve" in latency.stage_p50_ms

    assert report.startup is None
    assert report.memory.ru_maxrss_mb > 0
    assert any(name.startswith("ingest sample") for name in report.memory.phases)
    assert {t.name for t in report.targets} >= {
        "re-ingest, unchanged library vs baseline rebuild",
        "re-ingest, one file edited vs baseline rebuild",
        "first ingest chunks/s vs baseline",
    }
    p95 = next(t for t in report.targets if t.name.startswith("p95"))
    assert p95.passed is None and p95.measured is None  # no 100k library in this run: not measured, not failed
    assert report.growth and all(set(g.values) == {"300"} for g in report.growth)
    assert report.definitions["pages"]

    console = Console(record=True, width=220)
    console.print(render_table(report))
    console.print(render_growth(report))
    text = console.export_text()
    assert "first ingest, chunks/s" in text and "synthetic-300" in text
    assert "index on disk, MB per 1k chunks" in text
    assert "| target |" in render_markdown(report)
    again = BenchReport.model_validate(json.loads(report.model_dump_json()))
    assert again == report

    # The kept library can be timed again without rebuilding it (`python -m evals.bench.retime`).
    retime = ["-m", "evals.bench.retime", "--work-dir", str(tmp_path / "bench"), "--library", "synthetic-300"]
    rerun = subprocess.run(
        [sys.executable, *retime, "--queries", "4"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    retimed = json.loads(rerun.stdout)
    assert retimed["queries"] == 4 and 0 < retimed["p50_ms"] <= retimed["p95_ms"] and retimed["load_avg_before"]
