"""Candidate features with gold labels for the public benchmarks: what the ranker and the refusal model learn
from, and what the ablation scores.

One `QueryCase` per question holds the ranking step's feature rows for the head of the fused list, the gold
grade of every candidate that any compared ranking puts in its top 10, and the baseline rankings (dense only,
BM25 only, plain RRF, the z-score fusion) computed from the same candidate lists in the same run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.core.types import Chunk
from assistant.index.library import LibraryIndex
from assistant.retrieval.features import FEATURES
from assistant.retrieval.ranker import LinearModel
from assistant.retrieval.refusal import EMPTY_INPUTS, RefusalInputs, refusal_signals
from assistant.retrieval.rerank import features_for, inputs_for, order_by
from assistant.retrieval.retriever import CandidateLists, Retriever, fuse_rrf
from assistant.retrieval.section_vote import distinct_sections_first, section_keys
from evals.beir import BeirDataset, ndcg_at_k
from evals.openstax import LibraryQuestion, is_hit

Progress = Callable[[int, int], None]
BASELINES = ("dense", "bm25", "rrf", "fusion")
_LABEL_DEPTH = 10


@dataclass
class QueryCase:
    """One question's candidates, features, gold grades and baseline rankings."""

    dataset: str
    qid: str
    pool: list[str]
    features: np.ndarray
    grades: dict[str, int]
    relevant: dict[str, int]
    rankings: dict[str, list[str]]
    max_dense: float
    best_heading_dense: float
    refusal: RefusalInputs = EMPTY_INPUTS
    keys: list[int] = field(default_factory=list)  # the top-level section of each pool candidate

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([self.grades.get(c, 0) > 0 for c in self.pool], dtype=bool)


def _baselines(lists: CandidateLists) -> dict[str, list[str]]:
    return {
        "dense": list(lists.dense.ids),
        "bm25": list(lists.lexical.ids),
        "rrf": [c for c, _ in fuse_rrf([lists.dense, lists.lexical])],
        "fusion": [c for c, _ in lists.fused],
    }


def _case(
    dataset: str,
    qid: str,
    query: str,
    lists: CandidateLists,
    index: LibraryIndex,
    pool: int,
    grade: Callable[[Chunk], int],
    relevant: Mapping[str, int] | None = None,
) -> QueryCase:
    cands = features_for(query, lists, index, pool)
    rankings = _baselines(lists)
    wanted = set(cands.ids) | {c for r in rankings.values() for c in r[:_LABEL_DEPTH]}
    chunks = index.ledger.get_chunks(wanted)
    grades = {cid: grade(chunk) for cid, chunk in chunks.items()}
    return QueryCase(
        dataset=dataset,
        qid=qid,
        pool=cands.ids,
        features=cands.features,
        grades={c: g for c, g in grades.items() if g > 0},
        relevant=dict(relevant) if relevant is not None else {c: g for c, g in grades.items() if g > 0},
        rankings=rankings,
        max_dense=max(lists.dense.scores, default=0.0),
        best_heading_dense=cands.best_heading_dense,
        refusal=inputs_for(query, lists, index, cands),
        keys=section_keys(cands.ids, index.sections()),
    )


def _library_grade(question: LibraryQuestion, chunk: Chunk) -> int:
    return int(is_hit(chunk.location, question))


def _beir_grade(qrels: Mapping[str, int], chunk: Chunk) -> int:
    return int(qrels.get(chunk.location.module, 0))


def library_cases(
    name: str,
    index: LibraryIndex,
    retriever: Retriever,
    questions: Sequence[LibraryQuestion],
    pool: int,
    exclude_gold_course: bool = False,
    progress: Progress | None = None,
) -> list[QueryCase]:
    """Cases for library questions; with `exclude_gold_course`, retrieval is limited to the other courses."""
    courses = sorted(index.ledger.courses())
    out: list[QueryCase] = []
    for done, q in enumerate(questions, start=1):
        course_ids = [c for c in courses if c != q.course] if exclude_gold_course else None
        query = retriever.spell_out_acronyms(q.q)  # searched as the assistant searches it
        lists = retriever.candidates(query, course_ids=course_ids)
        out.append(_case(name, q.id, query, lists, index, pool, functools.partial(_library_grade, q)))
        if progress:
            progress(done, len(questions))
    return out


