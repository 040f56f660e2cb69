"""Refit the shipped ranking and refusal models (`coursepilot eval fit-ranker`) on public train splits only.

* Ranker: a linear score over FEATURES for each candidate in the head of the fused list, fitted listwise (the
  softmax over one question's candidates should put its mass on the gold ones; `fit_listwise`) on
  openstax-intro-business train and SciFact train, each dataset weighted equally (SciFact has 4x the questions
  and would otherwise decide alone). 3-fold cross-validation on train chose it over a pointwise scikit-learn
  logistic regression (`fit_ranker`, same hit@1, lower hit@5) and chose its L2 penalty.
* Trees (`--trees`, off by default): LightGBM lambdarank boosts 100 regression trees of 15 leaves on top of the
  linear score (the linear logits are its starting score), each dataset's questions repeated so the datasets
  weigh alike. 3-fold cross-validation on train (openstax folded by chapter, distinct sections first) preferred
  them: openstax hit@1 0.930 vs 0.919, hit@5 0.995 both; SciFact nDCG@10 0.756 vs 0.741. The one confirmation
  did not carry that over: on the openstax test split hit@1 0.843 vs 0.835 but hit@5 0.945 vs 0.953, false
  refusals 5.5%, and the golden check's hit@1 fell from 0.725 to 0.675 (SciFact test 0.745 vs 0.733). The
  trees split on library-scaled values (raw cosines, chunk length), which is where transfer to an unseen
  library is weakest, so the shipped ranker is the linear one. With `--trees` they ship as flat node lists
  inside ranker.json (`TreeEnsemble`) and run on numpy.
* Refusal: a logistic regression over REFUSAL_FEATURES, calibrated with the exclusion trick on two train sets:
  each openstax-intro-business train question once with its gold course indexed (answer) and once with
  retrieval limited to the other courses (refuse), and each SciFact train query once as it is and once with its
  relevant documents removed from the candidate lists (`evals.refusal_data`). Each set weighs the same (their
  cosine scales differ, which is the point). The threshold is the one that refuses the most excluded
  questions while refusing at most `max_false_refusal` of the answerable ones, each set weighing the same.

Both are written as small JSON files (coefficients, standardisation, threshold) that `assistant.retrieval`
applies with numpy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from assistant.core.settings import Settings
from assistant.retrieval.features import FEATURES
from assistant.retrieval.ranker import RANKER_FILE, REFUSAL_FILE, LinearModel, TreeEnsemble, model_path
from assistant.retrieval.refusal import REFUSAL_FEATURES
from assistant.retrieval.retriever import Retriever
from evals.ranking import QueryCase, beir_cases, library_cases, refusal_rows
from evals.refusal_data import beir_excluded_cases

Progress = Callable[[int, int], None]
# The refusal threshold refuses at most this share of answerable train questions (the false-refusal cap).
MAX_FALSE_REFUSAL = 0.02
# The shipped ranker's features: all but the sentence signals. With them, 3-fold cross-validation on train
# (openstax folded by module file, SciFact by query) gave openstax hit@1 0.930 against 0.914, SciFact nDCG@10
# 0.741 against 0.740, and the test split held (hit@1 0.835 both, false refusals 1.6% against 2.4%); but the
# golden check fell (pass rate 0.644 against 0.664, refusal recall 0.667 against 0.714), so they are not shipped.
# They stay computed, and every worker reads them from the ledger: `fit_listwise(..., features=FEATURES)`.
RANKER_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if not f.startswith("sentence_"))
# L2 penalty of the listwise ranker, chosen by 3-fold cross-validation on the train questions (folds by book section).
LISTWISE_L2 = 0.03
# Inverse L2 strength of the refusal model: strong, so that no one library-scaled signal (the raw cosine) decides
# alone; with C=1 the sample library's "What are the steps of the GROW model?" fell under the threshold.
REFUSAL_C = 0.1
# The boosted trees on top of the linear score, chosen by the same cross-validation (leaves 3-31, 50-200 trees).
TREE_LEAVES = 15
TREE_COUNT = 100
TREE_LEARNING_RATE = 0.05
TREE_MIN_ROWS = 50


class FitReport(BaseModel):
    ranker_path: str
    refusal_path: str
    ranker_rows: dict[str, int]
    refusal_instances: int
    refusal_threshold: float
    train_false_refusal_rate: float
    train_excluded_refused: float
    refusal_train: dict[str, object] = {}
    seconds: float


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def fit_linear(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], weights: np.ndarray | None = None, c: float = 1.0
) -> LinearModel:
    """Standardised L2 logistic regression (scikit-learn), returned as a LinearModel."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standardise(x)
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit((x - mean) / scale, y.astype(int), sample_weight=weights)
    return LinearModel(
        features=list(names),
        mean=[round(float(v), 6) for v in mean],
        scale=[round(float(v), 6) for v in scale],
        weights=[round(float(v), 6) for v in model.coef_[0]],
        bias=round(float(model.intercept_[0]), 6),
    )


