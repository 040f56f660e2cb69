"""A library's own cosine scale, so that refusal signals mean the same on libraries nobody tuned for.

How close a question's best passage is (its cosine) depends on the library as much as on the question: one
library's cosines sit lower than another's for answers that are just as good. The scale is measured without
labels from the library itself. A sample of its section headings is asked as pseudo-queries (a heading's
vector is the text embedded as a document; the local embedders put no query prefix, so it stands for the
question "what is this section about?"). With the heading's own section left out, the best remaining chunk
cosine is what "close, but not the place" looks like in this library (the place is the heading's course, or
its top-level section in a one-course library); the best heading elsewhere is the same for heading cosines. A question's best cosines are then read as z-scores
against those two distributions.

The ingest job measures it at the end of each ingest that changed the library enough and keeps it in the ledger
(`publish_scale`), so every worker on every host reads one measurement and the first learner after an ingest
does not wait for it. A worker also keeps it in memory and in a small file next to its index, and measures it
itself only when none of these is fresh (an index from before this, a failed measurement at ingest): the
library has changed enough since (a tenth of its sections, many ledger generations, or its shape). A
measurement is a few dozen vector queries.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assistant.index.library import LibraryIndex
from assistant.index.sections import SectionIndex

log = logging.getLogger(__name__)

# Headings asked as pseudo-queries (evenly spaced over the library's sections; deterministic).
SAMPLE = 64
# Chunks returned per pseudo-query: enough that some lie outside the heading's own section.
_NEIGHBOURS = 12
# Measured again after this many ledger generations, or when the section count moved by this share.
_MAX_GENERATIONS = 50
_MAX_DRIFT = 0.10
# Fewer pseudo-queries than this (no heading vectors, one section) and the z-scores are not trusted: the
# calibrated decision is not used (the retriever falls back to the two thresholds).
_MIN_SAMPLES = 4
# A one-course library has no other course to stand for "the library does not teach this". With many separate
# documents (a corpus such as SciFact's abstracts) the other documents stand in; a single course of a few modules
# is one topic throughout, its sections' best off-section cosines are those of answerable questions (a feedback
# course's: 0.77 against 0.58 for a question it answers), and z-scores against them refuse what it teaches.
MIN_MODULES_ONE_COURSE = 20


@dataclass(frozen=True)
class LibraryScale:
    """Mean and spread of the best off-section cosines of heading pseudo-queries (chunk and heading level)."""

    dense_mean: float
    dense_sd: float
    heading_mean: float
    heading_sd: float
    samples: int

    @property
    def trusted(self) -> bool:
        """Whether enough pseudo-queries were asked for the z-scores to mean something."""
        return self.samples >= _MIN_SAMPLES

    def dense_z(self, cosine: float) -> float:
        return (cosine - self.dense_mean) / self.dense_sd if self.trusted else 0.0

    def heading_z(self, cosine: float) -> float:
        return (cosine - self.heading_mean) / self.heading_sd if self.trusted else 0.0


NEUTRAL = LibraryScale(0.0, 1.0, 0.0, 1.0, 0)


def _spread(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return 0.0, 1.0
    return float(arr.mean()), max(float(arr.std()), 0.02)


def _sample_rows(sections: SectionIndex, n: int) -> np.ndarray:
    rows = np.flatnonzero(sections.has_vector)
    if rows.size <= n:
        return rows
    return rows[np.linspace(0, rows.size - 1, n).round().astype(np.int64)]


def measure_scale(index: LibraryIndex, sections: SectionIndex, sample: int = SAMPLE) -> LibraryScale:
    """Ask `sample` headings as pseudo-queries and summarise their best cosines outside their own place.

    Their own place is their course when the library has several (what a question looks like when its course
    is not in the library), else their top-level section (a one-course library, or a corpus of documents).
    """
    rows = _sample_rows(sections, sample)
    if rows.size == 0:
        return NEUTRAL
    courses = np.asarray(sections.course_of)
    names = sorted(set(sections.course_of))
    if len(names) == 1 and sections.modules < MIN_MODULES_ONE_COURSE:
        return NEUTRAL
    if len(names) > 1:
        place = courses
    else:
        parent_of_row: dict[int, int] = {}
        for cid, row in sections.chunk_row.items():
            parent_of_row.setdefault(row, sections.chunk_parent.get(cid, -1))
        place = np.asarray([str(parent_of_row.get(r, -1 - r)) for r in range(len(sections))])
    dense_best: list[float] = []
    # Heading cosines of the sample against every heading in one product; the same place and headings without
    # a vector are masked out.
    sims = sections.matrix[rows] @ sections.matrix.T
    sims[(place[rows][:, None] == place[None, :]) | ~sections.has_vector[None, :]] = -np.inf
    best = sims.max(axis=1)
    heading_best = [float(v) for v in best[np.isfinite(best)]]
    for row in rows.tolist():
        vector = sections.matrix[row]
        if len(names) > 1:
            others = [c for c in names if c != courses[row]]
            hits = index.store.query(vector, 1, course_ids=others)
            off = [s for _, s in hits]
        else:
            hits = index.store.query(vector, _NEIGHBOURS)
            off = [s for cid, s in hits if place[sections.chunk_row.get(cid, row)] != place[row]]
        if off:
            dense_best.append(max(off))
    d_mean, d_sd = _spread(dense_best)
    h_mean, h_sd = _spread(heading_best)
    return LibraryScale(d_mean, d_sd, h_mean, h_sd, min(len(dense_best), len(heading_best)))


def library_shape(sections: SectionIndex) -> str:
    """What decides how the scale is measured, and whether it is trusted: the number of courses, and for one
    course whether it has MIN_MODULES_ONE_COURSE modules. A change of shape (a second course added to a
    one-course library) is a new measurement however few sections it adds."""
    courses = sections.courses
    return f"{courses} courses" if courses > 1 else f"1 course, {min(sections.modules, MIN_MODULES_ONE_COURSE)} modules"


@dataclass
class _Cached:
    generation: int
    sections: int
    scale: LibraryScale
    shape: str

    def fresh(self, generation: int, sections: int, shape: str) -> bool:
        drift = abs(sections - self.sections) / max(self.sections, 1)
        return shape == self.shape and drift <= _MAX_DRIFT and 0 <= generation - self.generation < _MAX_GENERATIONS


_CACHE: weakref.WeakKeyDictionary[LibraryIndex, _Cached] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_VERSION = 2  # 2: the library's shape is kept with the scale


def scale_path(index: LibraryIndex) -> Path:
    """Where the scale is kept next to the index, so that every worker and restart reuses one measurement."""
    return index.dir / "library-scale.json"


# The ingest job measures the scale once its ledger generation is written and keeps it in the ledger under this
# key, so every worker (on any host, PostgreSQL ledger) reads the same measurement instead of making its own.
LEDGER_KEY = "library_scale"


def _decode(text: str) -> _Cached | None:
    try:
        body = json.loads(text)
        if body.get("version") != _VERSION:
            return None
        return _Cached(
            int(body["generation"]), int(body["sections"]), LibraryScale(**body["scale"]), str(body["shape"])
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _encode(cached: _Cached) -> str:
    body = {
        "version": _VERSION,
        "generation": cached.generation,
        "sections": cached.sections,
        "shape": cached.shape,
        "scale": asdict(cached.scale),
    }
    return json.dumps(body)


def _load(path: Path) -> _Cached | None:
    try:
        return _decode(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def _from_ledger(index: LibraryIndex) -> _Cached | None:
    try:
        text = index.ledger.get_meta(LEDGER_KEY)
    except Exception as exc:  # a ledger that cannot be read now: the worker measures, as before
        log.debug("the library scale could not be read from the ledger: %s", exc)
        return None
    return _decode(text) if text else None


def _save(path: Path, cached: _Cached) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(_encode(cached), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only index folder: the scale is kept in memory only
        log.info("the library scale could not be saved to %s (%s)", path, exc)


def _key(index: LibraryIndex, sections: SectionIndex) -> tuple[int, int, str]:
    """What a kept measurement must match to be fresh: ledger generation, section count, library shape."""
    return index.ledger.generation, len(sections), library_shape(sections)


def publish_scale(index: LibraryIndex) -> bool:
    """Measure the scale at the end of an ingest (unless the ledger's is still fresh) and keep it in the ledger.

    Returns whether a new measurement was written. A failure is logged and costs nothing but the measurement:
    workers then measure on their first question, as before.
    """
    try:
        sections = index.sections()
        if not len(sections):
            return False
        key = _key(index, sections)
        kept = _from_ledger(index)
        if kept is not None and kept.fresh(*key):
            return False
        started = time.perf_counter()
        cached = _Cached(key[0], key[1], measure_scale(index, sections), key[2])
        index.ledger.set_meta(LEDGER_KEY, _encode(cached))
        log.info("measured the library's cosine scale in %.2f s (%s)", time.perf_counter() - started, cached.shape)
    except Exception as exc:  # the ingest itself succeeded; the scale is measured by the workers instead
        log.warning("the library's cosine scale could not be measured at the end of the ingest (%s)", exc)
        return False
    with _LOCK:
        _CACHE[index] = cached
    return True


def library_scale(index: LibraryIndex, sections: SectionIndex | None) -> LibraryScale:
    """The index's scale: kept in memory, read from the ledger (where the ingest job keeps its measurement) or
    from a file next to the index, measured here only when none of those is fresh: the library changed enough
    since (a tenth of its sections, `_MAX_GENERATIONS` ledger generations, or its shape)."""
    if sections is None or not len(sections) or not sections.has_vector.any():
        return NEUTRAL  # no heading vectors (a lost collection): no heading cosine to read against a scale
    key = _key(index, sections)
    with _LOCK:
        cached = _CACHE.get(index)
    if cached is None or not cached.fresh(*key):
        cached = _from_ledger(index)
        if cached is None or not cached.fresh(*key):
            cached = _load(scale_path(index))
        if cached is None or not cached.fresh(*key):
            try:
                measured = measure_scale(index, sections)
            except Exception as exc:  # a vector store mid-ingest ("Error finding id"), a lost server
                # The question goes on with the two thresholds (NEUTRAL is untrusted); measured again next time.
                log.warning("the library's cosine scale could not be measured (%s): refusals use the thresholds", exc)
                return NEUTRAL
            cached = _Cached(key[0], key[1], measured, key[2])
            _save(scale_path(index), cached)
        with _LOCK:
            _CACHE[index] = cached
    return cached.scale
