"""The library index: vector store + ledger + lexical snapshot, opened together for one configuration."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from assistant.core.errors import IndexMismatchError, IndexMissingError
from assistant.core.settings import Settings
from assistant.index.ledger import Ledger
from assistant.index.lexical import LexicalIndex
from assistant.index.sections import SectionIndex, current_map, skills_by_course
from assistant.index.store import VectorStore

log = logging.getLogger(__name__)


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
        self.ledger = Ledger(self.dir / "ledger.sqlite")
        self._lexical: LexicalIndex | None = None
        self._lexical_generation = -1
        self._ready_generation = -1
        self._lock = threading.Lock()
        self._ledger_file: Path | None = getattr(self.ledger, "path", None)
        self._ledger_id = _file_id(self._ledger_file)
        self._sections: tuple[tuple[int, int], SectionIndex] | None = None
        self._section_store: VectorStore | None = None

    @property
    def sections_path(self) -> Path:
        return self.dir / "sections.json"

    @property
    def section_store(self) -> VectorStore:
        """The Chroma collection of heading-trail vectors, next to the chunk collection."""
        if self._section_store is None:
            self._section_store = VectorStore(self.settings, f"{self.name}-sections")
        return self._section_store

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
                vectors = self.section_store.vectors(ids) if ids and self.section_store.exists() else {}
                self._sections = (key, SectionIndex(mapping, skills, vectors))
            return self._sections[1]

    @property
    def lexical_path(self) -> Path:
        return self.dir / "lexical.npz"

    def lexical(self) -> LexicalIndex:
        """The BM25 index matching the ledger's current generation (reloaded after a re-ingest)."""
        generation = self.ledger.generation
        with self._lock:
            if self._lexical is None or self._lexical_generation != generation:
                loaded = LexicalIndex.load(self.lexical_path)
                if loaded is not None and loaded[1] == generation:
                    self._lexical = loaded[0]
                else:
                    self._lexical = self.rebuild_lexical()
                self._lexical_generation = generation
            return self._lexical

    def rebuild_lexical(self) -> LexicalIndex:
        """Rebuild BM25 from the term counts the ledger keeps (after a crash or a lost snapshot)."""
        index = LexicalIndex()
        index.update(remove=(), add=list(self.ledger.iter_terms()))
        return index

    def _follow_folder(self) -> None:
        """The index folder deleted, or replaced (a backup put back), under this process: say so, or open it afresh."""
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
            self.ledger = Ledger(self.dir / "ledger.sqlite")
            self.store.reopen()
            self._lexical, self._lexical_generation = None, -1
            self._ledger_id = current

    def ensure_ready(self) -> None:
        """Raise a helpful error when nothing is indexed for the current settings."""
        self._follow_folder()
        # Counting 100k ledger rows costs milliseconds on every question; the answer only changes with the generation.
        generation = self.ledger.generation
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
