"""The head of the ranked list covers distinct sections (section_vote), on a real index in a temp dir."""

from __future__ import annotations

from pathlib import Path

from conftest import make_settings

from assistant.retrieval.section_vote import distinct_sections_first

_COMPOST = (
    "Composting at home turns kitchen scraps and garden waste into dark, crumbly compost. Start your compost "
    "heap on bare soil in a sunny corner so worms can move in. Layer green waste such as vegetable peelings and "
    "grass clippings with brown waste such as dry leaves, straw and shredded cardboard. Keep the compost heap as "
    "damp as a wrung-out sponge and turn it every two weeks with a garden fork so air reaches the middle. "
)
_WATER = (
    "Water vegetables deeply once or twice a week rather than a little every day, so the roots grow down. Water "
    "early in the morning at the base of the plants and keep the leaves dry to avoid mildew. A layer of mulch "
    "keeps the soil moist between waterings. "
)
_PRUNE = (
    "Prune apple and pear trees in winter while they are dormant. Remove dead, damaged and crossing branches "
    "first, then thin the crown so light reaches the fruit. Cut just above an outward-facing bud with clean, "
    "sharp secateurs. "
)


def _library(root: Path) -> Path:
    course = root / "library" / "home-gardening"
    course.mkdir(parents=True)
    (course / "course.yaml").write_text(
        "id: home-gardening\ntitle: Home Gardening\ndescription: Growing food at home.\nlevel: beginner\n"
        "modules:\n  - path: 01-garden.md\n    title: The kitchen garden\n    minutes: 20\n",
        encoding="utf-8",
    )
    compost = "\n\n".join(f"{_COMPOST} Step {i}: check the compost heap again." for i in range(12))
    body = (
        f"# The kitchen garden\n\n## Composting at home\n\n{compost}\n\n## Watering vegetables\n\n{_WATER * 3}\n\n"
        f"## Pruning fruit trees\n\n{_PRUNE * 3}\n"
    )
    (course / "01-garden.md").write_text(body, encoding="utf-8")
    return root / "library"


def test_distinct_sections_first_promotes_each_sections_best_chunk_and_keeps_the_rest_in_order() -> None:
    ranked = ["a1", "a2", "b1", "a3", "c1", "b2"]
    keys = [0, 0, 1, 0, 2, 1]
    order = distinct_sections_first(ranked, keys, 3)
    assert [ranked[i] for i in order] == ["a1", "b1", "c1", "a2", "a3", "b2"]
    assert distinct_sections_first(ranked, keys, 0) == list(range(6))
    assert [ranked[i] for i in distinct_sections_first(ranked, keys, 2)] == ["a1", "b1", "a2", "a3", "c1", "b2"]


def test_retrieved_head_covers_distinct_sections_and_keeps_rank_one(tmp_path: Path) -> None:
    from assistant.index.library import LibraryIndex
    from assistant.retrieval.retriever import Retriever
    from ingest.pipeline import IngestPipeline

    settings = make_settings(tmp_path)
    assert IngestPipeline(settings).run(_library(tmp_path)).ok
    index = LibraryIndex(settings)
    question = "How do I start a compost heap at home?"

    plain = Retriever(index, settings.retrieval.model_copy(update={"distinct_sections": 0})).retrieve(question, k=5)
    plain_sections = [e.chunk.location.section for e in plain.evidence]
    assert plain_sections[:2] == [("Composting at home",)] * 2  # without it, the head is one section's chunks

    voted = Retriever(index, settings.retrieval.model_copy(update={"distinct_sections": 5})).retrieve(question, k=5)
    sections = [e.chunk.location.section for e in voted.evidence]
    assert voted.evidence[0].chunk.id == plain.evidence[0].chunk.id
    assert len(set(sections[:3])) == 3  # the library has three sections: each one's best chunk comes first
    assert len(sections) > 3 and all(s == ("Composting at home",) for s in sections[3:])


def test_ablation_rankings_apply_the_same_distinct_sections_order() -> None:
    import numpy as np

    from assistant.retrieval.features import FEATURES
    from assistant.retrieval.ranker import LinearModel
    from evals.ranking import QueryCase, ranked_ids

    n = len(FEATURES)
    ranker = LinearModel(
        features=list(FEATURES), mean=[0.0] * n, scale=[1.0] * n, weights=[1.0] + [0.0] * (n - 1), bias=0
    )
    features = np.zeros((3, n), dtype=np.float32)
    features[:, 0] = [3.0, 2.0, 1.0]
    case = QueryCase(
        dataset="t", qid="q", pool=["a1", "a2", "b1"], features=features, grades={}, relevant={},
        rankings={"fusion": ["a1", "a2", "b1", "z"]}, max_dense=0.0, best_heading_dense=0.0, keys=[0, 0, 1],
    )  # fmt: skip
    assert ranked_ids(case, "ranker", ranker) == ["a1", "a2", "b1", "z"]
    assert ranked_ids(case, "ranker", ranker, distinct=5) == ["a1", "b1", "a2", "z"]
