"""The benchmark run: every library, both systems, latency, memory and start-up, measured in one process."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from assistant.core.processes import chroma_server
from assistant.core.settings import ChromaSettings, DatabaseSettings, Settings
from evals.bench.embedders import ProxyEmbedder
from evals.bench.latency import bench_questions, measure_latency
from evals.bench.library import TextPool, build_pool, edit_one_file, generate_library, library_stats
from evals.bench.memory import MemorySampler, ru_maxrss_mb
from evals.bench.models import (
    DEFINITIONS,
    SCIFACT_DIR,
    BenchReport,
    EmbeddingInfo,
    IngestRun,
    LatencyRun,
    MemoryReport,
    ReingestRun,
    Vectors,
    load_avg,
    ratio,
)
from evals.bench.servers import copy_to_server
from evals.bench.startup import UILauncher, first_answer
from evals.bench.systems import BaselineResult, index_settings, ingest_baseline, ingest_ours, ingest_row, ours_row
from evals.bench.targets import evaluate_targets, growth_table

Progress = Callable[[str], None]


def run_bench(
    settings: Settings,
    sizes: Sequence[int] = (1_000, 10_000, 100_000),
    work_dir: Path | None = None,
    include_server: bool = True,
    include_ui: bool = True,
    queries: int = 200,
    progress: Progress | None = None,
    *,
    model_max_chunks: int = 0,
    baseline_max_chunks: int = 100_000,
    include_sample: bool = True,
    scifact_dir: Path | None = SCIFACT_DIR,
    pool_docs: int = 400,
    seed: int = 7,
    extra_backends: Sequence[str] = (),
    ui_launcher: UILauncher | None = None,
) -> BenchReport:
    """Measure ingest, re-ingest, query latency, memory and start-up for CoursePilot and the LangChain baseline.

    `sizes` are synthetic library sizes in chunks. Synthetic libraries up to `model_max_chunks` (default 0: none)
    are embedded by the real model (both systems), larger ones get proxy vectors (see the module docstring); the
    sample library is always embedded by the real model. The baseline is skipped above
    `baseline_max_chunks` (and the report says so). Nothing is estimated: a figure not measured is None.
    `extra_backends` (e.g. ("torch",)) adds CoursePilot first-ingest rows on the sample library with those embedding
    backends, to separate the pipeline's effect from the backend's.
    """
    from assistant.models.embeddings import get_embedder

    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    started_at = datetime.now(UTC)
    load_start = load_avg()
    work = Path(work_dir) if work_dir is not None else Path(".coursepilot") / "bench"
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("index", "baseline", "libs", "server"):
        shutil.rmtree(work / sub, ignore_errors=True)
    sample_src = Path(settings.library.dir)
    mem = MemorySampler()
    notes: list[str] = []

    # Every query pays for its own embedding; the database lives in the work dir.
    embedding = settings.embedding.model_copy(update={"query_cache_size": 0})
    base = settings.model_copy(
        update={"embedding": embedding, "database": DatabaseSettings(url=f"sqlite:///{work / 'bench.db'}")}
    )
    baseline_embedding = embedding.model_copy(update={"backend": "torch"})

    with mem.phase("model load"):
        say(f"loading the embedding model ({embedding.backend})")
        t0 = time.perf_counter()
        ours_model = get_embedder(embedding)
        ours_model.embed_query("warm up")
        model_load_s = time.perf_counter() - t0
        baseline_model = get_embedder(baseline_embedding)
        baseline_model.embed_query("warm up")
    info = EmbeddingInfo(
        backend=str(embedding.backend),
        baseline_backend="torch",
        batch_size=embedding.batch_size,
        model_load_s=round(model_load_s, 2),
        onnx_file=str(getattr(ours_model, "onnx_path", None) or "") or None,
    )

    report = BenchReport(
        started_at=started_at,
        seconds=0.0,
        cpus=os.cpu_count() or 1,
        load_avg_start=load_start,
        load_avg_end=[],
        sizes=list(sizes),
        queries=queries,
        model_max_chunks=model_max_chunks,
        baseline_max_chunks=baseline_max_chunks,
        embedding=info,
        chunking={"size_tokens": settings.chunking.size_tokens, "overlap_tokens": settings.chunking.overlap_tokens},
        definitions=dict(DEFINITIONS),
        memory=MemoryReport(ru_maxrss_mb=0.0),
        notes=notes,
    )
    questions = bench_questions(queries, scifact_dir)

    def one_library(
        name: str, library: Path, size: int | None, files: int, words: int, pages: float, vectors: Vectors
    ) -> Settings:
        idx_settings = index_settings(base, work / "index" / name, library)
        ours_embedder = ours_model if vectors == "model" else proxy_embedder()
        label = info.backend if vectors == "model" else "proxy"
        phase = f"ingest {name} coursepilot"
        with mem.phase(phase):
            say(f"{name}: CoursePilot first ingest ({vectors} vectors)")
            ours = ingest_ours(idx_settings, library, ours_embedder)
        report.ingest.append(ours_row(name, vectors, label, (files, words, pages), ours, mem.peak(phase)))
        baseline_ok = ours.chunks <= baseline_max_chunks
        baseline_error = ""
        baseline_embedder = baseline_model if vectors == "model" else proxy_embedder()
        persist = work / "baseline" / name
        if baseline_ok:
            phase = f"ingest {name} baseline"
            with mem.phase(phase):
                say(f"{name}: baseline first ingest ({vectors} vectors)")
                try:
                    first = ingest_baseline(library, persist, baseline_embedder)
                except Exception as exc:  # recorded as not measured, never estimated
                    baseline_ok = False
                    baseline_error = f"baseline failed: {type(exc).__name__}: {exc}"[:300]
                    say(baseline_error)
        if baseline_ok:
            report.ingest.append(
                ingest_row(
                    name,
                    "baseline",
                    vectors,
                    "torch" if vectors == "model" else "proxy",
                    (files, words, pages),
                    (first.chunks, first.seconds, first.embed_seconds, None),
                    mem.peak(phase),
                    disk=first.disk_bytes,
                )
            )
        else:
            reason = baseline_error or (
                f"baseline skipped: {ours.chunks:,} chunks is above baseline_max_chunks={baseline_max_chunks:,}"
            )
            report.ingest.append(
                IngestRun(
                    library=name,
                    system="baseline",
                    vectors=vectors,
                    embedder="torch" if vectors == "model" else "proxy",
                    files=files,
                    words=words,
                    pages=pages,
                    skipped=reason,
                )
            )

        # Re-ingest: unchanged, then one file edited (the edit's chunks always go through the real model).
        with mem.phase(f"reingest {name}"):
            say(f"{name}: re-ingest unchanged and after one edit")
            unchanged = ingest_ours(idx_settings, library, ours_model)
            edited = edit_one_file(library)
            after_edit = ingest_ours(idx_settings, library, ours_model)
            rebuild: BaselineResult | None = None
            if baseline_ok:
                say(f"{name}: baseline rebuild after the edit ({vectors} vectors)")
                rebuild = ingest_baseline(library, persist, baseline_embedder)
        shutil.rmtree(persist, ignore_errors=True)
        rebuild_s = rebuild.seconds if rebuild else None
        note = ""
        if vectors == "proxy" and rebuild is not None:
            note = "baseline rebuild with proxy vectors excludes model time: its ratios are lower bounds"
        report.reingest.append(
            ReingestRun(
                library=name,
                chunks=ours.chunks,
                vectors=vectors,
                edited_file=edited.relative_to(library).as_posix(),
                ours_unchanged_s=round(unchanged.seconds, 3),
                ours_edit_s=round(after_edit.seconds, 3),
                ours_edit_chunks_embedded=after_edit.embedded,
                baseline_rebuild_s=round(rebuild_s, 3) if rebuild_s is not None else None,
                baseline_vectors=vectors if rebuild is not None else None,
                unchanged_speedup=ratio(rebuild_s, unchanged.seconds),
                edit_speedup=ratio(rebuild_s, after_edit.seconds),
                note=note if rebuild is not None else "baseline not measured at this size",
            )
        )
        return idx_settings

    pool_holder: dict[str, Any] = {}

    def pool() -> TextPool:
        if "pool" not in pool_holder:
            say("building the text pool (sample library + SciFact)")
            pool_holder["pool"] = build_pool(sample_src, scifact_dir, pool_docs)
        result: TextPool = pool_holder["pool"]
        return result

    def proxy_embedder() -> ProxyEmbedder:
        if "proxy" not in pool_holder:
            text_pool = pool()
            cache = work / "cache" / f"pool-{info.backend}-{text_pool.fingerprint()}.npy"
            with mem.phase("pool embedding"):
                if cache.is_file():
                    vectors = np.load(cache)
                    info.pool_embed_s = 0.0
                else:
                    say(f"embedding {len(text_pool.sources)} pool passages with the real model (once, cached)")
                    t = time.perf_counter()
                    vectors = ours_model.embed_documents(
                        [text_pool.source_text(i) for i in range(len(text_pool.sources))]
                    )
                    info.pool_embed_s = round(time.perf_counter() - t, 2)
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    np.save(cache, vectors)
            info.pool_sources = len(text_pool.sources)
            pool_holder["proxy"] = ProxyEmbedder(text_pool, np.asarray(vectors, dtype=np.float32))
        proxy: ProxyEmbedder = pool_holder["proxy"]
        return proxy

    sample_settings: Settings | None = None
    if include_sample and sample_src.is_dir():
        sample_copy = work / "libs" / "sample"
        shutil.copytree(sample_src, sample_copy)
        files, words, pages = library_stats(sample_copy)
        for backend in extra_backends:
            if backend == info.backend:
                continue
            extra = base.model_copy(update={"embedding": embedding.model_copy(update={"backend": backend})})
            extra_settings = index_settings(extra, work / "index" / f"sample-{backend}", sample_copy)
            phase = f"ingest sample coursepilot ({backend})"
            with mem.phase(phase):
                say(f"sample: CoursePilot first ingest with the {backend} backend (comparison)")
                model = get_embedder(extra.embedding)
                model.embed_query("warm up")
                run = ingest_ours(extra_settings, sample_copy, model)
            report.ingest.append(
                ours_row("sample", "model", backend, (files, words, pages), run, mem.peak(phase), primary=False)
            )
        sample_settings = one_library("sample", sample_copy, None, files, words, pages, "model")

    if include_ui:
        target = sample_settings
        if target is None:
            notes.append("start-up to first answer needs the sample library; not measured")
        else:
            with mem.phase("ui first answer"):
                say("start-up to first answer")
                report.startup = first_answer(target, work, ui_launcher)

    server_ctx: contextlib.ExitStack = contextlib.ExitStack()
    server: tuple[str, int, int] | None = None
    try:
        for size in sorted(sizes):
            name = f"synthetic-{size}"
            vectors: Vectors = "model" if size <= model_max_chunks else "proxy"
            say(f"{name}: generating")
            lib = generate_library(
                work / "libs" / name,
                size,
                pool(),
                settings.chunking.size_tokens,
                settings.chunking.overlap_tokens,
                seed,
            )
            idx_settings = one_library(name, Path(lib.path), size, lib.files, lib.words, lib.pages, vectors)
            chunks = next(r.chunks for r in report.ingest if r.library == name and r.system == "coursepilot") or 0
            phase = f"latency {name} embedded"
            with mem.phase(phase):
                say(f"{name}: {queries} questions, embedded Chroma")
                lat = measure_latency(idx_settings, questions)
            common: dict[str, Any] = {"library": name, "size": size, "chunks": chunks, "vectors": vectors}
            report.latency.append(LatencyRun(**common, mode="embedded", peak_rss_mb=mem.peak(phase), **lat))
            phase = f"latency {name} embedded, stored sentence vectors"
            with mem.phase(phase):
                say(f"{name}: {queries} questions, embedded Chroma, the stored sentence vectors read")
                stored = idx_settings.model_copy(
                    update={"answer": idx_settings.answer.model_copy(update={"stored_sentence_vectors": True})}
                )
                lat = measure_latency(stored, questions)
            report.latency.append(
                LatencyRun(**common, mode="embedded", sentence_vectors="stored", peak_rss_mb=mem.peak(phase), **lat)
            )
            if include_server:
                if server is None:
                    say("starting the Chroma server")
                    server = server_ctx.enter_context(chroma_server(work / "server" / "data"))
                    mem.watch(server[2])
                host, port, _pid = server
                srv_settings = idx_settings.model_copy(update={"chroma": ChromaSettings(host=host, port=port)})
                phase = f"latency {name} server"
                with mem.phase(phase):
                    say(f"{name}: copying vectors to the Chroma server")
                    load_s = copy_to_server(idx_settings, srv_settings)
                    say(f"{name}: {queries} questions, Chroma server")
                    lat = measure_latency(srv_settings, questions)
                server_rss = round(mem.external_peak, 1) if mem.external_peak else None
                report.latency.append(
                    LatencyRun(
                        **common,
                        mode="server",
                        peak_rss_mb=mem.peak(phase),
                        server_rss_mb=server_rss,
                        load_seconds=round(load_s, 2),
                        **lat,
                    )
                )
    finally:
        server_ctx.close()
        mem.close()

    report.memory = MemoryReport(
        ru_maxrss_mb=ru_maxrss_mb(),
        phases={k: round(v, 1) for k, v in mem.phases.items()},
        chroma_server_peak_mb=round(mem.external_peak, 1) if mem.external_peak else None,
    )
    report.targets = evaluate_targets(report)
    report.growth = growth_table(report)
    if any(r.vectors == "proxy" for r in report.ingest):
        notes.append(
            f"libraries above {model_max_chunks:,} chunks used proxy vectors (real-model vectors of "
            f"{info.pool_sources} pool passages, averaged per chunk): their ingest rates exclude model inference."
        )
    notes.append(
        "the baseline embeds with sentence-transformers on torch; CoursePilot with backend "
        f"'{info.backend}' (batch {info.batch_size}); both run the same all-MiniLM-L6-v2 weights."
    )
    report.load_avg_end = load_avg()
    report.seconds = round(time.perf_counter() - t_start, 1)
    return report