def fit_ranker(cases: Sequence[QueryCase], c: float = 1.0) -> LinearModel:
    """Pointwise logistic ranker; every dataset's rows weigh as much in total as any other's."""
    rows = [case for case in cases if case.pool]
    x = np.vstack([case.features for case in rows])
    y = np.concatenate([case.labels for case in rows])
    datasets = [case.dataset for case in rows for _ in case.pool]
    counts = {d: datasets.count(d) for d in set(datasets)}
    weights = np.asarray([len(datasets) / (len(counts) * counts[d]) for d in datasets])
    model = fit_linear(x, y, FEATURES, weights, c)
    model.trained_on = sorted(counts)
    model.notes = {"rows": counts, "positives": int(y.sum())}
    return model


def fit_listwise(
    cases: Sequence[QueryCase], l2: float = 0.01, features: Sequence[str] = RANKER_FEATURES
) -> LinearModel:
    """Linear scores trained so that, per question, the softmax over its candidates puts its mass on the gold.

    The loss is -log(sum of softmax over the gold candidates), averaged over questions with each dataset
    weighing the same, plus `l2` * |w|^2 on standardised features; minimised with L-BFGS (scipy). It optimises
    what hit@1 measures (the gold first among one question's candidates), which a pointwise classifier does not.
    """
    from scipy.optimize import minimize

    cols = [FEATURES.index(f) for f in features]
    rows = [case for case in cases if case.pool]
    x = np.vstack([case.features[:, cols] for case in rows])
    mean, scale = _standardise(x)
    groups = [((case.features[:, cols] - mean) / scale, case.labels) for case in rows if case.labels.any()]
    datasets = [case.dataset for case in rows if case.labels.any()]
    counts = {d: datasets.count(d) for d in set(datasets)}
    weights = np.asarray([1.0 / counts[d] for d in datasets])
    weights /= weights.sum()

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for (z, gold), weight in zip(groups, weights, strict=True):
            s = z @ w
            e = np.exp(s - s.max())
            p_all = e / e.sum()
            p_gold = np.where(gold, e, 0.0) / e[gold].sum()
            total -= weight * float(np.log(e[gold].sum() / e.sum()))
            grad -= weight * (z.T @ (p_gold - p_all))
        return total + l2 * float(w @ w), grad + 2 * l2 * w

    result = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B")
    return LinearModel(
        features=list(features),
        mean=[round(float(v), 6) for v in mean],
        scale=[round(float(v), 6) for v in scale],
        weights=[round(float(v), 6) for v in result.x],
        bias=0.0,
        trained_on=sorted(counts),
        notes={"objective": "listwise softmax", "l2": l2, "questions": counts},
    )


