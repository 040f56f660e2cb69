"""Hybrid retrieval: dense (Chroma) + lexical (BM25), fused, filtered, de-duplicated."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.acronyms import asks_what_it_is, library_long_form, question_acronyms, spell_out
from assistant.core.settings import RetrievalSettings
from assistant.core.text import chat_filler_terms, index_text, tokenize
from assistant.core.types import Chunk, Evidence
from assistant.index.library import LibraryIndex
from assistant.models.embeddings import get_embedder

log = logging.getLogger(__name__)

# How many of the best BM25 hits are checked against the vector store when dense search did not return them.
_BLIND_CHECK = 3

# The check costs an id-filtered vector query (94 ms per question at 100k chunks: the bench's ask p95 went from
# 32 to 206 ms), so a worker runs it on the first question after each new ledger generation, when a reader can
# have missed an ingest, and then at most once per this many seconds.
BLIND_CHECK_EVERY_S = 2.0

# Acronyms of a question spelled out, and the best BM25 hits of the question searched for their long forms.
_ACRONYMS = 3
_ACRONYM_PASSAGES = 20

# Fewer dense candidates than this (a tiny library) and the calibrated refusal model is not used.
MIN_LEARNED_REFUSAL_POOL = 20


@dataclass
class Ranked:
    """One candidate list: ids best first with their raw scores."""

    ids: list[str]
    scores: list[float]


def _zscores(scores: Sequence[float]) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return values
    std = values.std()
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


def fuse_weighted(dense: Ranked, lexical: Ranked, dense_weight: float) -> list[tuple[str, float]]:
    """Convex combination of z-scored scores; a candidate missing from one list gets that list's floor."""
    parts = []
    for ranked, weight in ((dense, dense_weight), (lexical, 1.0 - dense_weight)):
        z = _zscores(ranked.scores)
        floor = float(z.min()) if z.size else 0.0
        parts.append((dict(zip(ranked.ids, z.tolist(), strict=True)), floor, weight))
    union = set(dense.ids) | set(lexical.ids)
    fused = {cid: sum(w * scores.get(cid, floor) for scores, floor, w in parts) for cid in union}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def fuse_rrf(lists: Sequence[Ranked], k: int = 60) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: sum of 1 / (k + rank); ties broken by id so the order is deterministic."""
    fused: dict[str, float] = {}
    for ranked in lists:
        for rank, cid in enumerate(ranked.ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


class RetrievalResult(BaseModel):
    """Evidence plus the signals the refusal decision needs."""

    evidence: list[Evidence]
    max_dense: float
    coverage: float
    timings_ms: dict[str, float]
    answer_probability: float | None = Field(
        default=None, description="The calibrated refusal model's probability that the library answers this."
    )
    supported: bool | None = Field(default=None, description="The calibrated refusal decision, when it ran.")
    searched: str | None = Field(
        default=None, description="The question as searched, when it differs: its acronyms spelled out."
    )
    query: str = Field(default="", description="The text this retrieval embedded (the query vector's text).")
    query_vector: list[float] | None = Field(
        default=None, exclude=True, repr=False, description="The query's embedding, as dense search used it."
    )

    def vector_for(self, text: str) -> np.ndarray | None:
        """The query vector when `text` is the text this retrieval embedded, else None: the answerer matches its
        sentences against it instead of embedding the same question a second time."""
        if self.query_vector is None or text != self.query:
            return None
        return np.asarray(self.query_vector, dtype=np.float32)


@dataclass
class CandidateLists:
    """What one question's retrieval gathered before evidence is built: vector, candidate lists, fused order."""

    vector: np.ndarray
    dense: Ranked
    lexical: Ranked
    fused: list[tuple[str, float]]
    course_ids: list[str] | None = None


