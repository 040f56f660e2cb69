"""The calibrated refusal: term-evidence signals, the library's own cosine scale, the fit, on a real library.

The library (tests/fixtures/refusal-library, three small courses written for these tests) has a section titled
"Prioritising requirements with the MoSCoW method" (a rare term that a heading is about, like GROW) and an email
section whose example subject line mentions timesheets once (a term in passing, like the expense report).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, SAMPLE_LIBRARY, make_settings

from assistant.core.settings import Settings
from assistant.index.library import LibraryIndex
from assistant.retrieval.refusal import REFUSAL_FEATURES, RefusalInputs

LIBRARY = FIXTURES / "refusal-library"
HEADING_QUESTION = "What is the MoSCoW method?"
PASSING_QUESTION = "How do I submit my timesheet?"


@pytest.fixture(scope="module")
def library_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from ingest.pipeline import IngestPipeline

    tmp = tmp_path_factory.mktemp("refusal")
    library = tmp / "library"
    shutil.copytree(LIBRARY, library)
    settings = make_settings(tmp, library={"dir": str(library)})
    report = IngestPipeline(settings).run(library)
    assert report.ok and report.chunks_total >= 20
    return settings


def _inputs(settings: Settings, question: str) -> RefusalInputs:
    from assistant.retrieval.rerank import features_for, inputs_for
    from assistant.retrieval.retriever import Retriever

    index = LibraryIndex(settings)
    lists = Retriever(index).candidates(question)
    cands = features_for(question, lists, index, settings.retrieval.rerank_pool)
    return inputs_for(question, lists, index, cands)


def test_a_rare_term_a_heading_is_about_is_salient_and_one_in_passing_is_not(library_settings: Settings) -> None:
    heading = _inputs(library_settings, HEADING_QUESTION)
    passing = _inputs(library_settings, PASSING_QUESTION)
    assert heading.salient.max() > 0.9
    # "timesheets" is in one example subject line, once: present, but not salient; "submit" is nowhere.
    assert passing.salient.max() < 0.1


def test_the_calibrated_decision_answers_the_heading_question_and_refuses_the_passing_one(
    library_settings: Settings,
) -> None:
    from assistant.pilot import CoursePilot

    pilot = CoursePilot(library_settings)
    result = pilot.retriever.retrieve(HEADING_QUESTION)
    assert result.supported is not None, "the library is big enough for the learned decision"
    answered = pilot.ask(HEADING_QUESTION)
    assert not answered.refused
    assert answered.evidence[0].chunk.location.course_id == "project-planning"
    assert pilot.ask(PASSING_QUESTION).refused


def test_salience_is_what_separates_them(library_settings: Settings) -> None:
    """With the term-evidence signals of the heading question replaced by the passing one's, p(answer) drops."""
    from assistant.retrieval.ranker import shipped_ranker, shipped_refusal
    from assistant.retrieval.refusal import refusal_signals
    from assistant.retrieval.rerank import features_for, inputs_for
    from assistant.retrieval.retriever import Retriever

    index = LibraryIndex(library_settings)
    lists = Retriever(index).candidates(HEADING_QUESTION)
    cands = features_for(HEADING_QUESTION, lists, index, library_settings.retrieval.rerank_pool)
    refusal = shipped_refusal()
    row = refusal_signals(cands, shipped_ranker(), inputs_for(HEADING_QUESTION, lists, index, cands))
    blind = row.copy()
    for name in ("salient_coverage3",):
        blind[0, REFUSAL_FEATURES.index(name)] = 0.0
    assert refusal.probability(blind, REFUSAL_FEATURES)[0] < refusal.probability(row, REFUSAL_FEATURES)[0]


