"""The learned ranking step: a linear score over the candidate features plus boosted trees, shipped as JSON.

Fitting (scipy, LightGBM; `coursepilot eval fit-ranker`) happens offline on public train splits only; at query
time the model is a dot product and a walk down small trees as array lookups, so no library beyond numpy is
loaded and no model is called.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from assistant.core.errors import ConfigError

RANKER_FILE = "ranker.json"
REFUSAL_FILE = "refusal.json"


class TreeEnsemble(BaseModel):
    """Regression trees whose leaf values add up to a score; each tree is a flat list of nodes.

    Node i of a tree is a split when `feature[i]` >= 0 (go to `left[i]` when x[feature] <= `threshold[i]`, else
    to `right[i]`) and a leaf with `value[i]` when `feature[i]` is -1. Node 0 is the root. `feature` indexes the
    columns the owning model was given (its `features`).
    """

    feature: list[list[int]]
    threshold: list[list[float]]
    left: list[list[int]]
    right: list[list[int]]
    value: list[list[float]]
    depth: int = Field(description="Splits on the longest path from a root to a leaf.")
    _arrays: tuple[np.ndarray, ...] | None = PrivateAttr(default=None)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(feature, threshold, left, right, value, roots) over all trees' nodes in one flat numbering.

        A leaf's children are itself, so walking on from a leaf stays there.
        """
        if self._arrays is None:
            sizes = [len(t) for t in self.feature]
            roots = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
            flat = np.arange(sum(sizes), dtype=np.int64)
            feature = np.asarray([f for t in self.feature for f in t], dtype=np.int64)
            leaf = feature < 0
            offset = np.repeat(roots, sizes)
            left = np.where(leaf, flat, offset + np.asarray([i for t in self.left for i in t], dtype=np.int64))
            right = np.where(leaf, flat, offset + np.asarray([i for t in self.right for i in t], dtype=np.int64))
            self._arrays = (
                np.maximum(feature, 0),
                np.asarray([v for t in self.threshold for v in t], dtype=np.float64),
                left,
                right,
                np.asarray([v for t in self.value for v in t], dtype=np.float64),
                roots,
            )
        return self._arrays

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf values for each row of `x`: every row walks every tree at once, level by level."""
        if not self.feature or x.shape[0] == 0:
            return np.zeros(x.shape[0], dtype=np.float64)
        feature, threshold, left, right, value, roots = self.arrays()
        values = np.ascontiguousarray(x, dtype=np.float64).ravel()
        row_start = (np.arange(x.shape[0], dtype=np.int64) * x.shape[1])[:, None]
        node = np.repeat(roots[None, :], x.shape[0], axis=0)
        for _ in range(self.depth):
            go_left = values[row_start + feature[node]] <= threshold[node]
            node = np.where(go_left, left[node], right[node])
        return np.asarray(value[node].sum(axis=1), dtype=np.float64)


class LinearModel(BaseModel):
    """Standardised logistic model: sigmoid(((x - mean) / scale) . weights + bias), plus optional trees.

    The ranker adds boosted trees (`trees`, over the raw features) to its linear score; the refusal model has
    none.
    """

    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    threshold: float = Field(default=0.5, description="Decision threshold on the probability (refusal only).")
    trained_on: list[str] = Field(default_factory=list)
    notes: dict[str, object] = Field(default_factory=dict)
    trees: TreeEnsemble | None = Field(default=None, description="Boosted trees added to the linear score.")

    def logits(
        self, x: np.ndarray, names: tuple[str, ...] | list[str], drop: frozenset[str] = frozenset()
    ) -> np.ndarray:
        """Logits for rows of `x` whose columns are `names`; features in `drop` are held at their mean."""
        cols = [list(names).index(f) for f in self.features]
        raw = x[:, cols].astype(np.float64)
        z = (raw - np.asarray(self.mean)) / np.asarray(self.scale)
        w = np.asarray([0.0 if f in drop else wt for f, wt in zip(self.features, self.weights, strict=True)])
        out = z @ w + self.bias
        if self.trees is not None:
            held = [i for i, f in enumerate(self.features) if f in drop]
            if held:
                raw[:, held] = np.asarray(self.mean)[held]
            out = out + self.trees.scores(raw)
        return np.asarray(out, dtype=np.float64)

    def probability(self, x: np.ndarray, names: tuple[str, ...] | list[str]) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-self.logits(x, names))))


def model_path(name: str) -> Path:
    return Path(str(resources.files("assistant.retrieval").joinpath(name)))


@lru_cache(maxsize=8)
def load_model(path: Path) -> LinearModel:
    """A fitted model file; a missing or damaged file is a clear error naming the file and the refit command."""
    try:
        return LinearModel.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"The ranking model {path} cannot be read ({exc}).",
            "reinstall CoursePilot, or refit it with `coursepilot eval fit-ranker`.",
        ) from exc


def shipped_ranker() -> LinearModel:
    return load_model(model_path(RANKER_FILE))


def shipped_refusal() -> LinearModel:
    return load_model(model_path(REFUSAL_FILE))
