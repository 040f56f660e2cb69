"""Ledger benchmark: ask latency on the PostgreSQL ledger against the SQLite ledger, how BM25 travels to a worker,
and how long after an ingest's commit a worker in another process serves the new chunk.

`coursepilot bench --ledger` (or `python -m evals.bench_ledger`) runs it. One synthetic library per size is written
once, straight through the ledger and vector-store APIs in the ingest's write order (vectors, then the ledger
switch), into both ledgers and one embedded Chroma collection, so the two ledgers serve the same chunks and the
same vectors. Chunk text draws words from the bundled sample library; vectors are random unit vectors (the
ledger comparison does not depend on them); query vectors come from the real model. The two ledgers are timed
in alternating blocks of questions, so machine load falls on both alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.settings import Settings
from assistant.core.text import index_text, term_counts
from assistant.core.types import Chunk, Course, Location
from assistant.index.ledger import DocumentRecord
from assistant.index.lexical import LexicalIndex
from assistant.index.library import LibraryIndex

SAMPLE_LIBRARY = Path(__file__).resolve().parent.parent / "data" / "courses"
CHUNKS_PER_DOC = 25
DOCS_PER_COURSE = 20
WORDS_PER_CHUNK = 110
DIM = 384


class AskRun(BaseModel):
    ledger: str
    chunks: int
    queries: int
    p50_ms: float
    p95_ms: float


class TravelRun(BaseModel):
    """Ways a worker's BM25 index catches up with the ledger, timed at one size."""

    chunks: int
    snapshot_mb: float = Field(description="Size of the BM25 snapshot stored in the ledger.")
    rebuild_from_rows_s: float = Field(description="Read every chunk's term counts from the ledger and build BM25.")
    snapshot_load_s: float = Field(description="Read the snapshot from the ledger and load it.")
    delta_apply_ms: float = Field(description="Apply the change log of one re-ingested document (25 chunks).")


class RefreshRun(BaseModel):
    """Seconds from a document's ledger commit until a worker in another process retrieves its new chunk."""

    mode: str
    chunks: int
    samples: list[float]
    median_s: float
    max_s: float


class LedgerBenchReport(BaseModel):
    ask: list[AskRun] = Field(default_factory=list)
    travel: list[TravelRun] = Field(default_factory=list)
    refresh: list[RefreshRun] = Field(default_factory=list)
    pg_over_sqlite_p95: dict[str, float] = Field(default_factory=dict)
    load_avg: list[float] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def _vocabulary() -> list[str]:
    words: list[str] = []
    for path in sorted(SAMPLE_LIBRARY.rglob("*.md")):
        words.extend(re.findall(r"[A-Za-z][a-z]{2,}", path.read_text(errors="replace")))
    return sorted(set(words)) or ["course", "module", "section"]


def _document(
    vocab: Sequence[str], rng: random.Random, doc: int, size: int | None = None
) -> tuple[DocumentRecord, list[Chunk]]:
    course = f"course-{doc // DOCS_PER_COURSE:04d}"
    path = f"{course}/module-{doc:06d}.md"
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]  # Zipf-like, as prose is
    chunks: list[Chunk] = []
    for ordinal in range(size or CHUNKS_PER_DOC):
        text = " ".join(rng.choices(vocab, weights=weights, k=WORDS_PER_CHUNK))
        location = Location(
            course_id=course,
            course_title=f"Course {course[-4:]}",
            module=path.split("/", 1)[1],
            module_title=f"Module {doc}",
            section=(f"Section {ordinal // 5}",),
        )
        digest = hashlib.sha1(f"{path}|{ordinal}|{text}".encode()).hexdigest()[:24]
        chunks.append(
            Chunk(id=digest, text=text, location=location, ordinal=ordinal, tokens=WORDS_PER_CHUNK, content_hash=digest)
        )
    record = DocumentRecord(
        path=path, course_id=course, file_hash=path, size=1, mtime_ns=1, kind="md", title=f"Module {doc}", pages=None
    )
    return record, chunks


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write_document(
    index: LibraryIndex, record: DocumentRecord, chunks: list[Chunk], vectors: np.ndarray | None
) -> None:
    """The ingest's write order: vectors first (when given), then the ledger switch."""
    if vectors is not None:
        index.store.upsert(chunks, vectors)
    stale = index.ledger.replace_document(record, chunks, {c.id: term_counts(index_text(c)) for c in chunks})
    if stale and vectors is not None:
        index.store.delete(stale)


