"""discover -> load -> chunk -> embed -> sync. Incremental by content hash; writes the new before deleting the old."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.errors import CoursePilotError, LoaderError, PrerequisiteCycleError
from assistant.core.settings import Settings
from assistant.core.text import index_text, term_counts
from assistant.core.types import Chunk, Course, LoadedDocument
from assistant.index.ledger import DocumentRecord
from assistant.index.library import LibraryIndex
from assistant.models.embeddings import EmbeddingModel, get_embedder
from assistant.retrieval.library_scale import publish_scale
from ingest.chunker import chunk_document
from ingest.discovery import discover
from ingest.loaders import LoaderLimits, load_document
from ingest.manifest import MANIFEST_NAME
from ingest.packages.course import document_hash
from ingest.packages.sync import PackagePlan, plan_packages, remember
from ingest.representations import SectionUpdates, SentenceUpdates
from ingest.results import FileResult

log = logging.getLogger(__name__)

# Embed this many new chunks at a time across files: big batches keep the model busy, small files included.
_FLUSH_CHUNKS = 512


class IngestReport(BaseModel):
    """The summary `coursepilot ingest` prints (and emits as --json)."""

    library: str
    collection: str
    files: list[FileResult] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="Library-level errors, e.g. a prerequisite cycle.")
    warnings: list[str] = Field(default_factory=list)
    documents: dict[str, int] = Field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    chunks_total: int = 0
    sections_embedded: int = Field(default=0, description="Heading-trail vectors run through the model.")
    sections_reused: int = Field(default=0, description="Heading-trail vectors kept from earlier runs.")
    sentences_embedded: int = Field(default=0, description="Chunks whose sentence vectors were made this run.")
    sentences_reused: int = Field(default=0, description="Chunks whose sentence vectors were kept from earlier runs.")
    courses: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.documents.get("failed", 0)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.problems


@dataclass
class _Pending:
    result: FileResult
    record: DocumentRecord
    chunks: list[Chunk]
    new: list[Chunk]


def _pause_point(name: str) -> None:
    """Fault-injection hook for the crash tests: pause here so a test can SIGKILL at an exact point."""
    if os.environ.get("COURSEPILOT_DEBUG_PAUSE_AT") == name:
        print(f"PAUSED {name}", file=sys.stderr, flush=True)
        time.sleep(120)


def _file_hash(path: Path, course: Course) -> str:
    digest = hashlib.sha1()
    # The course's own fields shape every chunk's location, so a retitled course re-indexes its files.
    digest.update(course.model_dump_json(include={"id", "title", "level", "modules"}).encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _failed(rel: str, course_id: str | None, reason: str, message: str, fix: str | None) -> FileResult:
    return FileResult(path=rel, course_id=course_id, status="failed", reason=reason, message=message, fix=fix)


def _package_failures(plan: PackagePlan) -> list[FileResult]:
    """A refused package is one failure; an unreadable item is one failure at its own path."""
    course_id = plan.course.id if plan.course is not None else None
    return [
        _failed(plan.rel(f.module) if f.module else plan.name, course_id, f.reason, f.message, f.fix)
        for f in plan.failures
    ]


def find_prerequisite_cycle(courses: list[Course]) -> list[str] | None:
    """A cycle of course ids in the prerequisite graph, or None."""
    graph = {c.id: [p for p in c.prerequisites] for c in courses}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt in graph and state.get(nxt) is None:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for course_id in sorted(graph):
        if state.get(course_id) is None:
            cycle = visit(course_id)
            if cycle:
                return cycle
    return None


class IngestPipeline:
    """Incrementally syncs a library folder into the index for the current settings."""

    def __init__(
        self, settings: Settings, index: LibraryIndex | None = None, embedder: EmbeddingModel | None = None
    ) -> None:
        """`embedder` replaces the one the registry gives for settings.embedding (the benchmark passes its own)."""
        self.settings = settings
        self.index = index or LibraryIndex(settings)
        self._embedder = embedder
        self.limits = LoaderLimits(
            max_file_bytes=settings.limits.max_file_mb * 1024 * 1024,
            max_decompressed_bytes=settings.limits.max_decompressed_mb * 1024 * 1024,
            max_pages=settings.limits.max_pdf_pages,
        )

    def run(
        self,
        library: Path,
        full: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_file: Callable[[FileResult], None] | None = None,
        wait: bool = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> IngestReport:
        """Sync the library under the collection's ingest lease (another job holding it: IngestBusyError, or
        with `wait` block until it is released, calling `on_wait(holder)` once)."""
        with self.index.ledger.lease("ingest", wait=wait, on_wait=on_wait):
            return self._run(library, full, on_start, on_file)

    def _run(
        self,
        library: Path,
        full: bool,
        on_start: Callable[[int], None] | None,
        on_file: Callable[[FileResult], None] | None,
    ) -> IngestReport:
        """Sync the library; one bad file never stops the batch nor loses what was indexed before."""
        started = time.perf_counter()
        if not library.is_dir():
            raise CoursePilotError(
                f"Library folder '{library}' does not exist.",
                "pass a folder of course folders, e.g. data/courses.",
            )
        report = IngestReport(library=str(library), collection=self.index.name)
        found = discover(library, exclude=Path(self.settings.index.dir), indexed=self.index.ledger.courses())
        report.warnings.extend(found.warnings)
        plans = plan_packages(library, self.index.ledger, full, self.limits)
        for plan in plans:
            found.courses.extend([plan.course] if plan.course is not None else [])
            found.failures.extend(_package_failures(plan))
            found.protected_prefixes.update([f"{plan.name}/"] if plan.refused else [])
        known = {c.id for c in found.courses}
        for course in found.courses:
            missing = [p for p in course.prerequisites if p not in known]
            if missing:
                report.warnings.append(
                    f"{course.folder}/{MANIFEST_NAME}: prerequisites {missing} are not courses in this library."
                )
        cycle = find_prerequisite_cycle(found.courses)
        if cycle:
            report.problems.append(str(PrerequisiteCycleError(cycle)))
        if on_start:
            on_start(len(found.files) + len(found.failures) + sum(len(p.docs) + len(p.unchanged) for p in plans))

        ledger = self.index.ledger
        before = ledger.documents()
        pending: list[_Pending] = []
        sections = SectionUpdates(self.index)
        self._sentences = SentenceUpdates(self.index)

        def flush() -> None:
            new = [c for p in pending for c in p.new]
            reused: set[str] = set()
            if new:
                vectors, reused = self._vectors_for(new, reuse=not full)
                self.index.store.upsert(new, vectors)
            _pause_point("after_upsert")
            # Stale vectors go in one delete per flush: every write rewrites the HNSW graph file (store.py), ~85 ms
            # at 100k chunks, and the ledger, not the vector store, says what is served until then.
            stale_ids: list[str] = []
            for item in pending:
                item.result.chunks_reused = sum(1 for c in item.new if c.id in reused)
                item.result.chunks_embedded = len(item.new) - item.result.chunks_reused
                terms = {c.id: term_counts(index_text(c)) for c in item.new}
                stale = ledger.replace_document(item.record, item.chunks, terms)
                _pause_point("after_ledger")
                stale_ids.extend(stale)
                sections.document(item.chunks, stale)
                self._sentences.document(item.chunks, stale)
                item.result.chunks_deleted = len(stale)
                report.files.append(item.result)
                if on_file:
                    on_file(item.result)
            if stale_ids:
                self.index.store.delete(stale_ids)
            pending.clear()

        for failure in found.failures:
            report.files.append(failure)
            if on_file:
                on_file(failure)

        seen_paths: set[str] = set()
        for course, path, rel in found.files:
            seen_paths.add(rel)
            result = self._sync_file(course, path, rel, before.get(rel), full)
            if isinstance(result, _Pending):
                pending.append(result)
                if sum(len(p.new) for p in pending) >= _FLUSH_CHUNKS:
                    flush()
            else:
                report.files.append(result)
                if on_file:
                    on_file(result)
        for plan in plans:
            for result in self._sync_package(plan, before, full):
                seen_paths.add(result.path if isinstance(result, FileResult) else result.result.path)
                if isinstance(result, _Pending):
                    pending.append(result)
                else:
                    report.files.append(result)
                    if on_file:
                        on_file(result)
        flush()
        for plan in plans:
            remember(ledger, plan)

        failed_paths = {f.path for f in report.files if f.status == "failed"}
        removed_ids: list[str] = []
        for rel, record in before.items():
            protected = any(rel.startswith(p) for p in found.protected_prefixes)
            if rel in seen_paths or rel in failed_paths or protected:
                continue
            ids = ledger.remove_document(rel)
            removed_ids.extend(ids)
            sections.removed_document(ids)
            self._sentences.removed_document(ids)
            result = FileResult(path=rel, course_id=record.course_id, status="removed", chunks_deleted=len(ids))
            report.files.append(result)
            if on_file:
                on_file(result)
        if removed_ids:
            self.index.store.delete(removed_ids)

        self._collect_garbage()
        self.index.publish_lexical()  # BM25 follows the ledger's change log; this snapshot is for cold starts
        previous = ledger.courses()
        catalogue = {c.id: c for c in found.courses}
        # A course whose manifest is broken keeps its last good catalogue entry, like its chunks.
        for course_id, course in previous.items():
            if course_id not in catalogue and any(
                course.folder and f"{course.folder}/".startswith(p) for p in found.protected_prefixes
            ):
                catalogue[course_id] = course
        ledger.save_courses(list(catalogue.values()))
        # Heading vectors use the pipeline's embedder (the one the chunks used).
        synced = sections.sync(
            catalogue,
            lambda texts: (self._embedder or get_embedder(self.settings.embedding)).embed_documents(texts),
            full,
        )
        report.sections_embedded, report.sections_reused = synced["embedded"], synced["reused"]
        sentences = self._sentences.sync(self._embedder or get_embedder(self.settings.embedding), full)
        report.sentences_embedded, report.sentences_reused = sentences.embedded, sentences.reused
        # The refusal decision's cosine scale, measured once here for every worker (see library_scale).
        publish_scale(self.index)
        self.index.settle_vectors()  # a run that wrote nothing still leaves graphs every process loads alike

        for item in report.files:
            report.documents[item.status] = report.documents.get(item.status, 0) + 1
            report.chunks_embedded += item.chunks_embedded
            report.chunks_reused += item.chunks_reused
            report.chunks_deleted += item.chunks_deleted
        for status in ("added", "updated", "unchanged", "removed", "failed"):
            report.documents.setdefault(status, 0)
        report.chunks_total = ledger.chunk_count()
        report.courses = len(catalogue)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _vectors_for(self, chunks: list[Chunk], reuse: bool) -> tuple[np.ndarray, set[str]]:
        """Vectors for new chunks, and the ids that did not need the model.

        A chunk's id depends on its location, but its vector only on the text embedded (heading trail + text).
        A page inserted early in a PDF, a renamed file or a passage shared by two courses therefore makes new
        ids whose text is already embedded: those vectors are copied from the store, and a text repeated in
        this batch is embedded once. `--full` rebuilds (reuse=False) embed everything afresh.
        """
        texts = [index_text(c) for c in chunks]
        known: dict[str, np.ndarray] = {}
        if reuse:
            candidates = {
                index_text(c): c.id for c in self.index.ledger.chunks_with_content(c.content_hash for c in chunks)
            }
            wanted = {candidates[t] for t in texts if t in candidates}
            stored = self.index.store.vectors(sorted(wanted)) if wanted else {}
            known = {t: stored[cid] for t, cid in candidates.items() if cid in stored}
        missing = sorted({t for t in texts if t not in known})
        if missing:
            embedder = self._embedder or get_embedder(self.settings.embedding)
            first: dict[str, Chunk] = {}
            for chunk, text in zip(chunks, texts, strict=True):
                first.setdefault(text, chunk)
            # The sentences of these chunks come from the same model runs (late chunking), when the embedder can.
            fresh = self._sentences.embed(embedder, {t: first[t] for t in missing})
            known.update(zip(missing, fresh, strict=True))
        embedded_once: set[str] = set(missing)
        reused: set[str] = set()
        for chunk, text in zip(chunks, texts, strict=True):
            if text in embedded_once:
                embedded_once.discard(text)  # the first chunk with this text paid for it
            else:
                reused.add(chunk.id)
        vectors = np.vstack([known[t] for t in texts]).astype(np.float32)
        return vectors, reused

    def _sync_file(
        self, course: Course, path: Path, rel: str, previous: DocumentRecord | None, full: bool
    ) -> FileResult | _Pending:
        try:
            stat = path.stat()
            if (
                previous is not None
                and not full
                and previous.size == stat.st_size
                and previous.mtime_ns == stat.st_mtime_ns
                and previous.course_id == course.id
            ):
                return FileResult(path=rel, course_id=course.id, status="unchanged")
            file_hash = _file_hash(path, course)
            if previous is not None and not full and previous.file_hash == file_hash:
                self.index.ledger.touch_document(rel, stat.st_mtime_ns)
                return FileResult(path=rel, course_id=course.id, status="unchanged")
            doc = load_document(path, self.limits)
            return self._pending(course, doc, rel, file_hash, stat.st_size, stat.st_mtime_ns, previous, full)
        except LoaderError as exc:
            return FileResult(
                path=rel,
                course_id=course.id,
                status="failed",
                reason=exc.reason,
                message=exc.message,
                fix=exc.fix,
            )
        except OSError as exc:
            return FileResult(
                path=rel,
                course_id=course.id,
                status="failed",
                reason="unreadable",
                message=f"{rel}: cannot be read ({exc.strerror}).",
                fix="check the file's permissions and that it still exists.",
            )

    def _pending(
        self,
        course: Course,
        doc: LoadedDocument,
        rel: str,
        file_hash: str,
        size: int,
        mtime_ns: int,
        previous: DocumentRecord | None,
        full: bool,
    ) -> _Pending:
        module_path = "/".join(Path(rel).parts[1:])
        chunks = chunk_document(doc, course, module_path, self.settings.chunking)
        if not chunks:
            raise LoaderError(
                rel, "no_text", "has no text to index.", "add content, or remove the file from the course."
            )
        known = self.index.ledger.chunk_hashes(rel) if not full else {}
        new = [c for c in chunks if c.id not in known]
        record = DocumentRecord(
            path=rel,
            course_id=course.id,
            file_hash=file_hash,
            size=size,
            mtime_ns=mtime_ns,
            kind=doc.kind,
            title=doc.title,
            pages=doc.pages,
        )
        result = FileResult(
            path=rel,
            course_id=course.id,
            status="updated" if previous is not None else "added",
            chunks=len(chunks),
            chunks_embedded=len(new),
            warnings=[f"{rel}: {w}" for w in doc.warnings],
        )
        return _Pending(result=result, record=record, chunks=chunks, new=new)

    def _sync_package(
        self, plan: PackagePlan, before: dict[str, DocumentRecord], full: bool
    ) -> list[FileResult | _Pending]:
        """Results for a package's documents: unchanged ones without reading, the others chunked."""
        course = plan.course
        if course is None:
            return []
        results: list[FileResult | _Pending] = [
            FileResult(path=rel, course_id=course.id, status="unchanged") for rel in plan.unchanged
        ]
        for item in plan.docs:
            rel = plan.rel(item.module)
            previous = before.get(rel)
            file_hash = document_hash(course, item.doc)
            if previous is not None and not full and previous.file_hash == file_hash and previous.size == plan.size:
                self.index.ledger.touch_document(rel, plan.mtime_ns)
                results.append(FileResult(path=rel, course_id=course.id, status="unchanged"))
                continue
            try:
                results.append(
                    self._pending(course, item.doc, rel, file_hash, plan.size, plan.mtime_ns, previous, full)
                )
            except LoaderError as exc:
                results.append(_failed(rel, course.id, exc.reason, exc.message, exc.fix))
        return results

    def _collect_garbage(self) -> None:
        """Remove vectors an interrupted run wrote but never recorded in the ledger."""
        store, ledger = self.index.store, self.index.ledger
        if store.count() == ledger.chunk_count():
            return
        orphans = store.all_ids() - ledger.all_chunk_ids()
        if orphans:
            log.info("removing %d vectors left by an interrupted run", len(orphans))
            store.delete(sorted(orphans))
