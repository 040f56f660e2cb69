"""Extra representations kept next to the chunks, incrementally: one heading-trail vector per section, and one
late-chunked vector per sentence (SentenceUpdates, below).

The pipeline reports, per run, which chunk ids it removed and the section entries of every document it
(re)wrote; this module folds them into the section snapshot and makes the section collection match it,
embedding only heading texts that no stored vector has (a vector's id is the hash of its text).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from assistant.core.text import index_text
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
from assistant.index.sentences import Encoded, SentenceStats, encode_sentences, sentence_key, sentence_spans


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


class SentenceUpdates:
    """Sentence vectors of one ingest run: made in the same model runs as the chunk vectors (late chunking) when
    the embedder gives token outputs, then written to the ledger's sentence rows (SentenceStore) at the end.

    An embedder without them (torch, OpenAI, the benchmark's proxy) stores none: the ranking signal then falls
    back to the chunk's own cosine. Sentences of a text the store already has are never recomputed.
    """

    def __init__(self, index: LibraryIndex) -> None:
        self.index = index
        self.added: dict[str, str] = {}
        self.fresh: dict[str, Encoded] = {}  # int8 as stored: at 100k chunks float vectors held ~1.2 GB

    def embed(self, embedder: object, chunks: Mapping[str, Chunk]) -> np.ndarray:
        """Vectors of the texts `chunks` is keyed by (index_text of the chunk), with their sentences when the
        embedder can pool token outputs over spans."""
        vectors = self._late(embedder, chunks)
        if vectors is None:
            vectors = embedder.embed_documents(list(chunks))  # type: ignore[attr-defined]
        return np.asarray(vectors, dtype=np.float32)

    def _late(self, embedder: object, chunks: Mapping[str, Chunk]) -> np.ndarray | None:
        """Chunk vectors from late-chunked runs, their sentences kept in `fresh`; None: no token outputs."""
        with_spans = getattr(embedder, "embed_with_spans", None)
        if not callable(with_spans):
            return None
        texts = list(chunks)
        spans = [sentence_spans(chunks[t].text) for t in texts]
        shift = [len(t) - len(chunks[t].text) for t in texts]  # index_text puts the heading trail first
        got = with_spans(texts, [[(s + k, e + k) for s, e in sp] for sp, k in zip(spans, shift, strict=True)])
        if got is None:
            return None
        vectors, per_text = got
        for text, sp, sv in zip(texts, spans, per_text, strict=True):
            self.fresh[sentence_key(text)] = encode_sentences(sp, sv)
        return np.asarray(vectors, dtype=np.float32)

    def document(self, chunks: Sequence[Chunk], stale: Iterable[str]) -> None:
        """A document's chunks as written; its stale ids need nothing (sync keeps only what the ledger holds)."""
        self.added.update({c.id: sentence_key(index_text(c)) for c in chunks})

    def removed_document(self, ids: Iterable[str]) -> None:
        """Nothing to note: sync drops the rows of every chunk the ledger no longer holds."""

    def sync(self, embedder: object, full: bool = False) -> SentenceStats:
        """Store what this run made and drop what the ledger no longer holds; a chunk without stored sentences (an
        index built before they lived in the ledger, a chunk whose vector was reused from an older run) gets them
        now: copied from a chunk with the same text, else pooled afresh if the embedder can."""
        store, ledger = self.index.sentence_store, self.index.ledger
        ids = ledger.all_chunk_ids()
        stored = store.chunk_keys()
        chunk_keys = {cid: key for cid, key in stored.items() if cid in ids}
        chunk_keys.update({cid: key for cid, key in self.added.items() if cid in ids})
        if self._late(embedder, {}) is not None:  # an empty probe: the embedder gives token outputs
            loaded = ledger.get_chunks(sorted(ids - chunk_keys.keys()))
            chunk_keys.update({cid: sentence_key(index_text(c)) for cid, c in loaded.items()})
            have = set() if full else set(stored.values())
            need = sorted(cid for cid, key in chunk_keys.items() if key not in have and key not in self.fresh)
            loaded.update(ledger.get_chunks([cid for cid in need if cid not in loaded]))
            if need:
                self._late(embedder, {index_text(loaded[cid]): loaded[cid] for cid in need})
        stats = store.sync(chunk_keys, self.fresh, ledger.generation, replace=full)
        # Release 19 kept them in files beside this host's index: nothing reads those any more.
        shutil.rmtree(self.index.dir / "sentences", ignore_errors=True)
        return stats
