"""The two systems under test: CoursePilot's `IngestPipeline` and the plain LangChain baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.core.settings import ChromaSettings, IndexSettings, Settings
from evals.bench.embedders import TimedEmbedder, langchain_embeddings
from evals.bench.library import iter_documents
from evals.bench.models import BASELINE_CHUNK_OVERLAP, BASELINE_CHUNK_SIZE, IngestRun, Vectors, rate


def index_settings(settings: Settings, index_dir: Path, library: Path) -> Settings:
    return settings.model_copy(
        update={
            "index": IndexSettings(dir=index_dir),
            "library": settings.library.model_copy(update={"dir": library}),
            "chroma": ChromaSettings(),
        }
    )


@dataclass
class OursResult:
    chunks: int
    embedded: int
    seconds: float
    embed_seconds: float
    store_seconds: float
    disk_bytes: int


def disk_bytes(*paths: Path) -> int:
    """Bytes of the files at or under `paths` (a path that does not exist counts 0)."""
    total = 0
    for path in paths:
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        total += sum(f.stat().st_size for f in files)
    return total


def ours_disk_bytes(settings: Settings, index_dir: Path) -> int:
    """CoursePilot's index on disk: the Chroma folder, the ledger (with its WAL files), the sentence vectors."""
    chroma = Path(settings.index.dir) / "chroma"
    return disk_bytes(chroma, *sorted(index_dir.glob("ledger.sqlite*")), index_dir / "sentences")


def ingest_ours(settings: Settings, library: Path, embedder: Any) -> OursResult:
    """One `IngestPipeline.run` with `embedder` doing the embedding; times the model and the Chroma writes."""
    from assistant.index.library import LibraryIndex
    from ingest.pipeline import IngestPipeline

    timed = TimedEmbedder(embedder)
    index = LibraryIndex(settings)
    store = index.store
    store_seconds = 0.0
    upsert = store.upsert

    def timed_upsert(chunks: Any, vectors: Any) -> None:
        nonlocal store_seconds
        started = time.perf_counter()
        try:
            upsert(chunks, vectors)
        finally:
            store_seconds += time.perf_counter() - started

    store.upsert = timed_upsert  # type: ignore[method-assign]
    started = time.perf_counter()
    report = IngestPipeline(settings, index=index, embedder=timed).run(library)
    seconds = time.perf_counter() - started
    if not report.ok:
        failed = [f"{f.path}: {f.message}" for f in report.files if f.status == "failed"][:3]
        raise RuntimeError(f"ingest of {library} failed: {failed or report.problems}")
    index.ledger.close()
    size = ours_disk_bytes(settings, index.dir)
    return OursResult(report.chunks_total, report.chunks_embedded, seconds, timed.seconds, store_seconds, size)


def ingest_row(
    library: str,
    system: Literal["coursepilot", "baseline"],
    vectors: Vectors,
    embedder: str,
    size: tuple[int, int, float],
    timing: tuple[int, float, float, float | None],
    peak_rss_mb: float | None,
    primary: bool = True,
    disk: int | None = None,
) -> IngestRun:
    """The report row of one first ingest (either system).

    `size` is (files, words, pages) of the library; `timing` is (chunks, seconds, model seconds, store seconds);
    `disk` the index's bytes on disk after it.
    """
    files, words, pages = size
    chunks, seconds, embed_seconds, store_seconds = timing
    return IngestRun(
        library=library,
        system=system,
        vectors=vectors,
        embedder=embedder,
        primary=primary,
        files=files,
        words=words,
        pages=pages,
        chunks=chunks,
        seconds=round(seconds, 3),
        embed_seconds=round(embed_seconds, 3),
        store_seconds=round(store_seconds, 3) if store_seconds is not None else None,
        chunks_per_s=rate(chunks, seconds),
        pages_per_s=rate(pages, seconds),
        pipeline_seconds_per_1k_chunks=round((seconds - embed_seconds) * 1000 / chunks, 3) if chunks else None,
        peak_rss_mb=peak_rss_mb,
        disk_mb=round(disk / 2**20, 2) if disk is not None else None,
        disk_mb_per_1k_chunks=round(disk / 2**20 * 1000 / chunks, 3) if disk is not None and chunks else None,
    )


def ours_row(
    library: str,
    vectors: Vectors,
    embedder: str,
    size: tuple[int, int, float],
    result: OursResult,
    peak_rss_mb: float | None,
    primary: bool = True,
) -> IngestRun:
    timing = (result.chunks, result.seconds, result.embed_seconds, result.store_seconds)
    return ingest_row(library, "coursepilot", vectors, embedder, size, timing, peak_rss_mb, primary, result.disk_bytes)


# -- the baseline ----------------------------------------------------------------------------------------------
@dataclass
class BaselineResult:
    chunks: int
    seconds: float
    embed_seconds: float
    disk_bytes: int


def baseline_documents(library: Path) -> list[Any]:
    """Each supported file as one LangChain Document: its sections' headings and text, concatenated."""
    from langchain_core.documents import Document

    docs = []
    for path, loaded in iter_documents(library):
        parts = [(f"{s.heading_path[-1]}\n" if s.heading_path else "") + s.text for s in loaded.sections]
        docs.append(
            Document(page_content="\n\n".join(parts), metadata={"source": path.relative_to(library).as_posix()})
        )
    return docs


def ingest_baseline(library: Path, persist_dir: Path, embedder: Any) -> BaselineResult:
    """The plain LangChain pipeline, as a full rebuild: delete the collection, load, split, embed, add."""
    from langchain_chroma import Chroma
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    timed = TimedEmbedder(embedder)
    embeddings = langchain_embeddings(timed)
    started = time.perf_counter()
    store = Chroma(collection_name="baseline", embedding_function=embeddings, persist_directory=str(persist_dir))
    store.delete_collection()
    store = Chroma(collection_name="baseline", embedding_function=embeddings, persist_directory=str(persist_dir))
    splitter = RecursiveCharacterTextSplitter(chunk_size=BASELINE_CHUNK_SIZE, chunk_overlap=BASELINE_CHUNK_OVERLAP)
    chunks = splitter.split_documents(baseline_documents(library))
    # add_texts sends everything in one upsert, which Chroma refuses above its max batch (5,461 here): add in slices.
    client = getattr(store, "_client", None)
    step = int(client.get_max_batch_size()) if client is not None and hasattr(client, "get_max_batch_size") else 5000
    for start in range(0, len(chunks), max(1, step)):
        store.add_documents(chunks[start : start + step])
    seconds = time.perf_counter() - started
    return BaselineResult(len(chunks), seconds, timed.seconds, disk_bytes(persist_dir))
