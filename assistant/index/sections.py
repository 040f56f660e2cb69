"""Section representations: one heading trail per section, with its own vector and its own lexical field.

A learner's question usually paraphrases what a section is about, and a section's heading trail (course title,
module title, section trail, the course's declared skills) says that more plainly than any one chunk. Each
distinct heading text is embedded once and kept in its own Chroma collection (``<chunks>-sections``) under an
id that is the hash of the text, so a re-ingest embeds only headings whose text changed (a new section, a
retitled module, new course skills) and reuses every other vector.

``SectionMap`` records, per chunk, its course, heading trail and position inside its section. It is a snapshot
tagged with the ledger generation, like the BM25 snapshot, and is rebuilt from the ledger when it is missing or
stale. ``SectionIndex`` is the query-time view: a matrix of heading vectors, a BM25 index over heading texts,
and the chunk -> section row mapping.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.core.text import term_counts
from assistant.core.types import Chunk, Course
from assistant.index.lexical import LexicalIndex

EmbedDocuments = Callable[[list[str]], np.ndarray]

# Bumped when heading_text() changes, so every heading is embedded afresh.
SECTIONS_VERSION = 1


def heading_text(course_title: str, trail: Sequence[str], skills: Sequence[str]) -> str:
    """What a section is about: 'Course › Module › Section › Subsection', then the course's skills."""
    text = " › ".join([course_title, *trail])
    if skills:
        text += "\nSkills: " + ", ".join(skills)
    return text


def section_id(text: str) -> str:
    return hashlib.sha1(f"{SECTIONS_VERSION}\0{text}".encode()).hexdigest()[:24]


@dataclass
class SectionEntry:
    """Where one chunk sits: its course, its heading trail (module title first) and its position in the section."""

    course_id: str
    course_title: str
    trail: tuple[str, ...]
    position: int


def entries_for(chunks: Sequence[Chunk]) -> dict[str, SectionEntry]:
    """Section entries for the chunks of one document, given in document order."""
    seen: dict[tuple[str, ...], int] = {}
    out: dict[str, SectionEntry] = {}
    for chunk in sorted(chunks, key=lambda c: c.ordinal):
        loc = chunk.location
        trail = (loc.module_title, *loc.section)
        position = seen.get(trail, 0)
        seen[trail] = position + 1
        out[chunk.id] = SectionEntry(loc.course_id, loc.course_title, trail, position)
    return out


@dataclass
class SectionMap:
    """chunk id -> SectionEntry, persisted as a JSON snapshot tagged with the ledger generation."""

    entries: dict[str, SectionEntry] = field(default_factory=dict)

    def update(self, remove: Iterable[str], add: Mapping[str, SectionEntry]) -> None:
        for cid in remove:
            self.entries.pop(cid, None)
        self.entries.update(add)

    def texts(self, skills: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """section id -> heading text for every section some chunk sits in."""
        out: dict[str, str] = {}
        for entry in self.entries.values():
            text = heading_text(entry.course_title, entry.trail, skills.get(entry.course_id, ()))
            out.setdefault(section_id(text), text)
        return out

    def save(self, path: Path, generation: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        body = {
            "version": SECTIONS_VERSION,
            "generation": generation,
            "entries": {
                cid: [e.course_id, e.course_title, list(e.trail), e.position] for cid, e in self.entries.items()
            },
        }
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> tuple[SectionMap, int] | None:
        """The snapshot and its generation, or None when absent, unreadable or of another version."""
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if body.get("version") != SECTIONS_VERSION:
                return None
            entries = {
                cid: SectionEntry(str(v[0]), str(v[1]), tuple(str(t) for t in v[2]), int(v[3]))
                for cid, v in body["entries"].items()
            }
            return cls(entries), int(body["generation"])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk]) -> SectionMap:
        """Rebuild from indexed chunks (after a lost or stale snapshot)."""
        by_doc: dict[tuple[str, str], list[Chunk]] = {}
        for chunk in chunks:
            by_doc.setdefault((chunk.location.course_id, chunk.location.module), []).append(chunk)
        mapping = cls()
        for doc_chunks in by_doc.values():
            mapping.entries.update(entries_for(doc_chunks))
        return mapping


class SyncStats(dict[str, int]):
    """Counts of one sync: embedded, reused, deleted heading vectors."""


def sync_section_vectors(
    store: object, texts: Mapping[str, str], embed: EmbedDocuments | None, full: bool = False
) -> SyncStats:
    """Make the section collection hold exactly the vectors of `texts`: embed what is new, drop what is unused.

    `store` is a VectorStore for the section collection. Without `embed`, missing headings stay missing (their
    chunks simply get no heading signal).
    """
    from assistant.index.store import VectorStore

    assert isinstance(store, VectorStore)
    have = store.all_ids() if store.exists() else set()
    wanted = set(texts)
    missing = sorted(wanted if full else wanted - have)
    stale = sorted(have - wanted)
    if missing and embed is not None:
        vectors = embed([texts[sid] for sid in missing])
        store.upsert_vectors(missing, vectors)
    if stale:
        store.delete(stale)
    embedded = len(missing) if embed is not None else 0
    return SyncStats(embedded=embedded, reused=len(wanted) - len(missing), deleted=len(stale))


