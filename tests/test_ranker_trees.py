"""The boosted trees of the learned ranker: a numpy walk of flat node lists that scores what LightGBM scores."""

from __future__ import annotations

import numpy as np
from conftest import synthetic_case

from assistant.retrieval.features import FEATURES
from assistant.retrieval.ranker import LinearModel, TreeEnsemble
from evals.fit import fit_listwise, fit_trees
from evals.ranking import QueryCase

N = len(FEATURES)


def _tree() -> TreeEnsemble:
    # x0 <= 0.5 ? 1.0 : (x1 <= 2.0 ? -1.0 : 3.0), and a second tree that is a single leaf of 0.25.
    return TreeEnsemble(
        feature=[[0, -1, 1, -1, -1], [-1]],
        threshold=[[0.5, 0, 2.0, 0, 0], [0]],
        left=[[1, 0, 3, 0, 0], [0]],
        right=[[2, 0, 4, 0, 0], [0]],
        value=[[0, 1.0, 0, -1.0, 3.0], [0.25]],
        depth=2,
    )


def test_tree_walk_follows_the_splits_and_adds_the_trees() -> None:
    x = np.asarray([[0.0, 9.0], [0.5, 0.0], [1.0, 2.0], [1.0, 2.5]])
    assert _tree().scores(x).tolist() == [1.25, 1.25, -0.75, 3.25]


def test_trees_add_to_the_linear_score_and_a_dropped_feature_is_held_at_its_mean_in_them_too() -> None:
    names = ("a", "b")
    model = LinearModel(features=list(names), mean=[1.0, 0.0], scale=[1.0, 1.0], weights=[0.0, 1.0], bias=0.0)
    x = np.asarray([[0.0, 3.0]])
    assert model.logits(x, names).tolist() == [3.0]
    model.trees = _tree()
    assert model.logits(x, names).tolist() == [3.0 + 1.25]
    # "a" held at its mean (1.0) sends the row right, then b = 3.0 > 2.0: leaf 3.0.
    assert model.logits(x, names, drop=frozenset({"a"})).tolist() == [3.0 + 3.25]


def _cases(rng: np.random.Generator, questions: int) -> list[QueryCase]:
    """The gold candidate is the one whose feature 3 sits in a middle band: no linear score can find it."""
    out = []
    for q in range(questions):
        features = rng.normal(size=(20, N)).astype(np.float32)
        gold = int(rng.integers(20))
        features[:, 3] = rng.choice([-2.0, 2.0], size=20)
        features[gold, 3] = rng.normal(scale=0.1)
        out.append(synthetic_case(f"q{q}", features, gold, dataset=("a", "b")[q % 2]))
    return out


def _hit_at_1(model: LinearModel, cases: list[QueryCase]) -> float:
    return float(np.mean([bool(c.labels[int(np.argmax(model.logits(c.features, FEATURES)))]) for c in cases]))


def test_boosted_trees_find_what_the_linear_score_cannot() -> None:
    rng = np.random.default_rng(0)
    train, held_out = _cases(rng, 200), _cases(rng, 100)
    linear = fit_listwise(train, 0.03)
    boosted = linear.model_copy(update={"trees": fit_trees(train, linear)})
    assert _hit_at_1(linear, held_out) < 0.3
    assert _hit_at_1(boosted, held_out) > 0.8
    # The model survives its JSON file.
    again = LinearModel.model_validate_json(boosted.model_dump_json())
    case = held_out[0]
    assert np.allclose(again.logits(case.features, FEATURES), boosted.logits(case.features, FEATURES))
