"""Performance benchmark: CoursePilot against a plain LangChain pipeline, everything measured in one run.

What is compared
----------------
* **CoursePilot**: `IngestPipeline` (structure-aware chunks of `chunking.size_tokens` cl100k tokens, incremental by
  content hash, Chroma + ledger + BM25) and `CoursePilot.ask` (hybrid retrieval + extractive answer).
* **Baseline**: the plain LangChain recipe. Files are read with CoursePilot's own loaders and each file's text is
  concatenated (section heading + text, sections joined by blank lines: "simple text extraction" that still reads
  PDF/DOCX/PPTX/HTML), split by `RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`, and written to
  `langchain_chroma.Chroma`. Every ingest is a full rebuild: the collection is deleted and every chunk re-added.
  Its embeddings are the same all-MiniLM-L6-v2 model wrapped in a LangChain `Embeddings`, run by
  sentence-transformers on PyTorch (what `HuggingFaceEmbeddings` would run); CoursePilot uses the backend its
  settings name (`embedding.backend`), which the report records.

Libraries
---------
* the sample library (``settings.library.dir``, copied so that its edit never touches the original);
* synthetic libraries of about N chunks each (`sizes`), written by `generate_library`: course folders with a
  course.yaml and Markdown modules (H1, H2 sections, paragraphs) whose sentences are recombined from the sample
  library and the SciFact corpus, seeded, sized with the product's own chunk-packing rule.

Vectors at sizes the model cannot embed here
--------------------------------------------
MiniLM costs ~12 GFLOP per 256-token chunk; on a shared 2-core machine that is a few chunks per second, so a 100k
library cannot be embedded inside a benchmark. Libraries above `model_max_chunks` are therefore ingested with
**proxy vectors**: a chunk's vector is the normalised mean of the real model vectors of the pool passages its
sentences were drawn from (the pool is embedded by the real model first). Every other stage (loading, chunking,
ledger, BM25, Chroma writes and HNSW build) is the real code; query vectors always come from the real model. Rows
say which vectors they used (``vectors: model | proxy``); proxy-vector ingest rates exclude model inference and are
never compared with model rates. The re-ingest after one edit always embeds the changed chunks with the real model.

Definitions
-----------
* pages: PDF pages and PPTX slides as the loader counts them; any other file counts ``words / 500`` pages (so a
  Markdown page is ~500 words).
* latency: wall time of `CoursePilot.ask` (retrieval + extractive answer, no chat model), query-embedding cache
  off, after 5 warm-up questions; p50/p95 over `queries` distinct questions (golden questions + SciFact claims).
* memory: RSS high-water mark of this process (`getrusage(RUSAGE_SELF).ru_maxrss`), and the peak RSS sampled every
  0.1 s by psutil during each phase (the whole process, so phases include what earlier phases left allocated).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, SecretStr

from assistant.core.processes import ProcessSpec, free_port, stop_process
from assistant.core.settings import (
    DEMO_ID,
    DEMO_PASSWORD,
    ChromaSettings,
    DatabaseSettings,
    IndexSettings,
    Settings,
    UISettings,
)

if TYPE_CHECKING:
    from rich.table import Table

Progress = Callable[[str], None]
Vectors = Literal["model", "proxy"]

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "evals" / "datasets" / "golden.yaml"

# Builds the command that starts the chat UI (settings, host, port); the CLI passes the UI's own launcher.
UILauncher = Callable[[Settings, str, int], ProcessSpec]


def _find_scifact() -> Path | None:
    """SciFact from $COURSEPILOT_SCIFACT_DIR, else shared/benchmarks/scifact beside the checkout, else None."""
    for candidate in (
        os.environ.get("COURSEPILOT_SCIFACT_DIR"),
        str(ROOT.parent / "shared" / "benchmarks" / "scifact"),
        "/work/shared/benchmarks/scifact",
    ):
        if candidate and (Path(candidate) / "corpus.jsonl").is_file():
            return Path(candidate)
    return None


SCIFACT_DIR = _find_scifact()
WORDS_PER_PAGE = 500
CHUNKS_PER_MODULE = 25
MODULES_PER_COURSE = 20
BASELINE_CHUNK_SIZE = 1000
BASELINE_CHUNK_OVERLAP = 200
WARMUP_QUERIES = 5

TARGET_UNCHANGED = 50.0
TARGET_EDIT = 20.0
TARGET_FIRST_INGEST = 1.5
TARGET_P95_MS = 100.0
TARGET_P95_AT = 100_000


# -- report ---------------------------------------------------------------------------------------------------
class IngestRun(BaseModel):
    """One first ingest of one library by one system."""

    library: str
    system: Literal["coursepilot", "baseline"]
    vectors: Vectors
    embedder: str = Field(description="Backend that produced the vectors (torch, onnx, onnx-int8, or proxy).")
    primary: bool = Field(
        default=True, description="False for extra CoursePilot runs with another embedding backend (extra_backends)."
    )
    files: int
    words: int
    pages: float
    chunks: int | None = None
    seconds: float | None = None
    embed_seconds: float | None = Field(default=None, description="Time inside embed_documents.")
    store_seconds: float | None = Field(default=None, description="Time writing vectors to Chroma.")
    chunks_per_s: float | None = None
    pages_per_s: float | None = None
    pipeline_seconds_per_1k_chunks: float | None = Field(
        default=None, description="(seconds - embed_seconds) per 1,000 chunks: the cost outside the model."
    )
    peak_rss_mb: float | None = None
    skipped: str | None = Field(default=None, description="Why this run was not measured (never estimated).")


class ReingestRun(BaseModel):
    """Re-ingest of an unchanged library and after one edited file: CoursePilot incremental vs baseline rebuild."""

    library: str
    chunks: int
    vectors: Vectors
    edited_file: str
    ours_unchanged_s: float
    ours_edit_s: float
    ours_edit_chunks_embedded: int
    baseline_rebuild_s: float | None = None
    baseline_vectors: Vectors | None = None
    unchanged_speedup: float | None = None
    edit_speedup: float | None = None
    note: str = ""


class LatencyRun(BaseModel):
    """`CoursePilot.ask` latency over one index."""

    library: str
    size: int = Field(description="Requested size (chunks).")
    chunks: int = Field(description="Chunks actually in the index.")
    mode: Literal["embedded", "server"]
    vectors: Vectors
    queries: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    max_ms: float
    stage_p50_ms: dict[str, float] = Field(default_factory=dict)
    refused: int = 0
    peak_rss_mb: float | None = None
    server_rss_mb: float | None = None
    load_seconds: float | None = Field(default=None, description="Server mode: copying the vectors to the server.")


class StartupRun(BaseModel):
    """Time from starting the chat UI (or the CLI) to the first complete answer."""

    kind: Literal["ui", "cli"]
    label: str
    ok: bool
    seconds_to_first_answer: float | None = None
    seconds_to_health: float | None = None
    seconds_to_first_token: float | None = None
    question: str = ""
    answer_preview: str = ""
    error: str | None = None


class MemoryReport(BaseModel):
    ru_maxrss_mb: float
    phases: dict[str, float] = Field(default_factory=dict, description="Peak sampled RSS (MB) per phase.")
    chroma_server_peak_mb: float | None = None


class TargetCheck(BaseModel):
    name: str
    target: str
    measured: float | None
    passed: bool | None = Field(description="None: not measured in this run.")
    basis: str


class GrowthRow(BaseModel):
    metric: str
    unit: str
    values: dict[str, float | None] = Field(description="Size (chunks, as a string) -> value.")
    factor: float | None = Field(default=None, description="Value at the largest size / value at the smallest.")
    note: str = ""


class EmbeddingInfo(BaseModel):
    backend: str
    baseline_backend: str
    batch_size: int
    model_load_s: float
    onnx_file: str | None = None
    pool_sources: int = 0
    pool_embed_s: float | None = None


class BenchReport(BaseModel):
    started_at: datetime
    seconds: float
    cpus: int
    load_avg_start: list[float]
    load_avg_end: list[float]
    sizes: list[int]
    queries: int
    model_max_chunks: int
    baseline_max_chunks: int
    embedding: EmbeddingInfo
    chunking: dict[str, int]
    definitions: dict[str, str]
    ingest: list[IngestRun] = Field(default_factory=list)
    reingest: list[ReingestRun] = Field(default_factory=list)
    latency: list[LatencyRun] = Field(default_factory=list)
    startup: StartupRun | None = None
    memory: MemoryReport
    targets: list[TargetCheck] = Field(default_factory=list)
    growth: list[GrowthRow] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


DEFINITIONS = {
    "pages": f"PDF pages / PPTX slides as loaded; other files words/{WORDS_PER_PAGE} (Markdown page = ~500 words).",
    "chunks_per_s": "chunks written / wall seconds of the first ingest (load + chunk + embed + store).",
    "baseline": "LangChain: our loaders' text per file, RecursiveCharacterTextSplitter(1000, 200), "
    "langchain_chroma.Chroma, full rebuild every ingest, same MiniLM model via sentence-transformers (torch).",
    "baseline_rebuild": "A baseline re-ingest is a full rebuild whether or not anything changed; it is measured "
    "once per library (after the one-file edit) and is the denominator of both re-ingest ratios.",
    "vectors": "model: every chunk embedded by MiniLM. proxy: libraries above model_max_chunks get vectors "
    "averaged from real MiniLM vectors of their source passages; all other stages are real.",
    "latency": "CoursePilot.ask wall time (retrieval + extractive answer), query cache off, after warm-up.",
    "memory": "ru_maxrss of the benchmark process; per-phase peak RSS sampled by psutil every 0.1 s.",
    "reingest": "In-process with the model already loaded; a cold CLI run adds process start and model load.",
}


# -- memory sampling -------------------------------------------------------------------------------------------
class _MemorySampler:
    """Samples this process's RSS (and optionally another process's) every `interval` seconds, per phase."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._phase: str | None = None
        self.phases: dict[str, float] = {}
        self.external_peak: float | None = None
        self._external: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def watch(self, pid: int | None) -> None:
        import psutil

        self._external = psutil.Process(pid) if pid else None

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss / 2**20
        if self._phase is not None:
            self.phases[self._phase] = max(self.phases.get(self._phase, 0.0), rss)
        if self._external is not None:
            with contextlib.suppress(Exception):
                ext = self._external.memory_info().rss / 2**20
                self.external_peak = max(self.external_peak or 0.0, ext)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self._sample()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        previous = self._phase
        self._phase = name
        self._sample()
        try:
            yield
        finally:
            self._sample()
            self._phase = previous

    def peak(self, name: str) -> float | None:
        value = self.phases.get(name)
        return round(value, 1) if value is not None else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _ru_maxrss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(raw / (2**20 if sys.platform == "darwin" else 1024), 1)


