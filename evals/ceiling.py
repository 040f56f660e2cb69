"""`coursepilot eval ablation --ceiling`: how far the shipped signals go when fitted on the questions they are
scored on.

A diagnostic, not a model: on each set, a linear ranker is fitted listwise on that set's own questions and scored
on the same questions (in-sample), over the shipped ranker's features and over every feature computed; and a
refusal model is fitted on the same set's answerable and unanswerable instances with the shipped false-refusal
cap (`evals.fit.MAX_FALSE_REFUSAL`). An in-sample fit is the optimistic figure for a linear model over these
signals on that set. It is not a strict bound on hit@1 (the listwise loss is not hit@1, so the shipped model can
beat it by a question), but a target well above it needs a new signal, not a better fit. Nothing here is written
to the shipped model files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from assistant.retrieval.features import FEATURES
from assistant.retrieval.ranker import LinearModel
from assistant.retrieval.refusal import REFUSAL_FEATURES
from evals.fit import MAX_FALSE_REFUSAL, RANKER_FEATURES, RefusalSet, fit_listwise, fit_refusal
from evals.ranking import QueryCase, hit_rate, mean_ndcg, ranked_ids, refusal_rows

# Penalties of the in-sample fits: barely any (the shipped ones, LISTWISE_L2 = 0.03 and REFUSAL_C = 0.1, guard
# against overfitting, which a figure scored where it was fitted need not).
CEILING_L2 = 0.001
CEILING_C = 10.0
# (row label, features) of the in-sample ranker rows.
CEILING_RANKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("in-sample: ranker fitted on these questions (shipped features)", RANKER_FEATURES),
    ("in-sample: ranker fitted on these questions (every feature)", FEATURES),
)


class CeilingRefusal(BaseModel):
    """A refusal model fitted on one set's own instances, at the shipped false-refusal cap."""

    false_refusal_rate: float
    refused_unanswerable: float
    auc: float


def ceiling_scores(sets: Mapping[str, Sequence[QueryCase]], distinct: int) -> list[tuple[str, dict[str, float]]]:
    """Per in-sample ranker row, each set's figures ({set}_ndcg_at_10 or {set}_hit_at_1 / _hit_at_5)."""
    out: list[tuple[str, dict[str, float]]] = []
    for label, features in CEILING_RANKERS:
        scores: dict[str, float] = {}
        for name, cases in sets.items():
            if not any(c.labels.any() for c in cases):
                continue
            model = fit_listwise(cases, CEILING_L2, features)
            rankings = {c.qid: ranked_ids(c, "ranker", model, distinct=distinct) for c in cases}
            if name == "scifact":
                scores["scifact_ndcg_at_10"] = round(mean_ndcg(cases, rankings), 4)
            else:
                scores[f"{name}_hit_at_1"] = round(hit_rate(cases, rankings, 1), 4)
                scores[f"{name}_hit_at_5"] = round(hit_rate(cases, rankings, 5), 4)
        out.append((label, scores))
    return out


def ceiling_refusal(
    refusal_sets: Mapping[str, tuple[Sequence[QueryCase], Sequence[QueryCase]]],
    ranker: LinearModel,
    c: float = CEILING_C,
) -> dict[str, CeilingRefusal]:
    """Per set, a refusal model fitted on that set's answerable and unanswerable (or excluded) instances."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, CeilingRefusal] = {}
    for name, (answerable, unanswerable) in refusal_sets.items():
        if not answerable or not unanswerable:
            continue
        rows = RefusalSet(name, refusal_rows(answerable, ranker), refusal_rows(unanswerable, ranker))
        model = fit_refusal([rows], MAX_FALSE_REFUSAL, c)
        p_yes = model.probability(rows.answerable, REFUSAL_FEATURES)
        p_no = model.probability(rows.excluded, REFUSAL_FEATURES)
        out[name] = CeilingRefusal(
            false_refusal_rate=round(float(np.mean(p_yes < model.threshold)), 4),
            refused_unanswerable=round(float(np.mean(p_no < model.threshold)), 4),
            auc=round(float(roc_auc_score(np.r_[np.ones(p_yes.size), np.zeros(p_no.size)], np.r_[p_yes, p_no])), 4),
        )
    return out


__all__ = ["CEILING_C", "CEILING_L2", "CEILING_RANKERS", "CeilingRefusal", "ceiling_refusal", "ceiling_scores"]
