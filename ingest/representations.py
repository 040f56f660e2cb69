"""Extra representations kept next to the chunks, incrementally: one heading-trail vector per section.

The pipeline reports, per run, which chunk ids it removed and the section entries of every document it
(re)wrote; this module folds them into the section snapshot and makes the section collection match it,
embedding only heading texts that no stored vector has (a vector's id is the hash of its text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from assistant.core.types import Chunk, Course
from assistant.index.library import LibraryIndex
from assistant.index.sections import (
    EmbedDocuments,
    SectionEntry,
    SectionMap,
    SyncStats,
    entries_for,
    sync_section_vectors,
)


class SectionUpdates:
    """What one ingest run changed, collected as documents are written."""

    def __init__(self, index: LibraryIndex) -> None:
        self.index = index
        self.start_generation = index.ledger.generation
        self.removed: list[str] = []
        self.added: dict[str, SectionEntry] = {}

    def document(self, chunks: Sequence[Chunk], stale: Iterable[str]) -> None:
        self.removed.extend(stale)
        self.added.update(entries_for(chunks))

    def removed_document(self, ids: Iterable[str]) -> None:
        self.removed.extend(ids)

    def sync(self, catalogue: Mapping[str, Course], embed: EmbedDocuments, full: bool = False) -> SyncStats:
        """Save the section snapshot at the ledger's generation and embed the headings no vector has yet."""
        index = self.index
        loaded = SectionMap.load(index.sections_path)
        if loaded is not None and loaded[1] == self.start_generation:
            mapping = loaded[0]
            mapping.update(self.removed, self.added)
        else:  # lost or stale snapshot: the ledger is the truth
            mapping = SectionMap.from_chunks(index.ledger.get_chunks(index.ledger.all_chunk_ids()).values())
        skills = {cid: list(c.skills) for cid, c in catalogue.items()}
        texts = mapping.texts(skills)
        stats = sync_section_vectors(index.section_store, texts, embed, full=full)
        mapping.save(index.sections_path, index.ledger.generation)
        return stats
