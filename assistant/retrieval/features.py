"""Per-candidate signals for the learned ranking step, computed in one vectorised pass per question.

Inputs are what retrieval already has: the query vector, the dense and BM25 candidate lists, the BM25 term
counts of the candidates (rows of the lexical index, no chunk text is parsed) and the section view (heading
vectors, heading BM25, position in section). No model is called here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.core.text import chat_filler_terms, tokenize
from assistant.index.lexical import LexicalIndex
from assistant.index.sections import SectionIndex
from assistant.index.sentences import SentenceStore

# Order matters: the shipped ranker's coefficients are stored by name and applied in this order.
FEATURES: tuple[str, ...] = (
    "dense",  # cosine of the chunk vector
    "dense_z",  # the same, z-scored over this question's dense candidates
    "dense_gap",  # cosine minus the best cosine of this question
    "lexical_z",  # BM25 z-scored over this question's BM25 candidates (floor when absent)
    "lexical_rel",  # BM25 / best BM25 of this question
    "heading_dense",  # cosine of the chunk's section heading trail
    "heading_gap",  # heading cosine minus the best heading cosine of this question
    "heading_lexical_rel",  # BM25 of the heading trail / best heading BM25 of this question
    "coverage",  # IDF-weighted share of the question's terms in the chunk (heading trail + text)
    "heading_coverage",  # the same share in the heading trail
    "first_in_section",  # 1 / (1 + position of the chunk in its section)
    "log_length",  # log(1 + indexed terms of the chunk)
    "parent_share",  # share of the candidates that sit in the same top-level section (module + first heading)
    "parent_best_dense_z",  # best dense_z among the candidates of that top-level section
    "sentence_best",  # best cosine of one of the chunk's sentences (late-chunked vectors; the chunk's when none)
    "sentence_gap",  # that minus the best sentence cosine of this question's candidates
)


@dataclass
class CandidateSet:
    """Candidates of one question and their feature matrix (rows follow `ids`)."""

    ids: list[str]
    features: np.ndarray
    best_heading_dense: float
    best_heading_lexical: float

    def column(self, name: str) -> np.ndarray:
        return self.features[:, FEATURES.index(name)]


def _z(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    std = float(values.std())
    return float(values.mean()), std if std > 1e-9 else 1.0


def query_terms(query: str) -> list[str]:
    return sorted(set(tokenize(query)) - chat_filler_terms())


def _coverage(index: LexicalIndex, rows: Sequence[int | None], terms: Sequence[str], idf: np.ndarray) -> np.ndarray:
    """IDF-weighted share of `terms` present in each row of `index` (0 for a missing row)."""
    out = np.zeros(len(rows), dtype=np.float32)
    total = float(idf.sum())
    cols = [index.vocab.get(t) for t in terms]
    present_cols = [(i, c) for i, c in enumerate(cols) if c is not None]
    valid = [(k, r) for k, r in enumerate(rows) if r is not None]
    if total <= 0 or not present_cols or not valid:
        return out
    sub = index.tf[[r for _, r in valid]][:, [c for _, c in present_cols]].toarray() > 0
    weights = idf[[i for i, _ in present_cols]]
    out[[k for k, _ in valid]] = (sub * weights).sum(axis=1) / total
    return out


def candidate_features(
    query: str,
    query_vector: np.ndarray,
    dense: tuple[Sequence[str], Sequence[float]],
    lexical: tuple[Sequence[str], Sequence[float]],
    pool: Sequence[str],
    chunk_lexical: LexicalIndex,
    sections: SectionIndex | None,
    course_ids: Sequence[str] | None = None,
    sentences: SentenceStore | None = None,
) -> CandidateSet:
    """Feature rows for the chunk ids in `pool`, given the question's dense and BM25 candidate lists."""
    ids = list(pool)
    n = len(ids)
    feats = np.zeros((n, len(FEATURES)), dtype=np.float32)
    if n == 0:
        return CandidateSet(ids, feats, 0.0, 0.0)
    d_scores = dict(zip(dense[0], dense[1], strict=True))
    l_scores = dict(zip(lexical[0], lexical[1], strict=True))
    d_all = np.asarray(dense[1], dtype=np.float32)
    l_all = np.asarray(lexical[1], dtype=np.float32)
    d_floor = float(d_all.min()) if d_all.size else 0.0
    d_best = float(d_all.max()) if d_all.size else 0.0
    d_mean, d_std = _z(d_all)
    l_mean, l_std = _z(l_all)
    l_best = float(l_all.max()) if l_all.size else 0.0
    l_floor_z = float((l_all.min() - l_mean) / l_std) if l_all.size else 0.0
    d = np.asarray([d_scores.get(c, d_floor) for c in ids], dtype=np.float32)
    lx = np.asarray([l_scores.get(c, 0.0) for c in ids], dtype=np.float32)
    in_lex = np.asarray([c in l_scores for c in ids])
    feats[:, 0] = d
    feats[:, 1] = (d - d_mean) / d_std
    feats[:, 2] = d - d_best
    feats[:, 3] = np.where(in_lex, (lx - l_mean) / l_std, l_floor_z)
    feats[:, 4] = lx / l_best if l_best > 0 else 0.0

    terms = query_terms(query)
    idf_map = chunk_lexical.idf(terms) if terms else {}
    idf = np.asarray([idf_map.get(t, 0.0) for t in terms], dtype=np.float32)
    rows = [chunk_lexical.row_of(c) for c in ids]
    feats[:, 8] = _coverage(chunk_lexical, rows, terms, idf)
    lengths = np.zeros(n, dtype=np.float32)
    valid = [(k, r) for k, r in enumerate(rows) if r is not None]
    if valid:
        sums = np.asarray(chunk_lexical.tf[[r for _, r in valid]].sum(axis=1)).ravel()
        lengths[[k for k, _ in valid]] = sums
    feats[:, 11] = np.log1p(lengths)

    best_hd = best_hl = 0.0
    if sections is not None and len(sections):
        srow = [sections.chunk_row.get(c) for c in ids]
        known = np.asarray([r is not None for r in srow])
        idx = np.asarray([r if r is not None else 0 for r in srow])
        # Heading cosines for the pool's sections and the dense candidates' sections: the best heading of the
        # library is, in practice, among them (and they already respect the course and level filters).
        near = {sections.chunk_row[c] for c in dense[0] if c in sections.chunk_row}
        heading_rows = np.asarray(sorted(near | {int(r) for r in idx[known]}), dtype=np.int64)
        scored = sections.dense_scores(query_vector, heading_rows)
        h_dense_of = dict(zip(heading_rows.tolist(), scored.tolist(), strict=True))
        best_hd = float(scored.max()) if scored.size else 0.0
        h_lex = sections.lexical_scores(query)
        mask = sections.allowed(course_ids)
        if mask is not None:  # a course filter hides the other courses' headings too
            h_lex = np.where(mask, h_lex, 0.0)
        best_hl = float(h_lex.max())
        h_pool = np.asarray([h_dense_of.get(int(r), 0.0) for r in idx], dtype=np.float32)
        feats[:, 5] = np.where(known, h_pool, 0.0)
        feats[:, 6] = np.where(known, h_pool - best_hd, -1.0)
        feats[:, 7] = np.where(known, h_lex[idx] / best_hl, 0.0) if best_hl > 0 else 0.0
        feats[:, 9] = _coverage(sections.lexical, srow, terms, idf)
        feats[:, 10] = [1.0 / (1.0 + sections.chunk_position.get(c, 0)) for c in ids]
        parent = np.asarray([sections.chunk_parent.get(c, -1 - k) for k, c in enumerate(ids)])
        same = parent[:, None] == parent[None, :]
        feats[:, 12] = same.sum(axis=1) / n
        feats[:, 13] = np.where(same, feats[None, :, 1], -np.inf).max(axis=1)
    else:
        feats[:, 12] = 1.0 / n
        feats[:, 13] = feats[:, 1]
        feats[:, 6] = -1.0
        feats[:, 10] = 1.0
    feats[:, 14] = sentence_best(query_vector, ids, d, sentences)
    feats[:, 15] = feats[:, 14] - feats[:, 14].max()
    return CandidateSet(ids, feats, best_hd, best_hl)


def sentence_best(
    query_vector: np.ndarray, ids: Sequence[str], dense: np.ndarray, sentences: SentenceStore | None
) -> np.ndarray:
    """Best sentence cosine per chunk; a chunk without stored sentences (an embedder without token outputs, an
    index built before them) counts as one sentence, its own cosine, so the signal is neutral there."""
    if sentences is None:
        return dense.astype(np.float32)
    best = sentences.best_cosine(query_vector, ids)
    return np.where(np.isnan(best), dense, best).astype(np.float32)
