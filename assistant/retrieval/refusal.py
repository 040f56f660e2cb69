"""Refusal as one calibrated decision: a logistic model over signals of the ranked candidates.

The signals say how well the best candidates support the question: the ranker's top logit, the best chunk
and heading cosines, and how much of the question's IDF mass (its rare terms) the best passage and its heading
hold. A question whose rare terms are what a heading is about ("What is the GROW model?") scores high on the
heading signals; one whose rare terms occur only in passing ("How do I file my expense report?") does not.
The model is calibrated with the exclusion trick on the openstax-intro-business train split
(`coursepilot eval fit-ranker`), and its threshold is chosen there.
"""

from __future__ import annotations

import numpy as np

from assistant.retrieval.features import CandidateSet

REFUSAL_FEATURES: tuple[str, ...] = (
    "top_logit",  # the ranker's score of the best candidate
    "max_dense",  # best chunk cosine
    "best_heading_dense",  # best heading cosine over the whole library
    "top_coverage",  # IDF-weighted share of the question's terms in the best candidate
    "max_coverage3",  # the same, best of the top 3
    "top_heading_coverage",  # the same share in the best candidate's heading trail
    "top_heading_dense",  # heading cosine of the best candidate
)


def refusal_signals(cands: CandidateSet, logits: np.ndarray, max_dense: float) -> np.ndarray:
    """One row of REFUSAL_FEATURES for a question, from its candidates ordered by nothing in particular."""
    row = np.zeros((1, len(REFUSAL_FEATURES)), dtype=np.float32)
    if not cands.ids:
        row[0, 0] = -10.0
        return row
    order = np.argsort(-logits, kind="stable")
    top = order[0]
    top3 = order[:3]
    row[0] = [
        float(logits[top]),
        max_dense,
        cands.best_heading_dense,
        float(cands.column("coverage")[top]),
        float(cands.column("coverage")[top3].max()),
        float(cands.column("heading_coverage")[top]),
        float(cands.column("heading_dense")[top]),
    ]
    return row
