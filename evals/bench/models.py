"""The benchmark's report types, constants and definitions."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Vectors = Literal["model", "proxy"]

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "evals" / "datasets" / "golden.yaml"


def find_scifact() -> Path | None:
    """SciFact from $COURSEPILOT_SCIFACT_DIR, else shared/benchmarks/scifact beside the checkout, else None."""
    for candidate in (
        os.environ.get("COURSEPILOT_SCIFACT_DIR"),
        str(ROOT.parent / "shared" / "benchmarks" / "scifact"),
        "/work/shared/benchmarks/scifact",
    ):
        if candidate and (Path(candidate) / "corpus.jsonl").is_file():
            return Path(candidate)
    return None


SCIFACT_DIR = find_scifact()
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
    disk_mb: float | None = Field(default=None, description="The index on disk after the first ingest (MB).")
    disk_mb_per_1k_chunks: float | None = Field(default=None, description="disk_mb per 1,000 chunks.")
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
    sentence_vectors: Literal["default", "stored"] = Field(
        default="default",
        description="Extractive answers' sentence vectors: default = the best 8 candidates embedded per question; "
        "stored = answer.stored_sentence_vectors=true, the vectors stored at ingest read, the rest embedded (same "
        "index, measured right after the default run).",
    )
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
    "disk": "Bytes of the index's files after the first ingest: CoursePilot's Chroma folder and ledger (SQLite "
    "with its WAL), the baseline's Chroma folder; MB = 2**20 bytes, per 1,000 chunks of that index.",
    "reingest": "In-process with the model already loaded; a cold CLI run adds process start and model load.",
}


# -- small shared arithmetic -------------------------------------------------------------------------------
def rate(count: float | None, seconds: float | None) -> float | None:
    if count is None or not seconds:
        return None
    return round(count / seconds, 2)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 1)


def load_avg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