def beir_cases(
    index: LibraryIndex, retriever: Retriever, data: BeirDataset, pool: int, progress: Progress | None = None
) -> list[QueryCase]:
    """Cases for BEIR queries (a chunk's module is its document id; a document equal to the query is dropped)."""
    from evals.beir import chunk_for

    chunk_of = {doc.id: chunk_for(data.name, doc).id for doc in data.documents}
    out: list[QueryCase] = []
    for done, query in enumerate(data.queries, start=1):
        text = retriever.spell_out_acronyms(query.text)
        lists = retriever.candidates(text)
        qrels = data.qrels[query.id]
        relevant = {chunk_of[d]: g for d, g in qrels.items() if g > 0 and d in chunk_of}
        out.append(
            _case(
                data.name,
                query.id,
                text,
                lists,
                index,
                pool,
                functools.partial(_beir_grade, qrels),
                relevant,
            )
        )
        if progress:
            progress(done, len(data.queries))
    return out


# -- rankings and scores ------------------------------------------------------------------------------------


def ranked_ids(
    case: QueryCase,
    variant: str,
    ranker: LinearModel | None,
    drop: frozenset[str] = frozenset(),
    distinct: int = 0,
) -> list[str]:
    """A case's ranking under a baseline name, or under the ranker (features in `drop` held at their mean),
    with the first `distinct` places given to distinct sections as the retriever does (`section_vote`)."""
    if variant in case.rankings:
        return case.rankings[variant]
    assert ranker is not None
    logits = ranker.logits(case.features, FEATURES, drop) if case.pool else np.zeros(0)
    pool = [c for c, _ in sorted(zip(case.pool, logits.tolist(), strict=True), key=lambda item: (-item[1], item[0]))]
    if distinct > 0 and case.keys:
        key_of = dict(zip(case.pool, case.keys, strict=True))
        pool = [pool[i] for i in distinct_sections_first(pool, [key_of[c] for c in pool], distinct)]
    rest = [c for c in case.rankings["fusion"] if c not in set(case.pool)]
    return pool + rest


def ranker_logits(case: QueryCase, ranker: LinearModel) -> np.ndarray:
    return ranker.logits(case.features, FEATURES) if case.pool else np.zeros(0)


def hit_rate(cases: Iterable[QueryCase], rankings: Mapping[str, Sequence[str]], k: int) -> float:
    cases = list(cases)
    if not cases:
        return 0.0
    return sum(any(case.grades.get(c, 0) > 0 for c in rankings[case.qid][:k]) for case in cases) / len(cases)


def mean_ndcg(cases: Iterable[QueryCase], rankings: Mapping[str, Sequence[str]], k: int = 10) -> float:
    cases = list(cases)
    if not cases:
        return 0.0
    return sum(ndcg_at_k(rankings[case.qid], case.relevant, k) for case in cases) / len(cases)


def refusal_rows(cases: Sequence[QueryCase], ranker: LinearModel) -> np.ndarray:
    """REFUSAL_FEATURES rows, one per case, from the case's features and the ranker's logits."""
    from assistant.retrieval.features import CandidateSet

    rows = [
        refusal_signals(CandidateSet(c.pool, c.features, c.best_heading_dense, 0.0), ranker, c.refusal) for c in cases
    ]
    return np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


__all__ = [
    "BASELINES",
    "QueryCase",
    "beir_cases",
    "hit_rate",
    "library_cases",
    "mean_ndcg",
    "order_by",
    "ranked_ids",
    "ranker_logits",
    "refusal_rows",
]