class SectionIndex:
    """Query-time view of the sections: heading vectors, heading BM25, and chunk -> section row."""

    def __init__(
        self, mapping: SectionMap, skills: Mapping[str, Sequence[str]], vectors: Mapping[str, np.ndarray]
    ) -> None:
        texts = mapping.texts(skills)
        self.ids = sorted(texts)
        self.texts = [texts[sid] for sid in self.ids]
        row = {sid: i for i, sid in enumerate(self.ids)}
        dim = next((len(v) for v in vectors.values()), 0)
        self.matrix = np.zeros((len(self.ids), dim), dtype=np.float32)
        self.has_vector = np.zeros(len(self.ids), dtype=bool)
        for sid, vector in vectors.items():
            if sid in row:
                self.matrix[row[sid]] = vector
                self.has_vector[row[sid]] = True
        self.matrix /= np.maximum(np.linalg.norm(self.matrix, axis=1, keepdims=True), 1e-9)
        # Rows of the heading BM25 index are the section rows (added in the same order).
        self.lexical = LexicalIndex()
        self.lexical.update(remove=(), add=[(sid, term_counts(t)) for sid, t in zip(self.ids, self.texts, strict=True)])
        self.chunk_row: dict[str, int] = {}
        self.chunk_position: dict[str, int] = {}
        self.section_chunks: dict[int, list[tuple[int, str]]] = {}
        self.course_of = [""] * len(self.ids)
        self._course_codes: np.ndarray | None = None
        self._course_names: dict[str, int] = {}
        # The top-level section a chunk belongs to (module + first heading): where sibling chunks add up.
        self.chunk_parent: dict[str, int] = {}
        parents: dict[tuple[str, ...], int] = {}
        self._row_trail: dict[int, tuple[str, ...]] = {}
        self._children: dict[tuple[str, ...], list[int]] | None = None
        for cid, entry in mapping.entries.items():
            self.chunk_parent[cid] = parents.setdefault((entry.course_id, *entry.trail[:2]), len(parents))
            r = row[section_id(heading_text(entry.course_title, entry.trail, skills.get(entry.course_id, ())))]
            self.course_of[r] = entry.course_id
            self.chunk_row[cid] = r
            self.chunk_position[cid] = entry.position
            self.section_chunks.setdefault(r, []).append((entry.position, cid))
            self._row_trail[r] = (entry.course_id, *entry.trail)
        for chunks in self.section_chunks.values():
            chunks.sort()
        # Distinct (course, module) pairs: how many separate documents the library holds.
        self.modules = len({(entry.course_id, entry.trail[0]) for entry in mapping.entries.values()})
        # Distinct courses, counted once here: the library scale's freshness key reads it on every question (a set
        # of 100k section courses per question was 5-10 ms of retrieval at 100k chunks).
        self.courses = len(set(self.course_of))

    def __len__(self) -> int:
        return len(self.ids)

    def next_in_section(self, chunk_id: str) -> str | None:
        """The chunk after `chunk_id` in its section, if any."""
        row, position = self.chunk_row.get(chunk_id), self.chunk_position.get(chunk_id)
        if row is None or position is None:
            return None
        return next((cid for p, cid in self.section_chunks.get(row, []) if p == position + 1), None)

    def subsection_leads(self, chunk_id: str) -> list[str]:
        """The first chunk of each subsection one level below the section `chunk_id` sits in (any order)."""
        row = self.chunk_row.get(chunk_id)
        if row is None:
            return []
        if self._children is None:  # built on first use: a parent trail -> the rows one level below it
            children: dict[tuple[str, ...], list[int]] = {}
            for r, trail in self._row_trail.items():
                if len(trail) > 3:  # (course, module title, section, subsection...): a module's own sections are not
                    children.setdefault(trail[:-1], []).append(r)
            self._children = children
        rows = self._children.get(self._row_trail[row], [])
        return [self.section_chunks[r][0][1] for r in rows if self.section_chunks.get(r)]

    def allowed(self, course_ids: Sequence[str] | None) -> np.ndarray | None:
        """Mask of the sections in these courses (None: all)."""
        if not course_ids:
            return None
        if self._course_codes is None:
            names = sorted(set(self.course_of))
            self._course_names = {name: i for i, name in enumerate(names)}
            self._course_codes = np.asarray([self._course_names[c] for c in self.course_of], dtype=np.int32)
        wanted = [self._course_names[c] for c in course_ids if c in self._course_names]
        return np.isin(self._course_codes, np.asarray(wanted, dtype=np.int32))

    def dense_scores(self, query_vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query to the headings at `rows` (0 where a heading has no vector).

        Only the rows asked for are scored: a full pass over 100k headings cost 10-50 ms per question.
        """
        if not self.ids or self.matrix.shape[1] != query_vector.shape[0] or rows.size == 0:
            return np.zeros(rows.size, dtype=np.float32)
        q = (query_vector / max(float(np.linalg.norm(query_vector)), 1e-9)).astype(np.float32)
        return np.where(self.has_vector[rows], self.matrix[rows] @ q, 0.0).astype(np.float32)

    def lexical_scores(self, query: str) -> np.ndarray:
        """BM25 of the query against every heading text."""
        return self.lexical.scores(query)


def skills_by_course(courses: Mapping[str, Course]) -> dict[str, list[str]]:
    return {cid: list(c.skills) for cid, c in courses.items()}


def current_map(path: Path, generation: int, chunks: Callable[[], Iterable[Chunk]]) -> SectionMap:
    """The snapshot at `path` if it reflects `generation`, else a map rebuilt from `chunks()`."""
    loaded = SectionMap.load(path)
    if loaded is not None and loaded[1] == generation:
        return loaded[0]
    return SectionMap.from_chunks(chunks())