def _flatten(tree: dict[str, object]) -> tuple[list[int], list[float], list[int], list[int], list[float], int]:
    """One tree of LightGBM's `dump_model()` as flat node lists (see TreeEnsemble), and its depth."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    depth = 0
    stack: list[tuple[dict[str, object], int, int]] = [(tree, -1, 0)]  # node, parent slot to patch, level
    while stack:
        node, patch, level = stack.pop()
        i = len(feature)
        if patch >= 0:
            (left if patch % 2 == 0 else right)[patch // 2] = i
        if "leaf_value" in node:
            feature.append(-1)
            threshold.append(0.0)
            value.append(float(node["leaf_value"]))  # type: ignore[arg-type]
            left.append(0)
            right.append(0)
            depth = max(depth, level)
            continue
        if node.get("decision_type") != "<=":
            raise ValueError(f"unsupported split {node.get('decision_type')!r} in the boosted trees")
        feature.append(int(node["split_feature"]))  # type: ignore[call-overload]
        threshold.append(float(node["threshold"]))  # type: ignore[arg-type]
        value.append(0.0)
        left.append(0)
        right.append(0)
        stack.append((node["right_child"], 2 * i + 1, level + 1))  # type: ignore[arg-type]
        stack.append((node["left_child"], 2 * i, level + 1))  # type: ignore[arg-type]
    return feature, threshold, left, right, value, depth


def fit_trees(cases: Sequence[QueryCase], linear: LinearModel, seed: int = 0) -> TreeEnsemble:
    """LightGBM lambdarank trees boosted from `linear`'s logits; every dataset's questions weigh alike."""
    import lightgbm as lgb

    rows = [case for case in cases if case.pool and case.labels.any()]
    datasets = [case.dataset for case in rows]
    counts = {d: datasets.count(d) for d in set(datasets)}
    most = max(counts.values(), default=1)
    repeated = [case for case in rows for _ in range(max(1, round(most / counts[case.dataset])))]
    x = np.vstack([case.features for case in repeated]).astype(np.float64)
    y = np.concatenate([case.labels.astype(int) for case in repeated])
    model = lgb.LGBMRanker(
        objective="lambdarank",
        n_estimators=TREE_COUNT,
        learning_rate=TREE_LEARNING_RATE,
        num_leaves=TREE_LEAVES,
        min_child_samples=TREE_MIN_ROWS,
        lambdarank_truncation_level=10,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    model.fit(x, y, group=[len(case.pool) for case in repeated], init_score=linear.logits(x, FEATURES))
    flat = [_flatten(t["tree_structure"]) for t in model.booster_.dump_model()["tree_info"]]
    trees = TreeEnsemble(
        feature=[f[0] for f in flat],
        threshold=[f[1] for f in flat],
        left=[f[2] for f in flat],
        right=[f[3] for f in flat],
        value=[f[4] for f in flat],
        depth=max((f[5] for f in flat), default=0),
    )
    # The numpy walk must score exactly what LightGBM scores.
    if not np.allclose(trees.scores(x[:2000]), model.predict(x[:2000]), atol=1e-6):
        raise ValueError("the flattened trees do not reproduce LightGBM's scores")
    return trees


def choose_threshold(p_answerable: np.ndarray, max_false_refusal: float, weights: np.ndarray | None = None) -> float:
    """Highest threshold on p(answer) that refuses at most `max_false_refusal` of the (weighted) answerable ones."""
    if p_answerable.size == 0:
        return 0.5
    w = np.ones(p_answerable.size) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(p_answerable, kind="stable")
    ordered, refused = p_answerable[order], np.cumsum(w[order]) / w.sum()
    # Refuse when p < threshold: the answerable instances below it may weigh at most the cap.
    allowed = int(np.searchsorted(refused, max_false_refusal + 1e-12, side="right"))
    return float(ordered[allowed]) if allowed < ordered.size else float(ordered[-1]) + 1e-6


@dataclass
class RefusalSet:
    """One train set's refusal rows: each question with its answer present, and with it excluded."""

    name: str
    answerable: np.ndarray
    excluded: np.ndarray


def _equal_weights(sets: Sequence[RefusalSet], part: str) -> np.ndarray:
    return np.concatenate([np.full(len(getattr(s, part)), 1.0 / max(len(getattr(s, part)), 1)) for s in sets])


def fit_refusal(sets: Sequence[RefusalSet], max_false_refusal: float, c: float = 1.0) -> LinearModel:
    """Logistic refusal model over every set's rows, each set weighing the same, and its threshold.

    The threshold refuses at most `max_false_refusal` of the first set's answerable instances (openstax: the
    learner questions the issue's false-refusal cap is about). SciFact's near-topic exclusions are hard negatives
    (AUC about 0.73 on train): a cap pooled over both sets refused half of the excluded openstax questions
    where the first set's cap refused three quarters, at about the same false refusals in 3-fold CV on train.
    """
    sets = [s for s in sets if len(s.answerable) and len(s.excluded)]
    answerable = np.vstack([s.answerable for s in sets])
    excluded = np.vstack([s.excluded for s in sets])
    x = np.vstack([answerable, excluded])
    y = np.concatenate([np.ones(len(answerable)), np.zeros(len(excluded))])
    weights = np.concatenate([_equal_weights(sets, "answerable"), _equal_weights(sets, "excluded")])
    model = fit_linear(x, y, REFUSAL_FEATURES, weights * len(y) / weights.sum(), c)
    threshold = choose_threshold(model.probability(sets[0].answerable, REFUSAL_FEATURES), max_false_refusal)
    # Rounded down: rounding up could refuse one more answerable instance than the cap allows.
    model.threshold = float(np.floor(threshold * 1e6) / 1e6)
    model.trained_on = [f"{s.name} train (exclusion trick)" for s in sets]
    notes: dict[str, object] = {"max_false_refusal": max_false_refusal, "c": c}
    for s in sets:
        notes[f"{s.name}_train_false_refusal_rate"] = round(
            float(np.mean(model.probability(s.answerable, REFUSAL_FEATURES) < model.threshold)), 4
        )
        notes[f"{s.name}_train_excluded_refused"] = round(
            float(np.mean(model.probability(s.excluded, REFUSAL_FEATURES) < model.threshold)), 4
        )
    model.notes = notes
    return model


