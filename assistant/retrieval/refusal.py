"""Refusal as one calibrated decision: a logistic model over signals of the ranked candidates.

Every signal is meant to read the same on a library nobody tuned for, so none is a raw cosine (its level
differs from one library to the next):

* the ranker's logit of its best candidate with the absolute-cosine features held at their training mean;
* the best chunk and heading cosines as z-scores against the library's own scale (`library_scale`);
* how much of the question's IDF mass (its rare terms) the best passage and its heading hold, and how
  *saliently* the top 3 hold it: a term in the passage's heading or repeated in it counts, one mention in
  passing does not. A question whose rare terms are what a heading is about ("What is the GROW model?") scores
  high; one whose rare terms occur once in an example sentence ("How do I file my expense report?") does not.

The model is calibrated with the exclusion trick on two train sets with different cosine scales (openstax
train with the gold course filtered out, SciFact train with the gold documents removed), weighted equally
(`coursepilot eval fit-ranker`), and its threshold is chosen there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.index.lexical import LexicalIndex
from assistant.index.sections import SectionIndex
from assistant.retrieval.features import FEATURES, CandidateSet, query_terms
from assistant.retrieval.library_scale import NEUTRAL, LibraryScale
from assistant.retrieval.ranker import LinearModel

# Ranker features on a library's absolute cosine scale: the refusal model reads the best candidate's logit with
# these held at their training mean, and reads the cosines themselves against the library's own scale instead.
ABSOLUTE_FEATURES = frozenset({"dense", "heading_dense", "sentence_best"})

REFUSAL_FEATURES: tuple[str, ...] = (
    "top_logit_rel",  # the ranker's logit of the best candidate without its absolute-cosine features
    "dense_lib_z",  # best chunk cosine as a z-score against the library's own scale
    "heading_lib_z",  # best heading cosine, the same
    "top_coverage",  # IDF-weighted share of the question's terms in the best candidate
    "top_heading_coverage",  # the same share in the best candidate's heading trail
    "salient_coverage3",  # share of the IDF mass in a top-3 passage's heading or repeated in it (not in passing)
)


@dataclass(frozen=True)
class RefusalInputs:
    """What the refusal signals need beyond the ranker's features: per-candidate term evidence and cosines."""

    salient: np.ndarray  # per pool candidate
    dense_lib_z: float
    heading_lib_z: float
    scaled: bool = True  # whether the library's scale could be measured (else the z-scores are 0)


EMPTY_INPUTS = RefusalInputs(np.zeros(0), -5.0, -5.0)


def _counts(index: LexicalIndex, rows: Sequence[int | None], terms: Sequence[str]) -> np.ndarray:
    """Term counts (candidates x terms) from a BM25 index's rows; zeros for missing rows or unknown terms."""
    out = np.zeros((len(rows), len(terms)), dtype=np.float32)
    cols = [(j, index.vocab.get(t)) for j, t in enumerate(terms)]
    cols = [(j, c) for j, c in cols if c is not None]
    valid = [(k, r) for k, r in enumerate(rows) if r is not None]
    if not cols or not valid:
        return out
    sub = index.tf[[r for _, r in valid]][:, [c for _, c in cols]].toarray()
    out[np.ix_([k for k, _ in valid], [j for j, _ in cols])] = sub
    return out


def refusal_inputs(
    query: str,
    ids: Sequence[str],
    max_dense: float,
    best_heading_dense: float,
    chunk_lexical: LexicalIndex,
    sections: SectionIndex | None,
    scale: LibraryScale = NEUTRAL,
) -> RefusalInputs:
    """Term evidence of the pool `ids` and the question's best cosines read against the library's scale."""
    terms = query_terms(query)
    salient = np.zeros(len(ids), dtype=np.float32)
    idf_map = chunk_lexical.idf(terms) if terms else {}
    idf = np.asarray([idf_map.get(t, 0.0) for t in terms], dtype=np.float32)
    total = float(idf.sum())
    if ids and total > 0:
        counts = _counts(chunk_lexical, [chunk_lexical.row_of(c) for c in ids], terms)
        in_heading = np.zeros_like(counts, dtype=bool)
        if sections is not None and len(sections):
            in_heading = _counts(sections.lexical, [sections.chunk_row.get(c) for c in ids], terms) > 0
        salient = (((in_heading | (counts >= 2)) * idf).sum(axis=1) / total).astype(np.float32)
    return RefusalInputs(
        salient=salient,
        dense_lib_z=scale.dense_z(max_dense),
        heading_lib_z=scale.heading_z(best_heading_dense),
        scaled=scale.trusted,
    )


def refusal_signals(cands: CandidateSet, ranker: LinearModel, inputs: RefusalInputs) -> np.ndarray:
    """One row of REFUSAL_FEATURES for a question, from its candidates ordered by nothing in particular."""
    row = np.zeros((1, len(REFUSAL_FEATURES)), dtype=np.float32)
    if not cands.ids:
        row[0] = [-10.0, -5.0, -5.0, 0.0, 0.0, 0.0]
        return row
    logits = ranker.logits(cands.features, FEATURES)
    relative = ranker.logits(cands.features, FEATURES, drop=ABSOLUTE_FEATURES)
    order = np.argsort(-logits, kind="stable")
    top, top3 = order[0], order[:3]
    row[0] = [
        float(relative[top]),
        inputs.dense_lib_z,
        inputs.heading_lib_z,
        float(cands.column("coverage")[top]),
        float(cands.column("heading_coverage")[top]),
        float(inputs.salient[top3].max()) if inputs.salient.size else 0.0,
    ]
    return row