def _count_measurements(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every library-scale measurement from now on appends to the returned list (the real one still runs)."""
    from assistant.retrieval import library_scale as ls

    measured: list[int] = []
    real = ls.measure_scale

    def counting(index: LibraryIndex, sections: object, sample: int = ls.SAMPLE) -> ls.LibraryScale:
        measured.append(1)
        return real(index, sections, sample)  # type: ignore[arg-type]

    monkeypatch.setattr(ls, "measure_scale", counting)
    return measured


def _add_one_section_course(library: Path) -> None:
    course = library / "quokka-onboarding"
    course.mkdir()
    (course / "01-the-quokka-handshake.md").write_text(
        "# Quokka onboarding\n\n## The quokka handshake\n\nWave, wait and write the visitor's name in the book.\n"
    )


def test_the_library_scale_is_measured_once_and_again_after_the_library_changed(
    library_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.retrieval import library_scale as ls

    index = LibraryIndex(library_settings)
    sections = index.sections()
    ls.scale_path(index).unlink(missing_ok=True)  # measured by the tests before
    index.ledger.set_meta(ls.LEDGER_KEY, "")  # and by the ingest: this is a worker measuring for itself
    measured = _count_measurements(monkeypatch)
    first = ls.library_scale(index, sections)
    assert ls.library_scale(index, sections) is first and len(measured) == 1
    # Three courses: each heading is compared with the other courses' chunks and headings.
    assert first.samples == min(ls.SAMPLE, int(sections.has_vector.sum()))
    assert first.dense_z(first.dense_mean) == 0.0 and first.dense_sd > 0
    # Another worker (a new index object) reads the measurement from the file next to the index.
    assert ls.library_scale(LibraryIndex(library_settings), sections) == first and len(measured) == 1
    # Many ingests later the scale is measured again.
    ls._CACHE[index].generation -= 1000
    path = ls.scale_path(index)
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "generation": body["generation"] - 1000}))
    ls.library_scale(index, sections)
    assert len(measured) == 2


def test_the_ingest_keeps_the_scale_in_the_ledger_for_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each worker measured the scale on its own first question after an ingest: that learner waited for it, and two
    # workers that measured at different moments read the same question against different scales.
    from assistant.retrieval import library_scale as ls
    from ingest.pipeline import IngestPipeline

    library = tmp_path / "library"
    shutil.copytree(LIBRARY, library)
    settings = make_settings(tmp_path, library={"dir": str(library)})
    assert IngestPipeline(settings).run(library).ok
    assert not ls.publish_scale(LibraryIndex(settings))  # kept by that ingest, and still fresh
    published = ls._decode(LibraryIndex(settings).ledger.get_meta(ls.LEDGER_KEY) or "")
    assert published is not None and published.scale.trusted
    measured = _count_measurements(monkeypatch)
    worker = LibraryIndex(settings)  # a new worker: nothing in memory, no file of its own
    ls.scale_path(worker).unlink(missing_ok=True)
    assert ls.library_scale(worker, worker.sections()) == published.scale and not measured
    assert IngestPipeline(settings).run(library).ok and not measured  # nothing changed: not measured again
    _add_one_section_course(library)
    assert IngestPipeline(settings).run(library).ok and len(measured) == 1  # a new course: measured by the ingest
    worker.refresh(force=True)
    assert ls.library_scale(worker, worker.sections()) != published.scale and len(measured) == 1
    worker.ledger.set_meta(ls.LEDGER_KEY, "")  # lost: the next publish measures and says so
    assert ls.publish_scale(worker) and len(measured) == 2


def _scale_of(tmp_path: Path, library: Path) -> object:
    from assistant.retrieval.library_scale import library_scale
    from ingest.pipeline import IngestPipeline

    settings = make_settings(tmp_path, library={"dir": str(library)})
    assert IngestPipeline(settings).run(library).ok
    index = LibraryIndex(settings)
    return library_scale(index, index.sections())


def test_a_one_course_library_of_a_few_modules_is_not_scaled_so_the_thresholds_decide(tmp_path: Path) -> None:
    # One course is one topic: its sections' best cosines outside their own section are those of questions it
    # answers, and z-scores against them refused what it teaches (a feedback course refused "a path to give
    # better feedback").
    library = tmp_path / "library"
    shutil.copytree(LIBRARY / "project-planning", library / "project-planning")
    scale = _scale_of(tmp_path, library)
    assert not scale.trusted  # type: ignore[attr-defined]


def test_a_second_course_added_to_a_one_course_library_is_measured_at_once(tmp_path: Path) -> None:
    # A worker that measured (and cached) a one-course library as unscaled kept that after a second course was
    # added, since one new section is well under the 10% drift that triggers a new measurement.
    from assistant.retrieval import library_scale as ls
    from ingest.pipeline import IngestPipeline

    library = tmp_path / "library"
    shutil.copytree(SAMPLE_LIBRARY / "giving-feedback", library / "giving-feedback")  # as tests/test_deploy.py
    settings = make_settings(tmp_path, library={"dir": str(library)})
    assert IngestPipeline(settings).run(library).ok
    index = LibraryIndex(settings)
    before = len(index.sections())
    assert not ls.library_scale(index, index.sections()).trusted
    _add_one_section_course(library)
    assert IngestPipeline(settings).run(library).ok
    index.refresh(force=True)  # as a worker's next question does: it follows the ledger and reopens its reader
    sections = index.sections()
    assert abs(len(sections) - before) / before <= ls._MAX_DRIFT  # not a change of size the cache would notice
    assert ls.library_scale(index, sections).trusted
    # A new worker reads the file, which records the new shape too.
    assert ls.library_scale(LibraryIndex(settings), sections).trusted


def test_a_one_course_corpus_of_many_documents_is_scaled_against_the_other_documents(tmp_path: Path) -> None:
    # Every section of the fixture library as a document of its own, in one course (like SciFact's abstracts).
    course = tmp_path / "library" / "handbook"
    course.mkdir(parents=True)
    n = 0
    for path in sorted(LIBRARY.glob("*/*.md")):
        for part in path.read_text(encoding="utf-8").split("\n## ")[1:]:
            title, _, body = part.partition("\n")
            n += 1
            slug = "-".join(title.lower().split())
            (course / f"{n:02d}-{slug}.md").write_text(f"# {title}\n\n{body}", encoding="utf-8")
    assert n >= 20
    scale = _scale_of(tmp_path, tmp_path / "library")
    assert scale.trusted and 0.0 < scale.dense_mean < 1.0 and 0.0 < scale.heading_mean < 1.0  # type: ignore[attr-defined]


def test_fit_refusal_weighs_each_train_set_the_same_and_caps_false_refusals() -> None:
    from evals.fit import RefusalSet, choose_threshold, fit_refusal

    rng = np.random.default_rng(0)
    width = len(REFUSAL_FEATURES)

    def rows(n: int, shift: float) -> np.ndarray:
        return rng.normal(shift, 1.0, size=(n, width)).astype(np.float32)

    big = RefusalSet(name="big", answerable=rows(400, 1.0), excluded=rows(400, -1.0))
    small = RefusalSet(name="small", answerable=rows(40, 0.5), excluded=rows(40, -0.5))
    model = fit_refusal([big, small], max_false_refusal=0.05, c=1.0)
    assert model.trained_on == ["big train (exclusion trick)", "small train (exclusion trick)"]
    # The cap holds on the first set (the learner questions); both sets shaped the weights.
    assert float(model.notes["big_train_false_refusal_rate"]) <= 0.05  # type: ignore[arg-type]
    assert "small_train_excluded_refused" in model.notes
    # The weighted threshold: one heavy instance may be refused only if its weight fits under the cap.
    p = np.asarray([0.1, 0.2, 0.3, 0.4])
    assert choose_threshold(p, 0.25) == 0.2
    assert choose_threshold(p, 0.25, np.asarray([3.0, 1.0, 1.0, 1.0])) == 0.1


def test_excluded_lists_remove_the_gold_and_fuse_again() -> None:
    from assistant.core.settings import RetrievalSettings
    from assistant.retrieval.retriever import CandidateLists, Ranked, Retriever
    from evals.refusal_data import excluded_lists

    retriever = Retriever.__new__(Retriever)
    retriever.settings = RetrievalSettings()
    lists = CandidateLists(
        vector=np.zeros(3),
        dense=Ranked(["gold", "a", "b"], [0.9, 0.5, 0.4]),
        lexical=Ranked(["b", "gold"], [7.0, 5.0]),
        fused=[("gold", 1.0), ("b", 0.5), ("a", 0.1)],
    )
    out = excluded_lists(lists, {"gold"}, retriever)
    assert out.dense.ids == ["a", "b"] and out.lexical.ids == ["b"]
    assert [c for c, _ in out.fused] and "gold" not in {c for c, _ in out.fused}


def test_without_heading_vectors_to_measure_the_scale_the_two_thresholds_decide(tmp_path: Path) -> None:
    """An index whose heading vectors are gone (an older index, a lost collection): no scale, no learned decision."""
    from assistant.retrieval.retriever import Retriever
    from ingest.pipeline import IngestPipeline

    library = tmp_path / "library"
    shutil.copytree(LIBRARY, library)
    settings = make_settings(tmp_path, library={"dir": str(library)})
    assert IngestPipeline(settings).run(library).ok
    LibraryIndex(settings).section_store.drop()
    index = LibraryIndex(settings)
    assert not index.sections().has_vector.any()
    result = Retriever(index).retrieve(HEADING_QUESTION)
    assert result.supported is None and result.answer_probability is None