def build(indexes: Sequence[LibraryIndex], chunks: int, progress: Callable[[str], None]) -> None:
    """The same synthetic library in every index's ledger; vectors written once (the indexes share a store)."""
    vocab, rng, nprng = _vocabulary(), random.Random(7), np.random.default_rng(7)
    docs = chunks // CHUNKS_PER_DOC
    courses: dict[str, Course] = {}
    for doc in range(docs):
        record, doc_chunks = _document(vocab, rng, doc)
        vectors = _vectors(nprng, len(doc_chunks))
        for position, index in enumerate(indexes):
            write_document(index, record, doc_chunks, vectors if position == 0 else None)
        courses.setdefault(record.course_id, Course(id=record.course_id, title=f"Course {record.course_id[-4:]}"))
        if doc % 400 == 0:
            progress(f"  {doc * CHUNKS_PER_DOC:,} / {chunks:,} chunks written")
    for index in indexes:
        index.ledger.save_courses(list(courses.values()))
        index.publish_lexical()


def questions(n: int, seed: int = 3) -> list[str]:
    vocab, rng = _vocabulary(), random.Random(seed)
    return [f"How do I {' '.join(rng.sample(vocab, 4))}?" for _ in range(n)]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))]) if ordered else 0.0


def time_asks(settings: dict[str, Settings], n: int, block: int = 20) -> dict[str, list[float]]:
    """`CoursePilot.ask` timed per ledger, in alternating blocks of `block` questions after a warm-up."""
    from assistant.pilot import CoursePilot

    pilots = {name: CoursePilot(s) for name, s in settings.items()}
    qs = questions(n + 10)
    for pilot in pilots.values():
        pilot.warm_up()
        for q in qs[:10]:
            pilot.ask(q)
    times: dict[str, list[float]] = {name: [] for name in pilots}
    for start in range(10, len(qs), block):
        for name, pilot in pilots.items():
            for q in qs[start : start + block]:
                began = time.perf_counter()
                pilot.ask(q)
                times[name].append((time.perf_counter() - began) * 1000)
    for pilot in pilots.values():
        pilot.index.ledger.close()
    return times


def time_travel(index: LibraryIndex, chunks: int) -> TravelRun:
    started = time.perf_counter()
    index.rebuild_lexical()
    rebuild = time.perf_counter() - started
    started = time.perf_counter()
    stored = index.ledger.load_snapshot("lexical")
    assert stored is not None
    loaded = LexicalIndex.load(stored[1])
    assert loaded is not None
    snapshot_load = time.perf_counter() - started
    lexical = index.lexical()
    before = index.lexical_generation
    record, doc_chunks = _document(_vocabulary(), random.Random(99), 0)  # a re-ingested first document
    write_document(index, record, [c.model_copy(update={"id": c.id[:-4] + "beef"}) for c in doc_chunks], None)
    started = time.perf_counter()
    delta = index.ledger.delta_since(before)
    assert delta is not None
    lexical.updated(delta.removed, delta.added)
    delta_ms = (time.perf_counter() - started) * 1000
    return TravelRun(
        chunks=chunks,
        snapshot_mb=round(len(stored[1]) / 1e6, 1),
        rebuild_from_rows_s=round(rebuild, 2),
        snapshot_load_s=round(snapshot_load, 2),
        delta_apply_ms=round(delta_ms, 1),
    )


WORKER = """
import json, sys, time
from assistant.core.settings import Settings
from assistant.index.library import LibraryIndex
from assistant.retrieval.retriever import Retriever
from pydantic import SecretStr
settings = Settings.model_validate_json(sys.argv[1])
if sys.argv[2]:  # secrets are masked in the JSON
    settings.index.database_url = SecretStr(sys.argv[2])
retriever = Retriever(LibraryIndex(settings))
retriever.retrieve("warm up")
print("READY", flush=True)
for line in sys.stdin:
    want, question = json.loads(line)
    while True:
        ids = {e.chunk.id for e in retriever.retrieve(question).evidence}
        if want in ids:
            print(json.dumps(time.time()), flush=True)
            break
        time.sleep(0.02)
"""


def time_refresh(settings: Settings, mode: str, chunks: int, samples: int = 5) -> RefreshRun:
    """A worker process retrieves in a loop; this process commits a new document and notes when it is served."""
    url = settings.index.database_url
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, settings.model_dump_json(), url.get_secret_value() if url else ""],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert worker.stdout.readline().strip() == "READY"
        index = LibraryIndex(settings)
        vocab, rng, nprng = _vocabulary(), random.Random(1234), np.random.default_rng(1234)
        delays: list[float] = []
        for sample in range(samples):
            record, doc_chunks = _document(vocab, rng, 10_000_000 + sample, size=1)
            marker = f"zqx{uuid.uuid4().hex[:8]}"
            chunk = doc_chunks[0].model_copy(update={"text": f"{marker} {doc_chunks[0].text}"})
            # With the chunk's own words too: a lone BM25 hit has no spread to z-score in the fusion.
            words = " ".join(doc_chunks[0].text.split()[:6])
            worker.stdin.write(json.dumps([chunk.id, f"What is {marker} {words}?"]) + "\n")
            worker.stdin.flush()
            time.sleep(0.5)  # the worker is polling
            write_document(index, record, [chunk], _vectors(nprng, 1))
            committed = time.time()
            ready, _, _ = select.select([worker.stdout], [], [], 300)
            if not ready:
                raise TimeoutError(f"the worker did not serve chunk {chunk.id} within 300 s")
            served = json.loads(worker.stdout.readline())
            delays.append(round(served - committed, 3))
        index.ledger.close()
    finally:
        worker.kill()
        worker.wait()
    return RefreshRun(
        mode=mode, chunks=chunks, samples=delays, median_s=round(statistics.median(delays), 3), max_s=max(delays)
    )