# -- text pool and synthetic libraries -----------------------------------------------------------------------
@dataclass
class _Source:
    title: str
    sentences: list[str]
    tokens: list[int]
    origin: str


@dataclass
class TextPool:
    """Passages to recombine: sample-library sections and SciFact abstracts, split into sentences."""

    sources: list[_Source]
    headings: list[str]
    sentence_source: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, source in enumerate(self.sources):
            for sentence in source.sentences:
                self.sentence_source.setdefault(sentence, i)

    def fingerprint(self) -> str:
        digest = hashlib.sha1()
        for source in self.sources:
            digest.update(source.origin.encode() + b"\0" + "\n".join(source.sentences).encode() + b"\0")
        return digest.hexdigest()[:16]

    def source_text(self, i: int) -> str:
        source = self.sources[i]
        return f"{source.title}\n{' '.join(source.sentences)}"


def build_pool(sample_library: Path, scifact_dir: Path | None = SCIFACT_DIR, scifact_docs: int = 1200) -> TextPool:
    """Sentences from every section of the sample library (via our loaders) and the first SciFact abstracts."""
    from assistant.core.text import count_tokens, split_sentences
    from ingest.loaders import load_document, supported_suffixes

    sources: list[_Source] = []
    headings: list[str] = []
    suffixes = supported_suffixes()
    for path in sorted(sample_library.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        try:
            doc = load_document(path)
        except Exception:  # a broken sample file only shrinks the pool
            continue
        for i, section in enumerate(doc.sections):
            sentences = [s for s in split_sentences(section.text) if len(s.split()) >= 4]
            if not sentences:
                continue
            title = section.heading_path[-1] if section.heading_path else doc.title
            headings.append(title)
            sources.append(_Source(title, sentences, [count_tokens(s) for s in sentences], f"sample:{path.name}#{i}"))
    if scifact_dir is not None and (scifact_dir / "corpus.jsonl").is_file() and scifact_docs > 0:
        added = 0
        with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if added >= scifact_docs:
                    break
                row = json.loads(line)
                sentences = [s for s in split_sentences(str(row.get("text") or "")) if len(s.split()) >= 4]
                title = " ".join(str(row.get("title") or "").split()[:9]).rstrip(".:,;")
                if not sentences or not title:
                    continue
                headings.append(title)
                sources.append(_Source(title, sentences, [count_tokens(s) for s in sentences], f"scifact:{row['_id']}"))
                added += 1
    if not sources:
        raise ValueError(f"no text found to build synthetic libraries from ({sample_library}, {scifact_dir})")
    return TextPool(sources=sources, headings=headings)


def _simulated_chunks(tokens: Sequence[int], size: int, overlap: int) -> int:
    """How many chunks `ingest.chunker.pack` makes of sentences with these token counts (same greedy rule)."""
    units: list[int] = []
    for t in tokens:
        units.extend([size] * (t // size) + ([t % size] if t % size else []) if t > size else [t])
    count = 0
    current: list[int] = []
    used = 0
    for unit in units:
        if current and used + unit > size:
            count += 1
            carried: list[int] = []
            carried_tokens = 0
            for prev in reversed(current):
                if carried_tokens + prev > overlap or carried_tokens + prev + unit > size:
                    break
                carried.insert(0, prev)
                carried_tokens += prev
            current, used = carried, carried_tokens
        current.append(unit)
        used += unit
    return count + (1 if current else 0)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "module"


class SyntheticLibrary(BaseModel):
    path: str
    target_chunks: int
    expected_chunks: int
    courses: int
    files: int
    words: int
    pages: float


def generate_library(
    root: Path, target_chunks: int, pool: TextPool, size_tokens: int = 256, overlap_tokens: int = 32, seed: int = 7
) -> SyntheticLibrary:
    """Write course folders of Markdown modules totalling about `target_chunks` chunks (deterministic per seed).

    Each course draws on a cluster of ~30 pool passages; each H2 section interleaves runs of consecutive sentences
    from 2-3 of them, sized (with the chunker's packing rule) to make 1-3 chunks.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = random.Random(seed * 1_000_003 + target_chunks)
    n = len(pool.sources)
    modules_total = max(1, math.ceil(target_chunks / CHUNKS_PER_MODULE))
    courses = max(1, math.ceil(modules_total / MODULES_PER_COURSE))
    made = words = files = 0
    levels = ["beginner", "intermediate", "advanced"]
    for c in range(courses):
        if made >= target_chunks:
            break
        cluster = [rng.randrange(n) for _ in range(30)]
        title = pool.sources[cluster[0]].title
        course_id = f"syn-{c:04d}"
        folder = root / f"{course_id}-{_slug(title)[:24]}"
        folder.mkdir()
        skills = sorted({pool.sources[i].title.split(" ")[0].lower() for i in cluster[:5]})
        manifest = {
            "id": course_id,
            "title": f"{title} ({c + 1})",
            "description": " ".join(pool.sources[cluster[1]].sentences[:2]),
            "level": levels[c % 3],
            "skills": skills,
        }
        (folder / "course.yaml").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        for m in range(MODULES_PER_COURSE):
            if made >= target_chunks:
                break
            want = min(CHUNKS_PER_MODULE, target_chunks - made)
            module_title = pool.headings[rng.randrange(len(pool.headings))]
            lines = [f"# {module_title}", ""]
            got = 0
            while got < want:
                goal = min(rng.choice([1, 1, 2, 2, 3]), want - got)
                heading = pool.headings[rng.randrange(len(pool.headings))]
                level = "###" if rng.random() < 0.2 else "##"
                picks = [cluster[rng.randrange(len(cluster))] for _ in range(rng.choice([2, 3]))]
                runs = []
                for i in picks:
                    src = pool.sources[i]
                    start = rng.randrange(len(src.sentences))
                    runs.append([(src.sentences[j], src.tokens[j]) for j in range(start, len(src.sentences))])
                chosen: list[tuple[str, int]] = []
                turn, left_in_run = 0, rng.choice([2, 3, 4])
                while True:
                    run = runs[turn % len(runs)]
                    if not run or left_in_run == 0:
                        turn += 1
                        left_in_run = rng.choice([2, 3, 4])
                        if not any(runs):  # the passages ran out: top up from another passage of the course
                            src = pool.sources[cluster[rng.randrange(len(cluster))]]
                            runs.append(list(zip(src.sentences, src.tokens, strict=True)))
                        continue
                    candidate = run.pop(0)
                    left_in_run -= 1
                    tokens = [t for _, t in chosen] + [candidate[1]]
                    if chosen and _simulated_chunks(tokens, size_tokens, overlap_tokens) > goal:
                        break
                    chosen.append(candidate)
                lines += [f"{level} {heading}", ""]
                i = 0
                while i < len(chosen):
                    step = rng.choice([2, 3, 4, 5])
                    lines += [" ".join(s for s, _ in chosen[i : i + step]), ""]
                    i += step
                words += sum(len(s.split()) for s, _ in chosen)
                got += _simulated_chunks([t for _, t in chosen], size_tokens, overlap_tokens)
            (folder / f"{m + 1:02d}-{_slug(module_title)}.md").write_text("\n".join(lines), encoding="utf-8")
            files += 1
            made += got
    return SyntheticLibrary(
        path=str(root),
        target_chunks=target_chunks,
        expected_chunks=made,
        courses=courses,
        files=files,
        words=words,
        pages=round(words / WORDS_PER_PAGE, 1),
    )


def edit_one_file(library: Path) -> Path:
    """Edit one Markdown module in the middle of the library: reword one paragraph, append a short section."""
    files = sorted(p for p in library.rglob("*.md") if p.is_file())
    if not files:
        raise ValueError(f"{library} has no Markdown module to edit")
    path = files[len(files) // 2]
    lines = path.read_text(encoding="utf-8").split("\n")
    body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith(("#", "-", "|", "```"))]
    if body:
        i = body[len(body) // 2]
        lines[i] = lines[i] + " This paragraph was revised for the benchmark's one-file edit."
    lines += [
        "",
        "## Revision notes",
        "",
        "This module was revised to reflect the latest guidance. The examples were checked again, "
        "and one paragraph was reworded so that the key point comes first.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def library_stats(library: Path) -> tuple[int, int, float]:
    """(files, words, pages) of a library as our loaders read it (pages as defined in DEFINITIONS)."""
    from ingest.loaders import load_document, supported_suffixes

    suffixes = supported_suffixes()
    files = words = 0
    pages = 0.0
    for path in sorted(library.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        try:
            doc = load_document(path)
        except Exception:
            continue
        n = sum(len(s.text.split()) for s in doc.sections)
        files += 1
        words += n
        pages += doc.pages if doc.pages else n / WORDS_PER_PAGE
    return files, words, round(pages, 1)


# -- embedders -------------------------------------------------------------------------------------------------
class _TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in embed_documents."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "embedder")
        self.dimensions = getattr(inner, "dimensions", 384)
        self.seconds = 0.0
        self.texts = 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return np.asarray(self.inner.embed_documents(texts), dtype=np.float32)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.inner.embed_query(text), dtype=np.float32)


class ProxyEmbedder:
    """Vectors for libraries too large to embed here, from real model vectors of the passages their text came from.

    A text's vector is the normalised mean of the pool-passage vectors of its known sentences (plus a little
    seeded noise, so two chunks never share a vector); a text with no known sentence gets a seeded random one.
    """

    def __init__(self, pool: TextPool, vectors: np.ndarray, noise: float = 0.02) -> None:
        self.pool = pool
        self.vectors = vectors
        self.noise = noise
        self.name = "proxy"
        self.dimensions = int(vectors.shape[1])

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        from assistant.core.text import split_sentences

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = {self.pool.sentence_source[s] for s in split_sentences(text) if s in self.pool.sentence_source}
            seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")
            rng = np.random.default_rng(seed)
            noise = rng.standard_normal(self.dimensions).astype(np.float32)
            if ids:
                vec = self.vectors[sorted(ids)].mean(axis=0)
                vec = vec / max(float(np.linalg.norm(vec)), 1e-9) + self.noise * noise / math.sqrt(self.dimensions)
            else:
                vec = noise
            out[row] = vec / max(float(np.linalg.norm(vec)), 1e-9)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def _langchain_embeddings(embedder: Any) -> Any:
    """A LangChain `Embeddings` over one of our embedders."""
    from langchain_core.embeddings import Embeddings

    class _Wrapped(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return np.asarray(embedder.embed_documents(texts), dtype=np.float32).tolist()

        def embed_query(self, text: str) -> list[float]:
            return np.asarray(embedder.embed_query(text), dtype=np.float32).tolist()

    return _Wrapped()


@contextlib.contextmanager
def _pipeline_embedder(embedder: Any) -> Iterator[None]:
    """Make the ingest pipeline embed with `embedder` (the retriever keeps the real model)."""
    import ingest.pipeline as pipeline_module

    original = pipeline_module.get_embedder
    pipeline_module.get_embedder = lambda _settings: embedder  # type: ignore[assignment,return-value]
    try:
        yield
    finally:
        pipeline_module.get_embedder = original


# -- our side --------------------------------------------------------------------------------------------------
def _index_settings(settings: Settings, index_dir: Path, library: Path) -> Settings:
    return settings.model_copy(
        update={
            "index": IndexSettings(dir=index_dir),
            "library": settings.library.model_copy(update={"dir": library}),
            "chroma": ChromaSettings(),
        }
    )


@dataclass
class _OursResult:
    chunks: int
    embedded: int
    seconds: float
    embed_seconds: float
    store_seconds: float


def ingest_ours(settings: Settings, library: Path, embedder: Any) -> _OursResult:
    """One `IngestPipeline.run` with `embedder` doing the embedding; times the model and the Chroma writes."""
    from assistant.index.library import LibraryIndex
    from ingest.pipeline import IngestPipeline

    timed = _TimedEmbedder(embedder)
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
    with _pipeline_embedder(timed):
        started = time.perf_counter()
        report = IngestPipeline(settings, index=index).run(library)
        seconds = time.perf_counter() - started
    if not report.ok:
        failed = [f"{f.path}: {f.message}" for f in report.files if f.status == "failed"][:3]
        raise RuntimeError(f"ingest of {library} failed: {failed or report.problems}")
    index.ledger.close()
    return _OursResult(report.chunks_total, report.chunks_embedded, seconds, timed.seconds, store_seconds)


def _ingest_row(
    library: str,
    system: Literal["coursepilot", "baseline"],
    vectors: Vectors,
    embedder: str,
    size: tuple[int, int, float],
    timing: tuple[int, float, float, float | None],
    peak_rss_mb: float | None,
    primary: bool = True,
) -> IngestRun:
    """The report row of one first ingest (either system).

    `size` is (files, words, pages) of the library; `timing` is (chunks, seconds, model seconds, store seconds).
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
        chunks_per_s=_rate(chunks, seconds),
        pages_per_s=_rate(pages, seconds),
        pipeline_seconds_per_1k_chunks=round((seconds - embed_seconds) * 1000 / chunks, 3) if chunks else None,
        peak_rss_mb=peak_rss_mb,
    )


def _ours_row(
    library: str,
    vectors: Vectors,
    embedder: str,
    size: tuple[int, int, float],
    result: _OursResult,
    peak_rss_mb: float | None,
    primary: bool = True,
) -> IngestRun:
    timing = (result.chunks, result.seconds, result.embed_seconds, result.store_seconds)
    return _ingest_row(library, "coursepilot", vectors, embedder, size, timing, peak_rss_mb, primary)


# -- the baseline ----------------------------------------------------------------------------------------------
@dataclass
class _BaselineResult:
    chunks: int
    seconds: float
    embed_seconds: float


def baseline_documents(library: Path) -> list[Any]:
    """Each supported file as one LangChain Document: its sections' headings and text, concatenated."""
    from langchain_core.documents import Document

    from ingest.loaders import load_document, supported_suffixes

    suffixes = supported_suffixes()
    docs = []
    for path in sorted(library.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        try:
            loaded = load_document(path)
        except Exception:
            continue
        parts = [(f"{s.heading_path[-1]}\n" if s.heading_path else "") + s.text for s in loaded.sections]
        docs.append(
            Document(page_content="\n\n".join(parts), metadata={"source": path.relative_to(library).as_posix()})
        )
    return docs


def ingest_baseline(library: Path, persist_dir: Path, embedder: Any) -> _BaselineResult:
    """The plain LangChain pipeline, as a full rebuild: delete the collection, load, split, embed, add."""
    from langchain_chroma import Chroma
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    timed = _TimedEmbedder(embedder)
    embeddings = _langchain_embeddings(timed)
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
    return _BaselineResult(len(chunks), seconds, timed.seconds)


# -- queries ---------------------------------------------------------------------------------------------------
def bench_questions(n: int, scifact_dir: Path | None = SCIFACT_DIR, seed: int = 11) -> list[str]:
    """`n + WARMUP_QUERIES` distinct questions: the golden set's questions interleaved with SciFact claims."""
    import yaml

    golden: list[str] = []
    if GOLDEN.is_file():
        data = yaml.safe_load(GOLDEN.read_text(encoding="utf-8")) or {}
        golden = [str(c["question"]) for c in data.get("cases", []) if c.get("question")]
    claims: list[str] = []
    if scifact_dir is not None and (scifact_dir / "queries.jsonl").is_file():
        with open(scifact_dir / "queries.jsonl", encoding="utf-8") as fh:
            claims = [str(json.loads(line)["text"]) for line in fh if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(golden)
    rng.shuffle(claims)
    out: list[str] = []
    seen: set[str] = set()
    for pair in zip(golden + [""] * len(claims), claims + [""] * len(golden), strict=False):
        for q in pair:
            if q and q not in seen:
                seen.add(q)
                out.append(q)
    need = n + WARMUP_QUERIES
    base = list(out) or ["How do I give useful feedback?"]
    i = 0
    while len(out) < need:  # more queries than questions: vary them (the query cache is off anyway)
        out.append(f"{base[i % len(base)]} ({i // len(base) + 2})")
        i += 1
    return out[:need]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def measure_latency(settings: Settings, questions: Sequence[str]) -> dict[str, Any]:
    """Warm up, then time `CoursePilot.ask` over `questions[WARMUP_QUERIES:]`."""
    from assistant.pilot import CoursePilot

    pilot = CoursePilot(settings)
    pilot.warm_up()
    for q in questions[:WARMUP_QUERIES]:
        pilot.ask(q)
    times: list[float] = []
    stages: dict[str, list[float]] = {}
    refused = 0
    for q in questions[WARMUP_QUERIES:]:
        started = time.perf_counter()
        answer = pilot.ask(q)
        times.append((time.perf_counter() - started) * 1000)
        refused += int(answer.refused)
        for name, value in answer.timings_ms.items():
            stages.setdefault(name, []).append(float(value))
    pilot.index.ledger.close()
    return {
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 2) if times else 0.0,
        "p95_ms": round(_percentile(times, 0.95), 2),
        "mean_ms": round(statistics.fmean(times), 2) if times else 0.0,
        "max_ms": round(max(times), 2) if times else 0.0,
        "stage_p50_ms": {k: round(statistics.median(v), 2) for k, v in sorted(stages.items())},
        "refused": refused,
    }


# -- Chroma server ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def chroma_server(data_dir: Path, timeout: float = 90.0) -> Iterator[tuple[str, int, int]]:
    """`chroma run` on a free loopback port (as tests/conftest.py does); yields (host, port, pid)."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(chroma).exists():
        raise RuntimeError("the `chroma` command (from the chromadb package) is not installed")
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"chroma-server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [chroma, "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"chroma server exited: {log_path.read_text()[-2000:]}") from None
                if time.time() > deadline:
                    raise RuntimeError(f"chroma server did not start within {timeout:.0f} s") from None
                time.sleep(0.3)
        yield "127.0.0.1", port, proc.pid
    finally:
        stop_process(proc, timeout=15)


def copy_to_server(embedded: Settings, server: Settings, page: int = 5000) -> float:
    """Copy the embedded collection's vectors and metadata to the server (no re-embedding); seconds."""
    from assistant.index.store import VectorStore

    started = time.perf_counter()
    source = VectorStore(embedded)
    target = VectorStore(server)
    target.drop()
    offset = 0
    while True:
        got = source.collection.get(include=["embeddings", "metadatas"], limit=page, offset=offset)
        ids = got["ids"]
        if not ids:
            break
        for start in range(0, len(ids), 2000):
            end = start + 2000
            target.collection.add(
                ids=ids[start:end],
                embeddings=np.asarray(got["embeddings"][start:end], dtype=np.float32),
                metadatas=got["metadatas"][start:end],
            )
        offset += len(ids)
        if len(ids) < page:
            break
    return time.perf_counter() - started


# -- start-up to first answer ----------------------------------------------------------------------------------
UI_QUESTION = "What is the SBI model?"


def _ui_first_answer(settings: Settings, work_dir: Path, ui_launcher: UILauncher, timeout: float = 300.0) -> StartupRun:
    """Start the chat UI as `run_ui` does, sign in as the demo user, ask over its socket, time the first answer."""
    import requests
    import socketio

    ui_settings = settings.model_copy(
        update={
            "database": DatabaseSettings(url=f"sqlite:///{work_dir / 'ui.db'}"),
            "ui": UISettings(users="", auth_secret=SecretStr(uuid.uuid4().hex + uuid.uuid4().hex)),
        }
    )
    port = free_port()
    spec = ui_launcher(ui_settings, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    log_path = work_dir / "ui-server.log"
    run = StartupRun(kind="ui", label="UI start to first answer (Chainlit, socket.io)", ok=False, question=UI_QUESTION)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(spec.argv, env=spec.env, cwd=spec.cwd, stdout=log, stderr=subprocess.STDOUT)
    client = socketio.Client(reconnection=False)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the chat server did not start: {log_path.read_text()[-1500:]}")
            time.sleep(0.2)
        run.seconds_to_health = round(time.perf_counter() - started, 3)
        login = requests.post(
            f"{base}/login", data={"username": DEMO_ID, "password": DEMO_PASSWORD}, timeout=30, allow_redirects=False
        )
        login.raise_for_status()
        cookies = "; ".join(f"{c.name}={c.value}" for c in login.cookies)
        if not cookies:
            raise RuntimeError(f"sign-in returned no session cookie (HTTP {login.status_code})")
        done = threading.Event()
        state: dict[str, Any] = {"content": "", "first_token": None, "answered": False}

        def on_message(data: Any) -> None:
            if isinstance(data, dict) and data.get("type") == "assistant_message" and data.get("output"):
                state["content"] = str(data["output"])
                state["answered"] = True

        def on_token(_data: Any) -> None:
            if state["first_token"] is None:
                state["first_token"] = time.perf_counter()

        def on_task_end(_data: Any = None) -> None:
            if state["answered"]:
                done.set()

        client.on("new_message", on_message)
        client.on("update_message", on_message)
        client.on("stream_token", on_token)
        client.on("task_end", on_task_end)
        client.connect(
            base,
            headers={"Cookie": cookies},
            auth={"clientType": "webapp", "sessionId": str(uuid.uuid4()), "threadId": None, "userEnv": "{}"},
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            wait_timeout=30,
        )
        client.emit("connection_successful")
        message = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": DEMO_ID,
            "type": "user_message",
            "output": UI_QUESTION,
            "createdAt": datetime.now(UTC).isoformat(),
        }
        client.emit("client_message", {"message": message, "fileReferences": []})
        if not done.wait(max(1.0, deadline - time.time())):
            raise RuntimeError("no complete answer arrived before the timeout")
        run.seconds_to_first_answer = round(time.perf_counter() - started, 3)
        if state["first_token"] is not None:
            run.seconds_to_first_token = round(state["first_token"] - started, 3)
        run.answer_preview = " ".join(state["content"].split())[:160]
        run.ok = True
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
        stop_process(proc, timeout=20)
    return run


def _cli_first_answer(settings: Settings, timeout: float = 300.0) -> StartupRun:
    """`python -m assistant.apps.cli ask` in a fresh process over the given index: cold start to first answer."""
    env = dict(os.environ)
    env.update(
        {
            "COURSEPILOT_INDEX_DIR": str(settings.index.dir),
            "COURSEPILOT_LIBRARY_DIR": str(settings.library.dir),
            "COURSEPILOT_EMBEDDING_BACKEND": str(settings.embedding.backend),
            "HF_HUB_OFFLINE": "1",
        }
    )
    run = StartupRun(kind="cli", label="cold start to first answer (CLI)", ok=False, question=UI_QUESTION)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "assistant.apps.cli", "ask", UI_QUESTION, "--json"],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        run.seconds_to_first_answer = round(time.perf_counter() - started, 3)
        if done.returncode != 0:
            run.error = (done.stderr or done.stdout)[-500:]
        else:
            run.answer_preview = " ".join(str(json.loads(done.stdout).get("text", "")).split())[:160]
            run.ok = True
    except (subprocess.TimeoutExpired, ValueError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"[:500]
    return run


def first_answer(settings: Settings, work_dir: Path, ui_launcher: UILauncher | None) -> StartupRun:
    """Seconds from starting the Chainlit UI to its first answer; the CLI cold start if the UI run fails."""
    if ui_launcher is None:
        run = StartupRun(kind="ui", label="UI start to first answer", ok=False, question=UI_QUESTION)
        run.error = "no UI launcher was given (run it as `coursepilot bench`)"
    else:
        run = _ui_first_answer(settings, work_dir, ui_launcher)
    if run.ok:
        return run
    cli = _cli_first_answer(settings)
    cli.label += f" — the UI measurement failed ({run.error})"
    return cli


# -- the run ---------------------------------------------------------------------------------------------------
def _rate(count: float | None, seconds: float | None) -> float | None:
    if count is None or not seconds:
        return None
    return round(count / seconds, 2)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 1)


def _load_avg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


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
    load_start = _load_avg()
    work = Path(work_dir) if work_dir is not None else Path(".coursepilot") / "bench"
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("index", "baseline", "libs", "server"):
        shutil.rmtree(work / sub, ignore_errors=True)
    sample_src = Path(settings.library.dir)
    mem = _MemorySampler()
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
        idx_settings = _index_settings(base, work / "index" / name, library)
        ours_embedder = ours_model if vectors == "model" else proxy_embedder()
        label = info.backend if vectors == "model" else "proxy"
        phase = f"ingest {name} coursepilot"
        with mem.phase(phase):
            say(f"{name}: CoursePilot first ingest ({vectors} vectors)")
            ours = ingest_ours(idx_settings, library, ours_embedder)
        report.ingest.append(_ours_row(name, vectors, label, (files, words, pages), ours, mem.peak(phase)))
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
                _ingest_row(
                    name,
                    "baseline",
                    vectors,
                    "torch" if vectors == "model" else "proxy",
                    (files, words, pages),
                    (first.chunks, first.seconds, first.embed_seconds, None),
                    mem.peak(phase),
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
            rebuild: _BaselineResult | None = None
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
                unchanged_speedup=_ratio(rebuild_s, unchanged.seconds),
                edit_speedup=_ratio(rebuild_s, after_edit.seconds),
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
            extra_settings = _index_settings(extra, work / "index" / f"sample-{backend}", sample_copy)
            phase = f"ingest sample coursepilot ({backend})"
            with mem.phase(phase):
                say(f"sample: CoursePilot first ingest with the {backend} backend (comparison)")
                model = get_embedder(extra.embedding)
                model.embed_query("warm up")
                run = ingest_ours(extra_settings, sample_copy, model)
            report.ingest.append(
                _ours_row("sample", "model", backend, (files, words, pages), run, mem.peak(phase), primary=False)
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
            report.latency.append(
                LatencyRun(
                    library=name,
                    size=size,
                    chunks=chunks,
                    mode="embedded",
                    vectors=vectors,
                    peak_rss_mb=mem.peak(phase),
                    **lat,
                )
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
                report.latency.append(
                    LatencyRun(
                        library=name,
                        size=size,
                        chunks=chunks,
                        mode="server",
                        vectors=vectors,
                        peak_rss_mb=mem.peak(phase),
                        server_rss_mb=round(mem.external_peak, 1) if mem.external_peak else None,
                        load_seconds=round(load_s, 2),
                        **lat,
                    )
                )
    finally:
        server_ctx.close()
        mem.close()

    report.memory = MemoryReport(
        ru_maxrss_mb=_ru_maxrss_mb(),
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
    report.load_avg_end = _load_avg()
    report.seconds = round(time.perf_counter() - t_start, 1)
    return report


# -- targets and growth ----------------------------------------------------------------------------------------
def _largest_model_pair(report: BenchReport) -> tuple[IngestRun, IngestRun] | None:
    """The largest library both systems ingested with real model vectors."""
    pairs = []
    for ours in report.ingest:
        if ours.system != "coursepilot" or not ours.primary or ours.vectors != "model" or not ours.chunks:
            continue
        other = next(
            (
                r
                for r in report.ingest
                if r.library == ours.library and r.system == "baseline" and r.skipped is None and r.chunks
            ),
            None,
        )
        if other is not None:
            pairs.append((ours, other))
    return max(pairs, key=lambda p: p[0].chunks or 0) if pairs else None


def evaluate_targets(report: BenchReport) -> list[TargetCheck]:
    checks: list[TargetCheck] = []
    model_reingest = [r for r in report.reingest if r.vectors == "model" and r.baseline_rebuild_s is not None]
    basis_r = max(model_reingest, key=lambda r: r.chunks) if model_reingest else None
    for name, attr, target in (
        ("re-ingest, unchanged library vs baseline rebuild", "unchanged_speedup", TARGET_UNCHANGED),
        ("re-ingest, one file edited vs baseline rebuild", "edit_speedup", TARGET_EDIT),
    ):
        value = getattr(basis_r, attr) if basis_r else None
        checks.append(
            TargetCheck(
                name=name,
                target=f">= {target:g}x",
                measured=value,
                passed=None if value is None else value >= target,
                basis=f"{basis_r.library} ({basis_r.chunks:,} chunks, model vectors)" if basis_r else "not measured",
            )
        )
    pair = _largest_model_pair(report)
    ratio = _ratio(pair[0].chunks_per_s, pair[1].chunks_per_s) if pair else None
    checks.append(
        TargetCheck(
            name="first ingest chunks/s vs baseline",
            target=f">= {TARGET_FIRST_INGEST:g}x",
            measured=ratio,
            passed=None if ratio is None else ratio >= TARGET_FIRST_INGEST,
            basis=f"{pair[0].library} (model vectors; pages/s ratio "
            f"{_ratio(pair[0].pages_per_s, pair[1].pages_per_s)}x)"
            if pair
            else "not measured",
        )
    )
    big = [r for r in report.latency if r.mode == "embedded" and r.size >= TARGET_P95_AT]
    run = min(big, key=lambda r: r.size) if big else None
    checks.append(
        TargetCheck(
            name=f"p95 query latency, embedded, {TARGET_P95_AT:,} chunks",
            target=f"<= {TARGET_P95_MS:g} ms",
            measured=run.p95_ms if run else None,
            passed=None if run is None else run.p95_ms <= TARGET_P95_MS,
            basis=f"{run.library} ({run.chunks:,} chunks, {run.vectors} vectors, {run.queries} queries)"
            if run
            else "no library that large in this run",
        )
    )
    return checks


def growth_table(report: BenchReport) -> list[GrowthRow]:
    """How each cost grows from the smallest to the largest synthetic size."""
    sizes = sorted({r.size for r in report.latency} | set(report.sizes))

    def row(metric: str, unit: str, pick: Callable[[int], float | None], note: str = "") -> GrowthRow:
        values = {str(s): pick(s) for s in sizes}
        present = [v for v in values.values() if v is not None]
        factor = round(present[-1] / present[0], 2) if len(present) >= 2 and present[0] else None
        return GrowthRow(metric=metric, unit=unit, values=values, factor=factor, note=note)

    def ingest_of(size: int, system: str) -> IngestRun | None:
        return next(
            (
                r
                for r in report.ingest
                if r.library == f"synthetic-{size}" and r.system == system and r.primary and r.chunks
            ),
            None,
        )

    def reingest_of(size: int) -> ReingestRun | None:
        return next((r for r in report.reingest if r.library == f"synthetic-{size}"), None)

    def latency_of(size: int, mode: str) -> LatencyRun | None:
        return next((r for r in report.latency if r.size == size and r.mode == mode), None)

    def chunks(size: int) -> float | None:
        run = ingest_of(size, "coursepilot")
        return float(run.chunks) if run and run.chunks else None

    def outside_model(system: str) -> Callable[[int], float | None]:
        def pick(size: int) -> float | None:
            run = ingest_of(size, system)
            return run.pipeline_seconds_per_1k_chunks if run else None

        return pick

    def store_per_1k(size: int) -> float | None:
        run = ingest_of(size, "coursepilot")
        if run is None or run.store_seconds is None or not run.chunks:
            return None
        return round(run.store_seconds * 1000 / run.chunks, 3)

    def ingest_rss(size: int) -> float | None:
        run = ingest_of(size, "coursepilot")
        return run.peak_rss_mb if run else None

    def reingest(attr: str) -> Callable[[int], float | None]:
        def pick(size: int) -> float | None:
            run = reingest_of(size)
            return float(getattr(run, attr)) if run else None

        return pick

    def latency(mode: str, attr: str) -> Callable[[int], float | None]:
        def pick(size: int) -> float | None:
            run = latency_of(size, mode)
            return float(getattr(run, attr)) if run else None

        return pick

    return [
        row("chunks in the index", "chunks", chunks),
        row(
            "CoursePilot ingest outside the model",
            "s per 1k chunks",
            outside_model("coursepilot"),
            "load + chunk + ledger + BM25 + Chroma; comparable across model and proxy vectors",
        ),
        row("baseline ingest outside the model", "s per 1k chunks", outside_model("baseline")),
        row("CoursePilot Chroma writes", "s per 1k chunks", store_per_1k),
        row("re-ingest, unchanged", "s", reingest("ours_unchanged_s")),
        row("re-ingest, one file edited", "s", reingest("ours_edit_s")),
        row("ask p50, embedded", "ms", latency("embedded", "p50_ms")),
        row("ask p95, embedded", "ms", latency("embedded", "p95_ms")),
        row("ask p50, Chroma server", "ms", latency("server", "p50_ms")),
        row("ask p95, Chroma server", "ms", latency("server", "p95_ms")),
        row("peak RSS during ingest", "MB", ingest_rss, "whole process, cumulative"),
    ]


# -- rendering -------------------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def _status(passed: bool | None) -> str:
    return "not measured" if passed is None else ("PASS" if passed else "FAIL")


def table_rows(report: BenchReport) -> list[tuple[str, ...]]:
    """(section, measure, library, CoursePilot, baseline, ratio, target/result) rows shared by every renderer."""
    rows: list[tuple[str, ...]] = []
    for ours in (r for r in report.ingest if r.system == "coursepilot"):
        found = next((r for r in report.ingest if r.library == ours.library and r.system == "baseline"), None)
        other = found if found is not None and found.skipped is None and found.chunks else None
        tag = f"{ours.library} [{ours.vectors}]" + ("" if ours.primary else f" [{ours.embedder}, comparison]")
        rows.append(
            (
                "ingest",
                "first ingest, chunks/s",
                tag,
                f"{_fmt(ours.chunks_per_s)} ({ours.chunks or 0:,} ch, {ours.embedder})",
                f"{_fmt(other.chunks_per_s)} ({other.chunks or 0:,} ch, {other.embedder})" if other else "skipped",
                _fmt(_ratio(ours.chunks_per_s, other.chunks_per_s if other else None), 2, "x"),
                (found.skipped or "") if found is not None else "",
            )
        )
        rows.append(
            (
                "ingest",
                "first ingest, pages/s",
                tag,
                f"{_fmt(ours.pages_per_s, 2)} ({ours.pages:,.0f} p, {ours.seconds or 0:.1f} s)",
                f"{_fmt(other.pages_per_s, 2)} ({other.seconds or 0:.1f} s)" if other else "skipped",
                _fmt(_ratio(ours.pages_per_s, other.pages_per_s if other else None), 2, "x"),
                "",
            )
        )
    for r in report.reingest:
        tag = f"{r.library} [{r.vectors}]"
        rebuild = _fmt(r.baseline_rebuild_s, 2, " s") if r.baseline_rebuild_s is not None else "skipped"
        rows.append(
            (
                "re-ingest",
                "unchanged",
                tag,
                _fmt(r.ours_unchanged_s, 2, " s"),
                rebuild,
                _fmt(r.unchanged_speedup, 1, "x"),
                r.note,
            )
        )
        rows.append(
            (
                "re-ingest",
                "one file edited",
                tag,
                f"{_fmt(r.ours_edit_s, 2, ' s')} ({r.ours_edit_chunks_embedded} embedded)",
                rebuild,
                _fmt(r.edit_speedup, 1, "x"),
                r.note,
            )
        )
    for lat in report.latency:
        rows.append(
            (
                "latency",
                f"ask p50 / p95 ({lat.mode})",
                f"{lat.library} [{lat.vectors}]",
                f"{lat.p50_ms:.1f} / {lat.p95_ms:.1f} ms ({lat.chunks:,} ch, {lat.queries} q)",
                "",
                "",
                "",
            )
        )
    if report.startup is not None:
        s = report.startup
        rows.append(
            (
                "start-up",
                s.label,
                "sample",
                f"{_fmt(s.seconds_to_first_answer, 1, ' s')}" + ("" if s.ok else f" FAILED: {s.error}"),
                "",
                "",
                f"health after {_fmt(s.seconds_to_health, 1, ' s')}" if s.seconds_to_health else "",
            )
        )
    rows.append(("memory", "ru_maxrss (whole run)", "", f"{report.memory.ru_maxrss_mb:,.0f} MB", "", "", ""))
    for phase, peak in report.memory.phases.items():
        rows.append(("memory", f"peak RSS: {phase}", "", f"{peak:,.0f} MB", "", "", ""))
    if report.memory.chroma_server_peak_mb:
        rows.append(
            ("memory", "Chroma server peak RSS", "", f"{report.memory.chroma_server_peak_mb:,.0f} MB", "", "", "")
        )
    for t in report.targets:
        rows.append(("target", t.name, t.basis, _fmt(t.measured, 1), "", t.target, _status(t.passed)))
    return rows


def render_table(report: BenchReport) -> Table:
    """The whole report as one rich Table (sections: ingest, re-ingest, latency, start-up, memory, targets)."""
    from rich.table import Table

    table = Table(
        title=f"CoursePilot benchmark ({report.cpus} cores, load {report.load_avg_start} -> {report.load_avg_end}, "
        f"{report.seconds:.0f} s, embedding {report.embedding.backend})",
        show_lines=False,
    )
    for column in ("measure", "library", "CoursePilot", "baseline", "ratio", "target / note"):
        table.add_column(column, overflow="fold")
    section = None
    for row in table_rows(report):
        if section is not None and row[0] != section:
            table.add_section()
        section = row[0]
        status = row[6]
        if status in ("PASS", "FAIL"):
            status = f"[{'green' if status == 'PASS' else 'red'}]{status}[/] ({row[5]})"
            table.add_row(row[1], row[2], row[3], row[4], "", status)
        else:
            table.add_row(*row[1:])
    return table


def render_growth(report: BenchReport) -> Table:
    from rich.table import Table

    sizes = sorted({int(k) for g in report.growth for k in g.values})
    table = Table(title="Cost growth across synthetic library sizes")
    table.add_column("metric")
    table.add_column("unit")
    for s in sizes:
        table.add_column(f"{s:,}", justify="right")
    table.add_column("factor", justify="right")
    for g in report.growth:
        table.add_row(g.metric, g.unit, *[_fmt(g.values.get(str(s)), 2) for s in sizes], _fmt(g.factor, 2, "x"))
    return table


def render_markdown(report: BenchReport) -> str:
    """The same figures as Markdown tables (for READMEs and reviews)."""
    lines = [
        "| section | measure | library | CoursePilot | baseline | ratio | target / result |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table_rows(report):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    sizes = sorted({int(k) for g in report.growth for k in g.values})
    if sizes:
        lines += ["", "| metric | unit | " + " | ".join(f"{s:,}" for s in sizes) + " | factor |"]
        lines.append("|---|---|" + "---|" * (len(sizes) + 1))
        for g in report.growth:
            cells = [_fmt(g.values.get(str(s)), 2) for s in sizes]
            lines.append(f"| {g.metric} | {g.unit} | " + " | ".join(cells) + f" | {_fmt(g.factor, 2, 'x')} |")
    return "\n".join(lines)


def write_plot(report: BenchReport, path: Path) -> Path:
    """PNG: ask latency (p50/p95, embedded and server) vs corpus size, and first-ingest chunks/s ours vs baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for mode, colour in (("embedded", "tab:blue"), ("server", "tab:orange")):
        runs = sorted((r for r in report.latency if r.mode == mode), key=lambda r: r.chunks)
        if not runs:
            continue
        xs = [max(r.chunks, 1) for r in runs]
        left.plot(xs, [r.p50_ms for r in runs], "o-", color=colour, label=f"p50 {mode}")
        left.plot(xs, [r.p95_ms for r in runs], "s--", color=colour, label=f"p95 {mode}")
    left.axhline(TARGET_P95_MS, color="grey", linestyle=":", label=f"target p95 {TARGET_P95_MS:g} ms")
    left.set_xscale("log")
    left.set_xlabel("chunks in the index")
    left.set_ylabel("CoursePilot.ask latency (ms)")
    left.set_title("Query latency vs corpus size")
    left.legend(fontsize=8)
    left.grid(True, which="both", alpha=0.3)

    libraries = [r.library for r in report.ingest if r.system == "coursepilot" and r.primary]
    ours = [
        next(
            (
                r.chunks_per_s or 0.0
                for r in report.ingest
                if r.library == lib and r.system == "coursepilot" and r.primary
            ),
            0.0,
        )
        for lib in libraries
    ]
    theirs = [
        next((r.chunks_per_s or 0.0 for r in report.ingest if r.library == lib and r.system == "baseline"), 0.0)
        for lib in libraries
    ]
    vectors = [
        next((r.vectors for r in report.ingest if r.library == lib and r.system == "coursepilot"), "model")
        for lib in libraries
    ]
    xs_bar = np.arange(len(libraries))
    width = 0.38
    right.bar(xs_bar - width / 2, ours, width, label=f"CoursePilot ({report.embedding.backend})", color="tab:green")
    right.bar(xs_bar + width / 2, theirs, width, label="LangChain baseline (torch)", color="tab:grey")
    for i, v in enumerate(theirs):
        if v == 0.0:  # log axis: place the label in axes coordinates
            right.annotate(
                "baseline\nskipped",
                (float(xs_bar[i] + width / 2), 0.02),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    right.set_xticks(xs_bar)
    right.set_xticklabels([f"{lib}\n[{v} vectors]" for lib, v in zip(libraries, vectors, strict=True)], fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("first ingest, chunks/s (log)")
    right.set_title("Ingest throughput (proxy-vector rows exclude the model)")
    right.legend(fontsize=8)
    right.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"CoursePilot benchmark, {report.started_at:%Y-%m-%d %H:%M} UTC, {report.cpus} cores")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- entry point for `coursepilot bench` ---------------------------------------------------------------------------
# The smoke run CI executes: one small synthetic library, a small text pool, no server or UI.
QUICK: dict[str, Any] = {
    "sizes": (300,),
    "queries": 10,
    "include_server": False,
    "include_ui": False,
    "pool_docs": 60,
}


def bench_command(
    settings: Settings,
    *,
    sizes: Sequence[int] | None = None,
    queries: int | None = None,
    quick: bool = False,
    include_server: bool | None = None,
    include_ui: bool | None = None,
    work_dir: Path | None = None,
    model_max_chunks: int = 0,
    baseline_max_chunks: int = 100_000,
    pool_docs: int | None = None,
    extra_backends: Sequence[str] = (),
    as_json: bool = False,
    json_path: Path | None = None,
    plot: Path | None = None,
    markdown: bool = False,
    ui_launcher: UILauncher | None = None,
) -> int:
    """What `coursepilot bench` and `python -m evals.bench` run: the benchmark, then a table (or JSON on stdout),
    optionally a JSON file, a plot and the README's Markdown.

    Returns 0 when every measured target passes, 1 otherwise (an unmeasured target does not fail the run).
    """
    from rich.console import Console

    chosen: dict[str, Any] = dict(QUICK) if quick else {}
    for key, value in (
        ("sizes", tuple(sizes) if sizes else None),
        ("queries", queries),
        ("include_server", include_server),
        ("include_ui", include_ui),
        ("pool_docs", pool_docs),
    ):
        if value is not None:
            chosen[key] = value
    err = Console(stderr=True)
    report = run_bench(
        settings,
        work_dir=work_dir,
        progress=lambda msg: err.print(f"{datetime.now():%H:%M:%S} {msg}", markup=False, highlight=False),
        model_max_chunks=model_max_chunks,
        baseline_max_chunks=baseline_max_chunks,
        extra_backends=tuple(extra_backends),
        ui_launcher=ui_launcher,
        **chosen,
    )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(report.model_dump_json(indent=2))
    if plot is not None:
        write_plot(report, plot)
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        out = Console(width=200)
        out.print(render_table(report))
        if report.growth:
            out.print(render_growth(report))
        for note in report.notes:
            out.print(f"Note: {note}", markup=False, highlight=False)
        if plot is not None:
            out.print(f"Plot: {plot}", markup=False, highlight=False)
        if markdown:
            print(render_markdown(report))
    return 0 if all(t.passed is not False for t in report.targets) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m evals.bench`: the same run as `coursepilot bench`, with every knob (settings from env/.env)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m evals.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="synthetic sizes in chunks")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the report here")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--no-ui", action="store_true")
    parser.add_argument("--model-max-chunks", type=int, default=0)
    parser.add_argument("--baseline-max-chunks", type=int, default=100_000)
    parser.add_argument("--pool-docs", type=int, default=None)
    parser.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None, help="CoursePilot's backend")
    parser.add_argument("--extra-backends", nargs="*", default=["torch"], help="extra sample-library ingest rows")
    args = parser.parse_args(argv)

    settings = Settings()
    if args.backend:
        settings = settings.model_copy(
            update={"embedding": settings.embedding.model_copy(update={"backend": args.backend})}
        )
    return bench_command(
        settings,
        sizes=args.sizes,
        queries=args.queries,
        quick=args.quick,
        include_server=False if args.no_server else None,
        include_ui=False if args.no_ui else None,
        work_dir=args.work_dir,
        model_max_chunks=args.model_max_chunks,
        baseline_max_chunks=args.baseline_max_chunks,
        pool_docs=args.pool_docs,
        extra_backends=args.extra_backends,
        json_path=args.json_path,
        plot=args.plot,
        markdown=True,
    )


__all__ = [
    "BenchReport",
    "IngestRun",
    "LatencyRun",
    "ProxyEmbedder",
    "ReingestRun",
    "StartupRun",
    "TargetCheck",
    "TextPool",
    "bench_command",
    "build_pool",
    "edit_one_file",
    "evaluate_targets",
    "generate_library",
    "growth_table",
    "render_growth",
    "render_markdown",
    "render_table",
    "run_bench",
    "write_plot",
]


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    sys.exit(main())