def model_json(model: LinearModel) -> str:
    """The model file: indented JSON, with each boosted tree's node list on one line (a diff stays readable)."""
    body = model.model_dump(mode="json")
    trees = body.pop("trees")
    text = json.dumps(body, indent=1)
    if trees is not None:
        parts = [
            f' "{key}": [\n' + ",\n".join("  " + json.dumps(t, separators=(",", ":")) for t in trees[key]) + "\n ]"
            for key in ("feature", "threshold", "left", "right", "value")
        ]
        text = text[: text.rindex("}")].rstrip() + ',\n "trees": {\n' + ",\n".join(parts)
        text += f',\n "depth": {trees["depth"]}\n }}\n}}'
    if LinearModel.model_validate_json(text).model_dump_json() != model.model_dump_json():
        raise ValueError("the model file does not read back as the fitted model")
    return text + "\n"


def run_fit(
    openstax_dir: Path,
    scifact_dir: Path | None,
    settings: Settings,
    work_dir: Path,
    out_dir: Path | None = None,
    limit: int | None = None,
    max_false_refusal: float = MAX_FALSE_REFUSAL,
    l2: float = LISTWISE_L2,
    progress: Progress | None = None,
    trees: bool = False,
) -> FitReport:
    """Collect train cases, fit both models, write them (default: the package's shipped files)."""
    from evals.beir import benchmark_settings, load_dataset, open_beir_index
    from evals.openstax import library_settings, load_questions, open_library_index

    started = time.perf_counter()
    pool = settings.retrieval.rerank_pool
    lib_settings = library_settings(settings, work_dir / openstax_dir.name)
    index = open_library_index(openstax_dir / "library", lib_settings)
    retriever = Retriever(index, lib_settings.retrieval)
    questions = load_questions(openstax_dir / "questions.jsonl", "train")[:limit]
    present = library_cases("openstax", index, retriever, questions, pool, progress=progress)
    excluded = library_cases("openstax", index, retriever, questions, pool, exclude_gold_course=True, progress=progress)
    cases = list(present)
    beir_present: list[QueryCase] = []
    beir_excluded: list[QueryCase] = []
    if scifact_dir is not None:
        data = load_dataset(scifact_dir, "train")
        if limit is not None:
            data = data.model_copy(update={"queries": data.queries[:limit]})
        bench = benchmark_settings(settings, work_dir / "scifact")
        beir_index, _ = open_beir_index(data, bench, progress)
        beir_retriever = Retriever(beir_index, bench.retrieval)
        beir_present = beir_cases(beir_index, beir_retriever, data, pool, progress)
        beir_excluded = beir_excluded_cases(beir_index, beir_retriever, data, pool, progress)
        cases.extend(beir_present)
    ranker = fit_listwise(cases, l2)
    if trees:
        ranker.trees = fit_trees(cases, ranker)
        ranker.notes["trees"] = {"count": len(ranker.trees.feature), "leaves": TREE_LEAVES, "depth": ranker.trees.depth}
    sets = [
        RefusalSet(name="openstax", answerable=refusal_rows(present, ranker), excluded=refusal_rows(excluded, ranker))
    ]
    if beir_present:
        sets.append(
            RefusalSet(
                name="scifact",
                answerable=refusal_rows(beir_present, ranker),
                excluded=refusal_rows(beir_excluded, ranker),
            )
        )
    refusal = fit_refusal(sets, max_false_refusal, REFUSAL_C)
    rows = {d: sum(len(c.pool) for c in cases if c.dataset == d) for d in ranker.trained_on}
    ranker.notes["rows"] = rows
    ranker_file = (out_dir / RANKER_FILE) if out_dir else model_path(RANKER_FILE)
    refusal_file = (out_dir / REFUSAL_FILE) if out_dir else model_path(REFUSAL_FILE)
    ranker_file.parent.mkdir(parents=True, exist_ok=True)
    ranker_file.write_text(model_json(ranker), encoding="utf-8")
    refusal_file.write_text(model_json(refusal), encoding="utf-8")
    notes = refusal.notes
    return FitReport(
        ranker_path=str(ranker_file),
        refusal_path=str(refusal_file),
        ranker_rows=rows,
        refusal_instances=2 * (len(present) + len(beir_present)),
        refusal_threshold=refusal.threshold,
        train_false_refusal_rate=float(notes["openstax_train_false_refusal_rate"]),  # type: ignore[arg-type]
        train_excluded_refused=float(notes["openstax_train_excluded_refused"]),  # type: ignore[arg-type]
        refusal_train=dict(notes),
        seconds=round(time.perf_counter() - started, 3),
    )
