"""BEIR runner, metrics, fusion functions and refusal calibration, on a tiny generated BEIR dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import make_settings

from assistant.core.settings import Settings
from assistant.retrieval.retriever import Ranked, fuse_rrf, fuse_weighted
from evals.beir import BeirResult, Variant, mrr_at_k, ndcg_at_k, recall_at_k, run_beir, score_rankings
from evals.calibrate import QuerySignals, Signals, calibrate_refusal, choose_thresholds, refusal_stats

# 30 documents on unrelated topics, each with its own rare words; queries 0..9 ask about documents 0..9.
TOPICS = [
    ("Volcanic eruptions", "Magma rises through the crust and erupts as lava, ash and pyroclastic flows."),
    ("Honeybee pollination", "Worker honeybees carry pollen between flowers and store nectar in the hive."),
    ("Sourdough baking", "A sourdough starter of wild yeast and lactobacilli leavens the bread dough."),
    ("Chess openings", "The Sicilian Defence answers the king's pawn opening with a pawn to c5."),
    ("Glacier retreat", "Alpine glaciers lose ice mass as summer melt exceeds winter snowfall."),
    ("Vaccine adjuvants", "Aluminium salts act as adjuvants that strengthen the immune response to antigens."),
    ("Coral bleaching", "Warm seawater makes corals expel their symbiotic algae and turn white."),
    ("Jazz improvisation", "Saxophonists improvise melodies over chord changes of standards like blues."),
    ("Bridge suspension cables", "Steel suspension cables carry the deck load to the towers and anchorages."),
    ("Tea fermentation", "Oolong and black tea leaves oxidise after rolling, darkening their colour."),
    ("Medieval castles", "Stone keeps, moats and curtain walls defended medieval castles from sieges."),
    ("Photosynthesis", "Chlorophyll in leaves captures sunlight to turn carbon dioxide into sugar."),
    ("Marathon training", "Runners build endurance with long slow runs and tapering before the race."),
    ("Origami folding", "Paper cranes are folded from a single square sheet without cutting or glue."),
    ("Solar eclipses", "The moon passes between the sun and the earth and casts its shadow."),
    ("Cheese ripening", "Cheddar and brie ripen in caves where moulds and bacteria develop flavour."),
    ("Penguin colonies", "Emperor penguins huddle through the Antarctic winter to incubate their eggs."),
    ("Typewriter mechanics", "Typebars strike an inked ribbon against paper when a key is pressed."),
    ("Wind turbines", "Rotor blades turn a generator in the nacelle when wind speed is sufficient."),
    ("Silk production", "Silkworms spin cocoons of silk fibre that are boiled and unwound into thread."),
    ("Desert cacti", "Cacti store water in fleshy stems and have spines instead of leaves."),
    ("Lighthouse optics", "Fresnel lenses focus the lamp into a beam visible far out at sea."),
    ("Comet tails", "Solar wind pushes gas and dust from a comet into a long glowing tail."),
    ("Violin making", "Luthiers carve spruce tops and maple backs and varnish the instrument."),
    ("Salt marshes", "Tidal salt marshes trap sediment and shelter juvenile fish and birds."),
    ("Origins of paper money", "Song dynasty merchants used printed notes instead of heavy copper coins."),
    ("Bioluminescent plankton", "Dinoflagellates glow blue when waves disturb the water at night."),
    ("Gothic cathedrals", "Flying buttresses let gothic cathedrals raise tall walls with stained glass."),
    ("Snow avalanches", "Weak snowpack layers collapse and slabs slide down steep mountain slopes."),
    ("Kite aerodynamics", "Lift on the kite sail balances the pull of the line and gravity."),
]
QUERIES = [
    "lava and magma erupt from the crust",
    "honeybees carry pollen to the hive",
    "wild yeast starter leavens sourdough bread",
    "Sicilian Defence pawn to c5",
    "glaciers lose ice when melt exceeds snowfall",
    "aluminium adjuvants strengthen immune response",
    "corals expel symbiotic algae in warm seawater",
    "saxophone improvisation over chord changes",
    "suspension cables carry the bridge deck load",
    "oolong tea leaves oxidise after rolling",
]


def write_dataset(root: Path) -> Path:
    """A BEIR-format dataset: corpus, queries, qrels/test.tsv (query i -> doc i) and qrels/train.tsv."""
    ds = root / "tiny"
    (ds / "qrels").mkdir(parents=True)
    with open(ds / "corpus.jsonl", "w") as fh:
        for i, (title, text) in enumerate(TOPICS):
            fh.write(json.dumps({"_id": f"d{i}", "title": title, "text": text}) + "\n")
    with open(ds / "queries.jsonl", "w") as fh:
        for i, text in enumerate(QUERIES):
            fh.write(json.dumps({"_id": f"q{i}", "text": text, "metadata": {}}) + "\n")
    (ds / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(len(QUERIES)))
    )
    (ds / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(5))
    )
    return ds


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings, Path, BeirResult]:
    tmp = tmp_path_factory.mktemp("beir")
    dataset = write_dataset(tmp)
    settings = make_settings(tmp)
    work = tmp / "work"
    first = run_beir(dataset, settings, split="test", work_dir=work)
    return dataset, settings, work, first


# -- metrics ------------------------------------------------------------------------------------------------


def test_ndcg_matches_a_hand_computed_ranking() -> None:
    relevant = {"b": 1, "c": 2, "z": 1}
    # DCG = 0/log2(2) + 1/log2(3) + 2/log2(4); ideal order c, b, z: 2/log2(2) + 1/log2(3) + 1/log2(4).
    dcg = 1 / math.log2(3) + 2 / 2
    idcg = 2 + 1 / math.log2(3) + 1 / 2
    assert ndcg_at_k(["a", "b", "c"], relevant) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["c", "b", "z"], relevant) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "b", "c"], relevant, k=1) == 0.0
    assert ndcg_at_k(["x"], {}) == 0.0
    assert recall_at_k(["a", "b", "c"], relevant) == pytest.approx(2 / 3)
    assert mrr_at_k(["a", "b", "c"], relevant) == pytest.approx(0.5)
    scores = score_rankings({"q1": ["c", "b", "z"]}, {"q1": relevant, "q2": {"a": 1}})
    assert scores.ndcg_at_10 == pytest.approx(0.5)  # q2 has no ranking and scores 0
    assert scores.recall_at_100 == pytest.approx(0.5)


# -- fusion -------------------------------------------------------------------------------------------------


def test_weighted_fusion_prefers_a_document_strong_in_both_lists() -> None:
    dense = Ranked(["a", "x", "d1", "d2", "d3"], [0.90, 0.85, 0.30, 0.25, 0.20])
    lexical = Ranked(["b", "x", "l1", "l2", "l3"], [12.0, 11.0, 2.0, 1.5, 1.0])
    for weight in (0.3, 0.45, 0.7):
        assert fuse_weighted(dense, lexical, weight)[0][0] == "x"
    assert fuse_rrf([dense, lexical], 60)[0][0] == "x"


def test_weighted_fusion_gives_a_missing_document_the_list_floor() -> None:
    dense = Ranked(["a", "b", "c"], [0.9, 0.5, 0.1])
    lexical = Ranked(["b", "d"], [3.0, 1.0])
    fused = dict(fuse_weighted(dense, lexical, 0.5))
    z_dense = {"a": 1.0 * 0.4 / 0.3265986, "b": 0.0, "c": -0.4 / 0.3265986}  # mean 0.5, std 0.3266
    z_lex = {"b": 1.0, "d": -1.0}  # two scores: z = +-1; the floor is -1
    assert fused["a"] == pytest.approx(0.5 * z_dense["a"] + 0.5 * -1.0, rel=1e-5)
    assert fused["d"] == pytest.approx(0.5 * min(z_dense.values()) + 0.5 * z_lex["d"], rel=1e-5)
    assert set(fused) == {"a", "b", "c", "d"}
    # An empty list contributes nothing: the order is the other list's.
    only_dense = fuse_weighted(dense, Ranked([], []), 0.45)
    assert [cid for cid, _ in only_dense] == ["a", "b", "c"]


def test_rrf_sums_reciprocal_ranks_and_breaks_ties_by_id() -> None:
    first = Ranked(["a", "b", "c"], [3.0, 2.0, 1.0])
    second = Ranked(["c", "b", "a"], [3.0, 2.0, 1.0])
    fused = fuse_rrf([first, second], k=10)
    assert [cid for cid, _ in fused] == ["a", "c", "b"]  # a and c tie (1/11 + 1/13); b gets 2/12
    assert dict(fused)["b"] == pytest.approx(2 / 12)
    assert dict(fused)["a"] == pytest.approx(1 / 11 + 1 / 13)
    assert [cid for cid, _ in fuse_rrf([Ranked(["x", "y"], [1.0, 0.5])], k=60)] == ["x", "y"]


# -- the runner ---------------------------------------------------------------------------------------------


def test_run_beir_scores_the_known_answers(tiny: tuple[Path, Settings, Path, BeirResult]) -> None:
    _, _, _, first = tiny
    assert (first.dataset, first.split, first.queries, first.documents) == ("tiny", "test", 10, 30)
    assert not first.index_reused
    assert first.ndcg_at_10 >= 0.9 and first.recall_at_100 == 1.0 and first.mrr_at_10 >= 0.9
    assert first.fusion.candidates >= 100


def test_run_beir_reuses_its_index_and_scores_variants(tiny: tuple[Path, Settings, Path, BeirResult]) -> None:
    dataset, settings, work, first = tiny
    variants = [Variant(name="rrf60", fusion="rrf", rrf_k=60), Variant(name="z45", dense_weight=0.45)]
    second = run_beir(dataset, settings, split="test", work_dir=work, variants=variants)
    assert second.index_reused
    assert second.ndcg_at_10 == pytest.approx(first.ndcg_at_10)
    assert second.seconds_index < max(first.seconds_index, 5.0)
    assert [v.name for v in second.variants] == ["rrf60", "z45"]
    assert all(v.recall_at_100 == 1.0 for v in second.variants)
    # A changed corpus is re-indexed.
    with open(dataset / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "d30", "title": "Extra", "text": "A late addition about hot air balloons."}) + "\n")
    third = run_beir(dataset, settings, split="train", work_dir=work)
    assert not third.index_reused and third.documents == 31 and third.queries == 5


# -- refusal calibration ------------------------------------------------------------------------------------


def _signals(answerable: list[tuple[float, float]], unanswerable: list[tuple[float, float]]) -> list[QuerySignals]:
    return [
        QuerySignals(
            query_id=str(i),
            answerable=Signals(max_dense=a[0], coverage=a[1]),
            unanswerable=Signals(max_dense=u[0], coverage=u[1]),
        )
        for i, (a, u) in enumerate(zip(answerable, unanswerable, strict=True))
    ]


def test_choose_thresholds_separates_separable_signals() -> None:
    # Dense separates on its own; coverage is useless (identical for both classes).
    signals = _signals([(0.7, 0.5), (0.8, 0.9), (0.65, 0.2)], [(0.3, 0.5), (0.4, 0.9), (0.35, 0.2)])
    dense, coverage = choose_thresholds(signals)
    assert 0.4 < dense <= 0.65 and coverage <= 0.2
    stats = refusal_stats(signals, dense, coverage)
    assert stats.balanced_accuracy == 1.0 and stats.precision == 1.0 and stats.recall == 1.0
    assert refusal_stats(signals, 1.0, 0.0).false_refusal_rate == 1.0


def test_calibrate_refusal_runs_on_a_beir_dataset(tiny: tuple[Path, Settings, Path, BeirResult]) -> None:
    dataset, settings, work, _ = tiny
    result = calibrate_refusal(dataset, settings, work)
    assert result.train.answerable == result.train.unanswerable == 5
    assert result.test.answerable == 10
    assert 0.0 <= result.refusal_min_coverage <= 1.0 and -1.0 <= result.refusal_min_dense <= 1.0
    assert result.train.balanced_accuracy >= 0.5