class Retriever:
    """Dense + lexical retrieval over one LibraryIndex."""

    def __init__(self, index: LibraryIndex, settings: RetrievalSettings | None = None) -> None:
        self.index = index
        self.settings = settings or index.settings.retrieval
        self.embedder = get_embedder(index.settings.embedding)
        self._blind_checked: tuple[int, float] | None = None  # (ledger generation, monotonic time) of the last check

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        course_ids: Sequence[str] | None = None,
        levels: Sequence[str] | None = None,
    ) -> RetrievalResult:
        """Top-k evidence for a query, filtered by course and level, near-duplicates removed.

        The best BM25 hits that dense search did not return are checked against the vector store: a chunk the
        ledger serves but dense search cannot reach means this worker's vector reader missed an ingest. That is
        logged, the reader is reopened and the question retrieved again, once. The check runs on the first
        question after each new ledger generation, then at most every BLIND_CHECK_EVERY_S seconds.
        """
        searched = self.spell_out_acronyms(query)
        if searched != query:
            result = self.retrieve(searched, k, course_ids, levels)
            return result.model_copy(update={"searched": searched})
        reopens = self.index.store.reopens
        result, lexical_only = self._retrieve(query, k, course_ids, levels)
        if self.index.store.reopens != reopens:
            # Reading the heading vectors found the reader older than the ledger and reopened it: the dense list
            # of this question came from the old reader.
            log.warning("dense search cannot see what the ledger serves (a stale vector reader): retrieving again")
            return self._retrieve(query, k, course_ids, levels)[0]
        blind = set()
        if lexical_only and self._blind_check_due():
            blind = set(lexical_only) - self.index.store.visible(lexical_only)
        if blind:
            log.warning(
                "dense search cannot see %d chunk(s) the ledger serves (%s, ledger generation %d): "
                "reopening the vector store",
                len(blind),
                ", ".join(sorted(blind)[:3]),
                self.index.lexical_generation,
            )
            self.index.reopen_vectors()
            result = self._retrieve(query, k, course_ids, levels)[0]
        return result

    def spell_out_acronyms(self, query: str) -> str:
        """A question that asks what something is, with each acronym followed by its long form as the passages on
        the question's topic spell it out: the best BM25 hits of the whole question that use the acronym, agreeing
        on one long form (a course on cancer and one on couples therapy both use "RAS"). Unchanged when they spell
        none out."""
        wanted = self.settings.spell_out_acronyms and asks_what_it_is(query)
        acronyms = question_acronyms(query)[:_ACRONYMS] if wanted else []
        if not acronyms:
            return query
        hits = self.index.lexical().search(query, _ACRONYM_PASSAGES)
        chunks = self.index.ledger.get_chunks(cid for cid, _ in hits)
        texts = [index_text(chunks[cid]) for cid, _ in hits if cid in chunks]
        forms = {a: form for a in acronyms if (form := library_long_form(a, texts)) is not None}
        return spell_out(query, forms) if forms else query

    def _blind_check_due(self) -> bool:
        """Whether this question checks that dense search reaches the ledger's best BM25 hits (see retrieve)."""
        generation, now = self.index.lexical_generation, time.monotonic()
        last = self._blind_checked
        if last is not None and last[0] == generation and now - last[1] < BLIND_CHECK_EVERY_S:
            return False
        self._blind_checked = (generation, now)
        return True

    def _retrieve(
        self,
        query: str,
        k: int | None,
        course_ids: Sequence[str] | None,
        levels: Sequence[str] | None,
    ) -> tuple[RetrievalResult, list[str]]:
        k = k or self.settings.k
        cfg = self.settings
        timings: dict[str, float] = {}
        lists = self.candidates(query, course_ids, levels, timings)
        t3 = time.perf_counter()
        fused = lists.fused
        answer_probability: float | None = None
        supported: bool | None = None
        if cfg.ranker == "learned":
            from assistant.retrieval.rerank import rerank

            reranked = rerank(query, lists, self.index, cfg.rerank_pool, distinct=cfg.distinct_sections)
            fused = reranked.fused
            # The refusal model reads z-scored and relative signals: over a handful of candidates (a library of a
            # few chunks), or without the library's own cosine scale (no heading vectors to measure it with),
            # those statistics mean nothing, so the two thresholds decide there instead.
            if cfg.refusal == "learned" and len(lists.dense.ids) >= MIN_LEARNED_REFUSAL_POOL and reranked.calibrated:
                answer_probability, supported = reranked.answer_probability, reranked.supported
            timings["rerank"] = (time.perf_counter() - t3) * 1000
        evidence = self._evidence(fused, lists, k)
        timings["fuse"] = (time.perf_counter() - t3) * 1000
        max_dense = max(lists.dense.scores, default=0.0)
        coverage = query_coverage(query, [e.chunk for e in evidence[:3]], self.index)
        result = RetrievalResult(
            evidence=evidence,
            max_dense=max_dense,
            coverage=coverage,
            timings_ms=timings,
            answer_probability=answer_probability,
            supported=supported,
            query=query,
            query_vector=np.asarray(lists.vector, dtype=np.float32).tolist(),
        )
        # Top BM25 hits beyond the dense candidates: normal now and then, but also what a stale vector reader shows.
        dense_ids = set(lists.dense.ids)
        lexical_only = [cid for cid in lists.lexical.ids[:_BLIND_CHECK] if cid not in dense_ids]
        return result, lexical_only

    def candidates(
        self,
        query: str,
        course_ids: Sequence[str] | None = None,
        levels: Sequence[str] | None = None,
        timings: dict[str, float] | None = None,
    ) -> CandidateLists:
        """The query vector, the dense and BM25 candidate lists (ledger-checked, filtered) and their fusion."""
        cfg = self.settings
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        vector = self.embedder.embed_query(query)
        timings["embed"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        dense_hits = self.index.store.query(vector, cfg.candidates, course_ids=course_ids, levels=levels)
        timings["dense"] = (time.perf_counter() - t1) * 1000
        t2 = time.perf_counter()
        filtered = bool(course_ids or levels)
        lexical_hits = self.index.lexical().search(query, cfg.candidates * (8 if filtered else 1))
        timings["lexical"] = (time.perf_counter() - t2) * 1000

        t3 = time.perf_counter()
        wanted = {cid for cid, _ in dense_hits} | {cid for cid, _ in lexical_hits}
        facets = self.index.ledger.chunk_facets(wanted)
        # The ledger is the truth: vectors an interrupted ingest left behind are never served.
        dense_hits = [(cid, s) for cid, s in dense_hits if cid in facets]
        lexical_hits = [
            (cid, s) for cid, s in lexical_hits if cid in facets and _allowed(facets[cid], course_ids, levels)
        ]
        lexical_hits = lexical_hits[: cfg.candidates]
        dense = Ranked([c for c, _ in dense_hits], [s for _, s in dense_hits])
        lexical = Ranked([c for c, _ in lexical_hits], [s for _, s in lexical_hits])
        if cfg.fusion == "rrf":
            fused = fuse_rrf([dense, lexical], cfg.rrf_k)
        else:
            fused = fuse_weighted(dense, lexical, cfg.dense_weight)
        timings["fusion"] = (time.perf_counter() - t3) * 1000
        return CandidateLists(
            vector=vector,
            dense=dense,
            lexical=lexical,
            fused=fused,
            course_ids=list(course_ids) if course_ids else None,
        )

    def _evidence(self, fused: list[tuple[str, float]], lists: CandidateLists, k: int) -> list[Evidence]:
        cfg = self.settings
        dense_score = dict(zip(lists.dense.ids, lists.dense.scores, strict=True))
        lexical_score = dict(zip(lists.lexical.ids, lists.lexical.scores, strict=True))
        dense_rank = {cid: i for i, cid in enumerate(lists.dense.ids, start=1)}
        lexical_rank = {cid: i for i, cid in enumerate(lists.lexical.ids, start=1)}

        evidence: list[Evidence] = []
        kept_tokens: list[set[str]] = []
        # Whole chunks (text, location) load only for the head of the fused list: parsing 200 of them per
        # question cost more than the rest of fusion at 100k chunks. Another slice loads if de-duplication
        # drops enough of the head.
        slice_size = max(4 * k, 16)
        for start in range(0, len(fused), slice_size):
            head = fused[start : start + slice_size]
            chunks = self.index.ledger.get_chunks(cid for cid, _ in head)
            for cid, score in head:
                chunk = chunks.get(cid)
                if chunk is None:  # removed by a re-ingest between the two reads
                    continue
                if cfg.dedup_similarity < 1.0:
                    tokens = set(tokenize(chunk.text))
                    if any(jaccard(tokens, other) >= cfg.dedup_similarity for other in kept_tokens):
                        continue
                    kept_tokens.append(tokens)
                evidence.append(
                    Evidence(
                        key=f"S{len(evidence) + 1}",
                        chunk=chunk,
                        score=float(score),
                        dense_score=dense_score.get(cid),
                        lexical_score=lexical_score.get(cid),
                        dense_rank=dense_rank.get(cid),
                        lexical_rank=lexical_rank.get(cid),
                    )
                )
                if len(evidence) >= k:
                    break
            if len(evidence) >= k:
                break
        return evidence


def _allowed(facets: tuple[str, str], course_ids: Sequence[str] | None, levels: Sequence[str] | None) -> bool:
    """Whether a chunk with these (course id, level) passes the course and level filters."""
    course_id, level = facets
    if course_ids and course_id not in course_ids:
        return False
    return not (levels and level not in levels)


def query_coverage(query: str, chunks: Sequence[Chunk], index: LibraryIndex) -> float:
    """IDF-weighted share of the query's terms found in the best single passage among `chunks` (0..1).

    A question about something the library never mentions ("VBA macros") can still sit close to a
    course in embedding space; its rare terms are what is missing. One passage has to hold them: terms
    scattered over several passages (the union) are weaker support, and on SciFact (exclusion trick, train)
    the best-passage share separates answerable from unanswerable queries better (AUC 0.71 vs 0.67).
    """
    terms = set(tokenize(query)) - chat_filler_terms()
    if not terms or not chunks:
        return 0.0
    idf = index.lexical().idf(terms)
    total = sum(idf.values())
    if total <= 0:
        return 0.0
    best = 0.0
    for chunk in chunks:
        present = terms.intersection(tokenize(index_text(chunk)))
        best = max(best, sum(idf[t] for t in present) / total)
    return best
