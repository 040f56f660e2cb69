"""The learned ranking step: a logistic model over the candidate features, shipped as JSON coefficients.

Fitting (scikit-learn, `coursepilot eval fit-ranker`) happens offline on public train splits only; at query
time the model is a dot product, so no library beyond numpy is loaded and no model is called.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from assistant.core.errors import ConfigError

RANKER_FILE = "ranker.json"
REFUSAL_FILE = "refusal.json"


class LinearModel(BaseModel):
    """Standardised logistic model: sigmoid(((x - mean) / scale) . weights + bias)."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    threshold: float = Field(default=0.5, description="Decision threshold on the probability (refusal only).")
    trained_on: list[str] = Field(default_factory=list)
    notes: dict[str, object] = Field(default_factory=dict)

    def logits(
        self, x: np.ndarray, names: tuple[str, ...] | list[str], drop: frozenset[str] = frozenset()
    ) -> np.ndarray:
        """Logits for rows of `x` whose columns are `names`; features in `drop` are held at their mean."""
        cols = [list(names).index(f) for f in self.features]
        z = (x[:, cols] - np.asarray(self.mean)) / np.asarray(self.scale)
        w = np.asarray([0.0 if f in drop else wt for f, wt in zip(self.features, self.weights, strict=True)])
        return np.asarray(z @ w + self.bias, dtype=np.float64)

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
