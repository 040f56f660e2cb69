"""The library index: vector store + ledger + in-memory BM25, opened together for one configuration.

A running worker follows the ledger: at most every `index.refresh_s` it reads the ledger's generation and, when an
ingest (on any machine) has committed since, applies the change log's delta to its BM25 index and, with embedded
Chroma, reopens its vector reader. A cold start loads the BM25 snapshot stored in the ledger and applies the delta
from the snapshot's generation; with neither, BM25 is rebuilt from the term counts the ledger keeps.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from assistant.core.errors import IndexMismatchError, IndexMissingError
from assistant.core.settings import Settings
from assistant.index.ledger import Ledger, open_ledger
from assistant.index.lexical import LexicalIndex
from assistant.index.sections import SectionIndex, current_map, skills_by_course
from assistant.index.sentences import SentenceStore
from assistant.index.store import VectorStore

log = logging.getLogger(__name__)

SNAPSHOT = "lexical"


def _file_id(path: Path | None) -> tuple[int, int] | None:
    if path is None:  # a ledger that is not a local file has no folder to follow
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class LibraryIndex:
    """Everything one embedding model + chunking configuration has indexed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.collection_name()
        self.dir = Path(settings.index.dir) / self.name
        self.store = VectorStore(settings, self.name)
        self.ledger: Ledger = open_ledger(settings, self.name, self.dir)
        self._lexical: LexicalIndex | None = None
        self._lexical_generation = -1
        self._checked_at = float("-inf")
        self._ready_generation = -1
        self._lock = threading.Lock()
        self._ledger_file: Path | None = getattr(self.ledger, "path", None)
        self._ledger_id = _file_id(self._ledger_file)
        self._sections: tuple[tuple[int, int], SectionIndex] | None = None
        self._section_store: VectorStore | None = None
        self.sentence_store = SentenceStore(lambda: self.ledger)  # in the ledger: every worker reads the same

    @property
    def sections_path(self) -> Path:
        return self.dir / "sections.json"

    def reopen_vectors(self, count: bool = True) -> None:
        """Open the vector reader again (chunks and heading trails), to search what another process wrote since."""
        self.store.reopen(count)
        if self._section_store is not None:
            # Both collections live in one Chroma folder: the heading store takes the chunk store's new client,
            # since its old one still reads the index as it was (Chroma said "Error finding id").
            self._section_store.client = self.store.client
            self._section_store._collection = None

    def settle_vectors(self) -> None:
        """Writers, after an ingest: every process loads the same HNSW graphs of both collections, including one
        built before they were written after every write (VectorStore.settle)."""
        changed = [store.settle() for store in (self.store, self.section_store) if store.exists()]
        if any(changed):  # settling opened new systems: both collections are read through one again
            self.reopen_vectors(count=False)

    @property
    def section_store(self) -> VectorStore:
        """The Chroma collection of heading-trail vectors, next to the chunk collection."""
        if self._section_store is None:
            self._section_store = VectorStore(self.settings, f"{self.name}-sections")
        return self._section_store

    def _section_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Heading vectors by id; a reader that missed another process's ingest is reopened and asked again."""
        if not ids or not self.section_store.exists():
            return {}
        try:
            return self.section_store.vectors(ids)
        except Exception as exc:  # embedded Chroma: "Error finding id" from a reader older than the ledger
            log.warning("heading vectors could not be read (%s): reopening the vector store", exc)
            self.reopen_vectors()
            return self.section_store.vectors(ids)

    def sections(self) -> SectionIndex:
        """Heading vectors, heading BM25 and chunk -> section, for the ledger's current generation."""
        key = (self.ledger.generation, self.ledger.courses_version)
        with self._lock:
            if self._sections is None or self._sections[0] != key:
                mapping = current_map(
                    self.sections_path, key[0], lambda: self.ledger.get_chunks(self.ledger.all_chunk_ids()).values()
                )
                skills = skills_by_course(self.ledger.courses())
                ids = sorted(mapping.texts(skills))
                self._sections = (key, SectionIndex(mapping, skills, self._section_vectors(ids)))
            return self._sections[1]

    @property
    def lexical_path(self) -> Path:
        """A file snapshot of BM25 (the evals write one; workers read the snapshot in the ledger)."""
        return self.dir / "lexical.npz"

    @property
    def lexical_generation(self) -> int:
        """The ledger generation this worker's BM25 index reflects (-1 before the first question)."""
        return self._lexical_generation

    def lexical(self) -> LexicalIndex:
        """The BM25 index, brought up to the ledger's generation when the refresh interval has passed."""
        self.refresh()
        assert self._lexical is not None
        return self._lexical

    def refresh(self, force: bool = False) -> int:
        """Follow the ledger if `index.refresh_s` has passed (or `force`); returns the generation now served."""
        now = time.monotonic()
        if not force and self._lexical is not None and now - self._checked_at < self.settings.index.refresh_s:
            return self._lexical_generation
        generation = self.ledger.generation
        with self._lock:
            self._checked_at = now
            if self._lexical is None:
                self._lexical, self._lexical_generation = self._cold_start()
            elif generation != self._lexical_generation:
                started = time.perf_counter()
                self._lexical, self._lexical_generation = self._follow(self._lexical, self._lexical_generation)
                self.reopen_vectors()
                log.info(
                    "index followed the ledger to generation %d in %.0f ms",
                    self._lexical_generation,
                    (time.perf_counter() - started) * 1000,
                )
            return self._lexical_generation

    def _follow(self, lexical: LexicalIndex, generation: int) -> tuple[LexicalIndex, int]:
        delta = self.ledger.delta_since(generation)
        if delta is None:  # the change log no longer reaches back that far
            return self._cold_start()
        return lexical.updated(delta.removed, delta.added), delta.generation

    def _cold_start(self) -> tuple[LexicalIndex, int]:
        stored = self.ledger.load_snapshot(SNAPSHOT)
        loaded = LexicalIndex.load(stored[1]) if stored is not None else None
        if loaded is not None:
            delta = self.ledger.delta_since(loaded[1])
            if delta is not None:
                return loaded[0].updated(delta.removed, delta.added), delta.generation
        generation, index = self._rebuild()
        return index, generation

    def _rebuild(self) -> tuple[int, LexicalIndex]:
        generation, terms = self.ledger.all_terms()
        index = LexicalIndex()
        index.update(remove=(), add=terms)
        return generation, index

    def rebuild_lexical(self) -> LexicalIndex:
        """Rebuild BM25 from the term counts the ledger keeps (after a crash or a lost snapshot)."""
        return self._rebuild()[1]

    def publish_lexical(self) -> int:
        """Bring BM25 up to the ledger and store it as the snapshot new workers start from (end of an ingest)."""
        generation = self.refresh(force=True)
        assert self._lexical is not None
        self.ledger.save_snapshot(SNAPSHOT, generation, self._lexical.to_bytes(generation))
        return generation

    def _follow_folder(self) -> None:
        """The index folder deleted, or replaced (a backup put back), under this process: say so, or open it afresh."""
        if self._ledger_file is None:
            return
        current = _file_id(self._ledger_file)
        if current == self._ledger_id:
            return
        self._ready_generation = -1
        if current is None:
            log.error("the index folder %s is missing", self.dir)
            raise IndexMissingError(
                f"The index folder {self.dir} is missing (deleted or moved while CoursePilot was running).",
                f"restore it from a backup, or run `coursepilot ingest {self.settings.library.dir}` to rebuild it; "
                "the running app picks it up without a restart.",
            )
        log.warning("the index folder %s was replaced; opening it again", self.dir)
        with self._lock:
            self.ledger = open_ledger(self.settings, self.name, self.dir)
            self.reopen_vectors()
            self._lexical, self._lexical_generation = None, -1
            self._ledger_id = current

    def ensure_ready(self) -> None:
        """Raise a helpful error when nothing is indexed for the current settings."""
        self._follow_folder()
        # Counting 100k ledger rows costs milliseconds on every question; the answer only changes with the generation.
        generation = self.refresh()
        if generation == self._ready_generation:
            return
        if self.ledger.chunk_count() > 0:
            self._ready_generation = generation
            return
        others = self.store.other_collections()
        if others:
            raise IndexMismatchError(
                f"The index was built with other embedding or chunking settings ({', '.join(others)}); "
                f"nothing is indexed for the current ones ({self.name}).",
                f"run `coursepilot ingest {self.settings.library.dir}` to index the library with the current settings.",
            )
        raise IndexMissingError(
            "Nothing is indexed yet.", f"run `coursepilot ingest {self.settings.library.dir}` first."
        )
