"""BEIR benchmark runner: index a BEIR dataset through the product's own index and retriever, then score it.

Every document becomes one `Chunk` (course "beir", module = the document id, module title = its title), so what
is embedded and BM25-indexed is exactly what the product indexes: ``index_text(chunk)`` = heading trail + text.
Vectors live in an embedded Chroma store under ``work_dir``; BM25 is the product's `LexicalIndex` built from the
ledger's term counts; queries go through `Retriever.retrieve`. Document vectors are cached on disk, so the corpus
is embedded once per model, and the whole index is reused when the corpus and settings are unchanged.

Metrics follow BEIR (pytrec_eval): nDCG@10 with graded gains from the qrels and a log2 rank discount,
recall@100 over the relevant documents, MRR@10; queries without a relevant document in the split are skipped,
and a document whose id equals the query id is ignored (BEIR's ``ignore_identical_ids``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.settings import ChromaSettings, IndexSettings, RetrievalSettings, Settings
from assistant.core.text import index_text, term_counts
from assistant.core.types import Chunk, Course, Location
from assistant.index.ledger import DocumentRecord
from assistant.index.library import LibraryIndex
from assistant.index.sections import SectionMap, sync_section_vectors
from assistant.models.embeddings import get_embedder
from assistant.retrieval.retriever import Ranked, Retriever, fuse_rrf, fuse_weighted
from evals.metrics import percentile

# Bumped whenever the way a BEIR document becomes a chunk changes, so an old index is never reused.
LAYOUT_VERSION = 2
COURSE_ID = "beir"
_FINGERPRINT_KEY = "beir_fingerprint"
_EMBED_BATCH = 256

Progress = Callable[[int, int], None]


class BeirDocument(BaseModel):
    id: str
    title: str = ""
    text: str = ""


class BeirQuery(BaseModel):
    id: str
    text: str


class BeirDataset(BaseModel):
    """A BEIR dataset: corpus, queries and the qrels of one split (query id -> doc id -> grade)."""

    name: str
    documents: list[BeirDocument]
    queries: list[BeirQuery]
    qrels: dict[str, dict[str, int]]
    corpus_sha1: str


class FusionConfig(BaseModel):
    """The retrieval settings a run used."""

    fusion: str
    dense_weight: float
    rrf_k: int
    candidates: int
    dedup_similarity: float


class Variant(BaseModel):
    """A fusion setting scored from the same candidate lists as the main run (for tuning)."""

    name: str
    fusion: Literal["rrf", "weighted"] = "weighted"
    dense_weight: float = 0.5
    rrf_k: int = 60
    candidates: int = Field(default=100, ge=1)


class Scores(BaseModel):
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float


class VariantScore(Scores):
    name: str


class BeirResult(Scores):
    """Scores of one BEIR run with the product's retriever, plus how long indexing and querying took."""

    dataset: str
    split: str
    queries: int
    documents: int
    embedding: str = Field(default="", description="provider|model, plus |int8 for the quantized local backend.")
    fusion: FusionConfig
    index_reused: bool
    seconds_index: float = Field(description="Building (or reopening) the index, embedding included.")
    seconds_model: float = Field(description="Loading the query embedding model.")
    seconds_query: float
    latency_ms_p50: float
    latency_ms_p95: float
    variants: list[VariantScore] = Field(default_factory=list)


# -- loading ------------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> doc id -> grade, from a BEIR qrels TSV (header line optional)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] == "query-id":
                continue
            try:
                grade = int(float(parts[2]))
            except ValueError:
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = grade
    return qrels