def _pg_settings(base: Settings, url: str, schema: str) -> Settings:
    return base.model_copy(
        update={"index": base.index.model_copy(update={"database_url": url, "database_schema": schema})}
    )


def run(
    settings: Settings,
    pg_url: str,
    sizes: Sequence[int] = (10_000, 100_000),
    queries: int = 200,
    work_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> LedgerBenchReport:
    from pydantic import SecretStr

    report = LedgerBenchReport()
    with contextlib.ExitStack() as stack:
        root = work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cp-bench-ledger-")))
        for size in sizes:
            folder = root / f"{size}"
            base = settings.model_copy(
                update={
                    "index": settings.index.model_copy(update={"dir": folder / "index", "database_url": None}),
                    "chroma": settings.chroma.model_copy(update={"host": None}),
                }
            )
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            pg = _pg_settings(base, SecretStr(pg_url), schema)  # type: ignore[arg-type]
            sqlite_index, pg_index = LibraryIndex(base), LibraryIndex(pg)
            stack.callback(_drop, pg_index)
            progress(f"building {size:,} chunks into the SQLite and PostgreSQL ledgers")
            build([sqlite_index, pg_index], size, progress)
            progress(f"timing ask at {size:,} chunks ({queries} questions per ledger)")
            times = time_asks({"sqlite": base, "postgresql": pg}, queries)
            for name, values in times.items():
                report.ask.append(
                    AskRun(
                        ledger=name,
                        chunks=size,
                        queries=len(values),
                        p50_ms=round(statistics.median(values), 2),
                        p95_ms=round(_percentile(values, 0.95), 2),
                    )
                )
            p95 = {r.ledger: r.p95_ms for r in report.ask if r.chunks == size}
            report.pg_over_sqlite_p95[str(size)] = round(p95["postgresql"] / p95["sqlite"], 2)
            progress("timing how BM25 travels to a worker")
            report.travel.append(time_travel(pg_index, size))
            progress("timing the refresh delay of a worker in another process")
            report.refresh.append(time_refresh(pg, "postgresql ledger + embedded chroma", size))
            report.refresh.append(time_refresh(base, "sqlite ledger + embedded chroma (default)", size))
            sqlite_index.ledger.close()
    report.load_avg = [round(x, 2) for x in os.getloadavg()]
    report.notes.append(
        f"{os.cpu_count()} cores shared with other work (load average {report.load_avg}); compare the ledgers "
        "within one run, not across runs."
    )
    return report


def _drop(index: LibraryIndex) -> None:
    from assistant.index.ledger.postgres import PostgresLedger

    if isinstance(index.ledger, PostgresLedger):
        index.ledger.drop_schema()


def render_markdown(report: LedgerBenchReport) -> str:
    lines = ["| chunks | ledger | ask p50 ms | ask p95 ms |", "| ---: | --- | ---: | ---: |"]
    lines += [f"| {r.chunks:,} | {r.ledger} | {r.p50_ms} | {r.p95_ms} |" for r in report.ask]
    lines += ["", "| chunks | snapshot MB | rebuild from rows s | snapshot load s | delta of one document ms |"]
    lines += ["| ---: | ---: | ---: | ---: | ---: |"]
    lines += [
        f"| {t.chunks:,} | {t.snapshot_mb} | {t.rebuild_from_rows_s} | {t.snapshot_load_s} | {t.delta_apply_ms} |"
        for t in report.travel
    ]
    lines += ["", "| chunks | setup | commit → served, median s | max s |", "| ---: | --- | ---: | ---: |"]
    lines += [f"| {r.chunks:,} | {r.mode} | {r.median_s} | {r.max_s} |" for r in report.refresh]
    return "\n".join(lines)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging

    logging.getLogger("assistant").setLevel(logging.WARNING)
    yield


def bench_ledger_command(
    settings: Settings, sizes: Sequence[int], queries: int, as_json: bool, pg_url: str | None
) -> int:
    """`coursepilot bench --ledger`: prints the tables (or JSON); 0 when PG p95 ≤ 1.5× SQLite's at every size."""
    url = pg_url or os.environ.get("CP_BENCH_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    with _quiet():
        report = run(settings, url, sizes, queries, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(report.model_dump_json(indent=2) if as_json else render_markdown(report))
    return 0 if all(v <= 1.5 for v in report.pg_over_sqlite_p95.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m evals.bench_ledger", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return bench_ledger_command(Settings(), args.sizes, args.queries, args.json, args.postgres_url)


if __name__ == "__main__":
    sys.exit(main())
