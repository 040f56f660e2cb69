"""Section-aware retrieval, the learned ranking step and the calibrated refusal, on real indexes in temp dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_settings, small_library
from typer.testing import CliRunner

from assistant.core.settings import Settings
from assistant.retrieval.features import FEATURES
from assistant.retrieval.ranker import LinearModel, load_model, shipped_ranker, shipped_refusal
from assistant.retrieval.refusal import REFUSAL_FEATURES


def test_shipped_models_load_and_name_the_features_the_code_computes() -> None:
    ranker, refusal = shipped_ranker(), shipped_refusal()
    from evals.fit import RANKER_FEATURES

    # The shipped ranker reads every computed feature but the sentence signals.
    assert ranker.features == list(RANKER_FEATURES) and set(RANKER_FEATURES) < set(FEATURES)
    assert refusal.features == list(REFUSAL_FEATURES)
    assert 0.0 < refusal.threshold < 1.0
    assert "openstax" in ranker.trained_on and "scifact" in ranker.trained_on


def test_heading_signal_answers_grow_and_refuses_the_expense_report(pilot) -> None:  # type: ignore[no-untyped-def]
    grow = pilot.ask("What is the GROW model?")
    assert not grow.refused
    top = grow.evidence[0].chunk.location
    assert top.course_id == "coaching-and-mentoring" and top.module == "02-the-grow-model.pptx"
    expense = pilot.ask("How do I file my expense report?")
    assert expense.refused


def test_heading_signal_is_what_answers_grow(sample_settings: Settings) -> None:
    """Without the heading features (held at their mean), the same decision refuses GROW: they carry it."""
    from assistant.index.library import LibraryIndex
    from assistant.retrieval.refusal import refusal_signals
    from assistant.retrieval.rerank import features_for, inputs_for
    from assistant.retrieval.retriever import Retriever

    index = LibraryIndex(sample_settings)
    retriever = Retriever(index)
    lists = retriever.candidates("What is the GROW model?")
    cands = features_for("What is the GROW model?", lists, index, sample_settings.retrieval.rerank_pool)
    ranker, refusal = shipped_ranker(), shipped_refusal()
    with_heading = refusal_signals(cands, ranker, inputs_for("What is the GROW model?", lists, index, cands))
    assert refusal.probability(with_heading, REFUSAL_FEATURES)[0] >= refusal.threshold
    blind = with_heading.copy()
    for name in ("heading_lib_z", "top_heading_coverage", "salient_coverage3"):
        blind[0, REFUSAL_FEATURES.index(name)] = 0.0
    assert refusal.probability(blind, REFUSAL_FEATURES)[0] < refusal.probability(with_heading, REFUSAL_FEATURES)[0]


def test_reingest_embeds_only_changed_heading_representations(tmp_path: Path) -> None:
    from ingest.pipeline import IngestPipeline

    library = small_library(tmp_path)
    settings = make_settings(tmp_path)
    first = IngestPipeline(settings).run(library)
    assert first.ok and first.sections_embedded > 5 and first.sections_reused == 0

    again = IngestPipeline(settings).run(library)
    assert again.sections_embedded == 0 and again.sections_reused == first.sections_embedded

    # One new heading in one Markdown file: that heading is the only new heading vector.
    md = library / "coaching-and-mentoring" / "01-coaching-versus-mentoring.md"
    md.write_text(md.read_text(encoding="utf-8") + "\n\n## A brand new closing section\n\nSome closing words.\n")
    edited = IngestPipeline(settings).run(library)
    assert edited.sections_embedded == 1

    # New skills for one course change that course's heading texts only.
    manifest = library / "giving-feedback" / "course.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("skills:", "skills:\n- radical candour", 1))
    reskilled = IngestPipeline(settings).run(library)
    from assistant.index.library import LibraryIndex

    sections = LibraryIndex(settings).sections()
    feedback = sum(1 for c in sections.course_of if c == "giving-feedback")
    assert reskilled.sections_embedded == feedback
    assert all(sections.has_vector)
    assert any("radical candour" in t for t in sections.texts)


def test_lost_section_snapshot_is_rebuilt_from_the_ledger(tmp_path: Path) -> None:
    from assistant.index.library import LibraryIndex
    from ingest.pipeline import IngestPipeline

    library = small_library(tmp_path)
    settings = make_settings(tmp_path)
    IngestPipeline(settings).run(library)
    index = LibraryIndex(settings)
    before = index.sections()
    index.sections_path.unlink()
    rebuilt = LibraryIndex(settings).sections()
    assert rebuilt.ids == before.ids and rebuilt.chunk_row == before.chunk_row
    assert rebuilt.has_vector.all()


def test_fit_ranker_command_runs_on_a_tiny_benchmark(tmp_path: Path) -> None:
    from assistant.apps.cli import app

    bench = tmp_path / "bench"
    small_library(bench)
    questions = [
        ("What does the GROW model stand for?", "coaching-and-mentoring", "02-the-grow-model.pptx", [1, 9]),
        (
            "How is coaching different from mentoring?",
            "coaching-and-mentoring",
            "01-coaching-versus-mentoring.md",
            None,
        ),
        ("What does SBI stand for in feedback?", "giving-feedback", "02-the-sbi-model.pdf", None),
        ("Why do people avoid giving feedback?", "giving-feedback", "01-why-feedback-matters.md", None),
    ]
    with open(bench / "questions.jsonl", "w", encoding="utf-8") as fh:
        for i, (q, course, file, slides) in enumerate(questions):
            row = {"id": f"q{i}", "q": q, "course": course, "file": file, "section": "", "split": "train"}
            if slides:
                row["slides"] = slides
            fh.write(json.dumps(row) + "\n")
    settings = make_settings(tmp_path)
    env = {"COURSEPILOT_INDEX_DIR": str(settings.index.dir), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "models"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "fit-ranker",
            "--openstax",
            str(bench),
            "--no-scifact",
            "--work-dir",
            str(tmp_path / "w"),
            "--out",
            str(out),
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ranker_rows"]["openstax"] > 0 and report["refusal_instances"] == 8
    ranker = LinearModel.model_validate_json((out / "ranker.json").read_text())
    from evals.fit import RANKER_FEATURES

    assert ranker.features == list(RANKER_FEATURES) and len(ranker.weights) == len(RANKER_FEATURES)
    refusal = load_model(out / "refusal.json")
    assert refusal.features == list(REFUSAL_FEATURES)


def test_a_damaged_model_file_is_a_clear_error(tmp_path: Path) -> None:
    from assistant.core.errors import ConfigError

    bad = tmp_path / "ranker.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError) as caught:
        load_model(bad)
    assert "fit-ranker" in (caught.value.fix or "")


def test_a_tiny_library_is_not_refused_by_statistics_it_is_too_small_for(tmp_path: Path) -> None:
    """A one-course, two-passage library: the calibrated model's z-scores are meaningless, the thresholds decide."""
    from assistant.pilot import CoursePilot
    from ingest.pipeline import IngestPipeline

    course = tmp_path / "library" / "one-to-ones"
    course.mkdir(parents=True)
    (course / "course.yaml").write_text(
        "id: one-to-ones\ntitle: Running One-to-Ones\nmodules:\n  - path: talk.md\n    title: The first ten minutes\n"
    )
    (course / "talk.md").write_text(
        "# Running a one-to-one\n\nStart every one-to-one by asking what is on their mind, not with your own agenda."
        " If they have nothing to raise, ask about blockers and wins from last week.\n"
    )
    settings = make_settings(tmp_path, library={"dir": str(tmp_path / "library")})
    assert IngestPipeline(settings).run(tmp_path / "library").ok
    pilot = CoursePilot(settings)
    result = pilot.retriever.retrieve("What should I ask about blockers and wins?")
    assert result.supported is None and result.answer_probability is None
    assert not pilot.ask("What should I ask about blockers and wins?").refused
    assert pilot.ask("How do I file my expense report?").refused