def load_dataset(dataset_dir: Path, split: str) -> BeirDataset:
    """Corpus, the queries that have at least one relevant document in `split`, and that split's qrels."""
    corpus_path = dataset_dir / "corpus.jsonl"
    qrels_path = dataset_dir / "qrels" / f"{split}.tsv"
    for path in (corpus_path, dataset_dir / "queries.jsonl", qrels_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: is {dataset_dir} a BEIR dataset with a '{split}' split?")
    documents = [
        BeirDocument(id=str(row["_id"]), title=str(row.get("title") or ""), text=str(row.get("text") or ""))
        for row in _read_jsonl(corpus_path)
    ]
    qrels = {q: docs for q, docs in load_qrels(qrels_path).items() if any(g > 0 for g in docs.values())}
    queries = [
        BeirQuery(id=str(row["_id"]), text=str(row["text"]))
        for row in _read_jsonl(dataset_dir / "queries.jsonl")
        if str(row["_id"]) in qrels
    ]
    return BeirDataset(
        name=dataset_dir.resolve().name,
        documents=documents,
        queries=queries,
        qrels=qrels,
        corpus_sha1=hashlib.sha1(corpus_path.read_bytes()).hexdigest(),
    )


# -- metrics ------------------------------------------------------------------------------------------------


def ndcg_at_k(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (the qrels grade) and a 1/log2(rank + 1) discount, as trec_eval computes it."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], start=1))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    wanted = {doc for doc, g in relevant.items() if g > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def mrr_at_k(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranking[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_rankings(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> Scores:
    """Mean nDCG@10, recall@100 and MRR@10 over the queries of `qrels` (a missing ranking scores 0)."""
    ids = list(qrels)
    if not ids:
        return Scores(ndcg_at_10=0.0, recall_at_100=0.0, mrr_at_10=0.0)
    n = len(ids)
    return Scores(
        ndcg_at_10=sum(ndcg_at_k(rankings.get(q, []), qrels[q]) for q in ids) / n,
        recall_at_100=sum(recall_at_k(rankings.get(q, []), qrels[q]) for q in ids) / n,
        mrr_at_10=sum(mrr_at_k(rankings.get(q, []), qrels[q]) for q in ids) / n,
    )


# -- indexing -----------------------------------------------------------------------------------------------


def benchmark_settings(settings: Settings, work_dir: Path, dedup: bool = False) -> Settings:
    """The caller's settings with the index in `work_dir` (embedded Chroma) and at least 100 candidates.

    Near-duplicate suppression is off unless `dedup` (distinct abstracts are never duplicates): the threshold is
    set to 1.0, which only drops a passage whose token set is identical to a better-ranked one.
    """
    update: dict[str, object] = {"candidates": max(settings.retrieval.candidates, 100)}
    if not dedup:
        update["dedup_similarity"] = 1.0
    retrieval = settings.retrieval.model_copy(update=update)
    return settings.model_copy(
        update={"index": IndexSettings(dir=work_dir), "chroma": ChromaSettings(), "retrieval": retrieval}
    )


def chunk_for(dataset: str, doc: BeirDocument) -> Chunk:
    """One document as one chunk: index_text = '<dataset> › <title>\\n<text>'."""
    content_hash = hashlib.sha1(doc.text.encode()).hexdigest()
    return Chunk(
        id=hashlib.sha1(f"{COURSE_ID}\0{dataset}\0{doc.id}".encode()).hexdigest()[:24],
        text=doc.text or doc.title,
        location=Location(
            course_id=COURSE_ID, course_title=dataset, module=doc.id, module_title=doc.title or doc.id, section=()
        ),
        ordinal=0,
        tokens=len(doc.text.split()),
        content_hash=content_hash,
    )


def _fingerprint(data: BeirDataset, settings: Settings) -> str:
    recipe = f"{LAYOUT_VERSION}|{data.name}|{data.corpus_sha1}|{settings.collection_name()}"
    return hashlib.sha1(recipe.encode()).hexdigest()


def _embedding_key(texts: Sequence[str], settings: Settings) -> str:
    """Names the vector cache after the model and the exact texts (not the chunker, which BEIR does not use)."""
    digest = hashlib.sha1(settings.embedding.vectors_recipe().encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    slug = re.sub(r"[^a-z0-9]+", "-", settings.embedding.model.lower()).strip("-")[:32]
    return f"{slug}-{digest.hexdigest()[:16]}"


def _embed_cached(texts: Sequence[str], settings: Settings, cache: Path, progress: Progress | None) -> np.ndarray:
    """Document vectors in input order, read from `cache` when it holds this exact input, else embedded once."""
    if cache.is_file():
        vectors = np.load(cache)
        if vectors.shape[0] == len(texts):
            return np.asarray(vectors, dtype=np.float32)
    embedder = get_embedder(settings.embedding)
    # Longest first in fixed batches: each batch pads to similar lengths, and progress can be reported.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: np.ndarray | None = None
    for start in range(0, len(order), _EMBED_BATCH):
        batch = order[start : start + _EMBED_BATCH]
        got = embedder.embed_documents([texts[i] for i in batch])
        if out is None:
            out = np.zeros((len(texts), got.shape[1]), dtype=np.float32)
        out[batch] = got
        if progress:
            progress(min(start + _EMBED_BATCH, len(order)), len(order))
    vectors = out if out is not None else np.zeros((0, 0), dtype=np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(cache)
    return vectors


def sync_beir_sections(index: LibraryIndex, chunks: Sequence[Chunk], settings: Settings) -> None:
    """Heading-trail vectors for the documents (dataset › title), embedded once and cached like the corpus."""
    mapping = SectionMap.from_chunks(chunks)
    texts = mapping.texts({})
    ids = sorted(texts)
    cache = Path(settings.index.dir) / "embeddings" / f"{_embedding_key([texts[i] for i in ids], settings)}.npy"
    vectors = _embed_cached([texts[i] for i in ids], settings, cache, None)
    sync_section_vectors(index.section_store, texts, lambda wanted: _rows(wanted, texts, ids, vectors))
    mapping.save(index.sections_path, index.ledger.generation)


def _rows(wanted: list[str], texts: Mapping[str, str], ids: list[str], vectors: np.ndarray) -> np.ndarray:
    """Cached vectors of the heading texts `wanted` (texts, in the order sync_section_vectors asks for them)."""
    row_of_text = {texts[sid]: i for i, sid in enumerate(ids)}
    return vectors[[row_of_text[t] for t in wanted]]


def open_beir_index(
    data: BeirDataset, settings: Settings, progress: Progress | None = None
) -> tuple[LibraryIndex, bool]:
    """The LibraryIndex holding `data`'s corpus, built unless one for the same corpus and settings exists.

    Returns the index and whether it was reused. `settings` must already point at the benchmark work dir.
    """
    fingerprint = _fingerprint(data, settings)
    n_docs = len(data.documents)
    index = LibraryIndex(settings)
    if (
        index.ledger.get_meta(_FINGERPRINT_KEY) == fingerprint
        and index.ledger.chunk_count() == n_docs
        and index.store.count() == n_docs
    ):
        return index, True

    # Anything else under this collection is stale: start from an empty ledger, snapshot and collection.
    index.ledger.close()
    index.store.drop()
    shutil.rmtree(index.dir, ignore_errors=True)
    index = LibraryIndex(settings)

    chunks = [chunk_for(data.name, doc) for doc in data.documents]
    texts = [index_text(c) for c in chunks]
    cache = Path(settings.index.dir) / "embeddings" / f"{_embedding_key(texts, settings)}.npy"
    vectors = _embed_cached(texts, settings, cache, progress)
    index.store.upsert(chunks, vectors)

    terms = {c.id: term_counts(t) for c, t in zip(chunks, texts, strict=True)}
    for doc, chunk in zip(data.documents, chunks, strict=True):
        record = DocumentRecord(
            path=f"{data.name}/{doc.id}",
            course_id=COURSE_ID,
            file_hash=chunk.content_hash,
            size=len(chunk.text),
            mtime_ns=0,
            kind="beir",
            title=doc.title,
            pages=None,
        )
        index.ledger.replace_document(record, [chunk], {chunk.id: terms[chunk.id]})
    index.ledger.save_courses(
        [Course(id=COURSE_ID, title=data.name, description=f"BEIR dataset {data.name}", folder=data.name)]
    )
    index.rebuild_lexical().save(index.lexical_path, index.ledger.generation)
    sync_beir_sections(index, chunks, settings)
    index.ledger.set_meta(_FINGERPRINT_KEY, fingerprint)
    return index, False


# -- querying -----------------------------------------------------------------------------------------------


def candidate_lists(index: LibraryIndex, retriever: Retriever, query: str, n: int) -> tuple[Ranked, Ranked]:
    """The dense and lexical candidate lists `Retriever.retrieve` fuses (unfiltered), as BEIR doc ids."""
    vector = retriever.embedder.embed_query(query)
    dense_hits = index.store.query(vector, n)
    lexical_hits = index.lexical().search(query, n)
    doc_of = _doc_ids(index, [c for c, _ in dense_hits] + [c for c, _ in lexical_hits])
    dense = [(doc_of[c], s) for c, s in dense_hits if c in doc_of]
    lexical = [(doc_of[c], s) for c, s in lexical_hits if c in doc_of]
    return Ranked([d for d, _ in dense], [s for _, s in dense]), Ranked(
        [d for d, _ in lexical], [s for _, s in lexical]
    )


def _doc_ids(index: LibraryIndex, chunk_ids: Sequence[str]) -> dict[str, str]:
    return {cid: chunk.location.module for cid, chunk in index.ledger.get_chunks(set(chunk_ids)).items()}


def fuse_variant(dense: Ranked, lexical: Ranked, variant: Variant) -> list[str]:
    """Doc ids best first under one fusion variant, using the product's fusion functions."""
    d = Ranked(dense.ids[: variant.candidates], dense.scores[: variant.candidates])
    lx = Ranked(lexical.ids[: variant.candidates], lexical.scores[: variant.candidates])
    fused = fuse_rrf([d, lx], variant.rrf_k) if variant.fusion == "rrf" else fuse_weighted(d, lx, variant.dense_weight)
    return [doc for doc, _ in fused]


def _without_self(ranking: list[str], query_id: str) -> list[str]:
    return [doc for doc in ranking if doc != query_id]


def run_beir(
    dataset_dir: Path,
    settings: Settings,
    split: str = "test",
    work_dir: Path | None = None,
    progress: Progress | None = None,
    variants: Sequence[Variant] | None = None,
    dedup: bool = False,
) -> BeirResult:
    """Index (or reuse) a BEIR dataset with the product's code path and score `Retriever.retrieve(q, k=100)`.

    `progress(done, total)` is called while documents are embedded (first build only), then restarts over the
    queries. `variants` are extra fusion settings scored from the same dense and lexical candidate lists (for
    tuning on the train split); `dedup` keeps the product's near-duplicate suppression on.
    """
    dataset_dir = Path(dataset_dir)
    data = load_dataset(dataset_dir, split)
    work_dir = Path(work_dir) if work_dir is not None else Path(".coursepilot") / "beir" / data.name
    bench = benchmark_settings(settings, work_dir, dedup=dedup)

    started = time.perf_counter()
    index, reused = open_beir_index(data, bench, progress)
    index.lexical()  # load the BM25 snapshot now, so its load time is not charged to the first query
    seconds_index = time.perf_counter() - started
    started = time.perf_counter()
    retriever = Retriever(index, bench.retrieval)
    retriever.embedder.embed_query("warm up")
    seconds_model = time.perf_counter() - started

    rankings: dict[str, list[str]] = {}
    variant_rankings: dict[str, dict[str, list[str]]] = {v.name: {} for v in variants or ()}
    latencies: list[float] = []
    started = time.perf_counter()
    for done, query in enumerate(data.queries, start=1):
        t0 = time.perf_counter()
        result = retriever.retrieve(query.text, k=100)
        latencies.append((time.perf_counter() - t0) * 1000)
        rankings[query.id] = _without_self([e.chunk.location.module for e in result.evidence], query.id)
        if variants:
            n = max(v.candidates for v in variants)
            dense, lexical = candidate_lists(index, retriever, query.text, n)
            for variant in variants:
                fused = fuse_variant(dense, lexical, variant)
                variant_rankings[variant.name][query.id] = _without_self(fused, query.id)[:100]
        if progress:
            progress(done, len(data.queries))
    seconds_query = time.perf_counter() - started

    cfg = bench.retrieval
    scores = score_rankings(rankings, data.qrels)
    latencies.sort()
    return BeirResult(
        dataset=data.name,
        split=split,
        queries=len(data.queries),
        documents=len(data.documents),
        embedding=settings.embedding.vectors_recipe(),
        **scores.model_dump(),
        fusion=_fusion_config(cfg),
        index_reused=reused,
        seconds_index=round(seconds_index, 3),
        seconds_model=round(seconds_model, 3),
        seconds_query=round(seconds_query, 3),
        latency_ms_p50=round(statistics.median(latencies), 2) if latencies else 0.0,
        latency_ms_p95=round(percentile(latencies, 95), 2) if latencies else 0.0,
        variants=[
            VariantScore(name=v.name, **score_rankings(variant_rankings[v.name], data.qrels).model_dump())
            for v in variants or ()
        ],
    )


def _fusion_config(cfg: RetrievalSettings) -> FusionConfig:
    return FusionConfig(
        fusion=cfg.fusion,
        dense_weight=cfg.dense_weight,
        rrf_k=cfg.rrf_k,
        candidates=cfg.candidates,
        dedup_similarity=cfg.dedup_similarity,
    )


__all__ = [
    "BeirDataset",
    "BeirResult",
    "FusionConfig",
    "Variant",
    "VariantScore",
    "load_dataset",
    "mrr_at_k",
    "ndcg_at_k",
    "open_beir_index",
    "recall_at_k",
    "run_beir",
    "score_rankings",
]
