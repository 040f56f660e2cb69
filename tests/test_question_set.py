"""`coursepilot eval run` on an L&D team's own question set (CSV / JSONL, openstax format) and conversations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, make_settings
from typer.testing import CliRunner

from assistant.core.errors import CoursePilotError
from assistant.core.settings import Settings
from assistant.pilot import CoursePilot
from evals.dataset import AnswerCase, load_dataset
from evals.runner import run_eval
from ingest.pipeline import IngestPipeline

TIPS = """# Office Tips

## Printer Etiquette

Collect your printouts promptly so that confidential pages are not left on the tray.

## Booking Rooms

Book meeting rooms in the calendar and release the room if the meeting is cancelled.
"""

HEADER = "id,q,course,section,file,slides,split,chapter\n"
CSV_ROWS = [
    "p1,Why should I collect my printouts quickly?,office,Printer Etiquette,tips.md,,train,1\n",
    "b1,What should I do with a room booking when the meeting is cancelled?,office,Booking Rooms,tips.md,,test,1\n",
    'bad,How do I handle a complaint?,service,,deck.pptx,"three-four",train,2\n',
    "s1,How do I handle a customer complaint?,service,,deck.pptx,3-3,train,2\n",
]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("questions")
    lib = tmp / "library"
    (lib / "office").mkdir(parents=True)
    (lib / "office" / "tips.md").write_text(TIPS, encoding="utf-8")
    (lib / "office" / "course.yaml").write_text("id: office\ntitle: Office Basics\n", encoding="utf-8")
    (lib / "service").mkdir()
    shutil.copy(FIXTURES / "good" / "deck.pptx", lib / "service" / "deck.pptx")
    (lib / "service" / "course.yaml").write_text("id: service\ntitle: Customer Service\n", encoding="utf-8")
    settings = make_settings(tmp, library={"dir": str(lib)})
    assert IngestPipeline(settings).run(lib).chunks_total > 0
    return settings


def test_csv_rows_become_cases_and_a_bad_row_is_named_and_left_out(tmp_path: Path) -> None:
    path = tmp_path / "questions.csv"
    path.write_text("\ufeff" + HEADER + "".join(CSV_ROWS), encoding="utf-8")  # Excel writes a BOM
    dataset = load_dataset(path)
    assert [c.id for c in dataset.cases] == ["p1", "b1", "s1"]
    assert len(dataset.problems) == 1
    problem = dataset.problems[0]
    assert "row 4" in problem and "column 'slides'" in problem and "three-four" in problem and "3-7" in problem
    slide_case = dataset.cases[2]
    assert isinstance(slide_case, AnswerCase)
    gold = slide_case.expected[0]
    # PPTX gold is the slide range, not the title (a slide's trail names only the deck and the slide).
    assert (gold.course, gold.module, gold.section, gold.pages) == ("service", "deck.pptx", None, [3])
    text_case = dataset.cases[0]
    assert isinstance(text_case, AnswerCase)
    assert text_case.expected[0].section == "Printer Etiquette" and text_case.expected[0].module == "tips.md"


def test_jsonl_in_the_openstax_format_with_split(tmp_path: Path) -> None:
    rows: list[Any] = [
        {"id": "a", "q": "Why collect printouts?", "course": "office", "section": "Printer Etiquette",
         "file": "tips.md", "split": "test", "module_headings": ["Printer Etiquette"]},
        {"id": "b", "q": "Complaints?", "course": "service", "section": "Handling Complaints", "file": "deck.pptx",
         "slides": [3, 4], "split": "train"},
        {"id": "c", "q": "", "course": "office", "section": "Booking Rooms", "split": "train"},
        {"id": "d", "q": "Rooms?", "section": "Booking Rooms", "split": "train"},
    ]  # fmt: skip
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n", encoding="utf-8")
    train = load_dataset(path, split="train")
    assert [c.id for c in train.cases] == ["b"]
    gold = train.cases[0].expected[0]  # type: ignore[union-attr]
    assert gold.pages == [3, 4] and gold.section is None
    assert any("line 3" in p and "column 'q'" in p for p in train.problems)
    assert any("line 4" in p and "column 'course'" in p for p in train.problems)
    assert any("line 5" in p and "invalid JSON" in p for p in train.problems)
    assert [c.id for c in load_dataset(path, split="test").cases] == ["a"]


def test_a_question_set_with_no_usable_row_or_no_question_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("question_text,course\nHow?,office\n", encoding="utf-8")
    with pytest.raises(CoursePilotError, match="no 'q' or 'question' column"):
        load_dataset(path)
    path.write_text("q,course,section\nHow?,,Booking Rooms\n", encoding="utf-8")
    with pytest.raises(CoursePilotError, match="row 2: column 'course'"):
        load_dataset(path)
    golden = tmp_path / "golden.yaml"
    golden.write_text("version: 1\ncases: []\n", encoding="utf-8")
    with pytest.raises(CoursePilotError, match="only to question sets"):
        load_dataset(golden, split="test")


def test_eval_run_scores_a_csv_question_set_and_reports_the_bad_row(library: Settings, tmp_path: Path) -> None:
    path = tmp_path / "questions.csv"
    path.write_text(HEADER + "".join(CSV_ROWS), encoding="utf-8")
    summary = run_eval(path, CoursePilot(library), "csv", runs_dir=tmp_path / "runs", judge=False)
    assert summary.counts["cases"] == 3 and summary.counts["rows_left_out"] == 1
    assert "column 'slides'" in summary.problems[0]
    assert summary.metrics["hit@5"] == 1.0
    assert summary.metrics["citation_precision"] is not None and summary.metrics["citation_precision"] > 0
    report = (tmp_path / "runs" / "csv" / "report.md").read_text(encoding="utf-8")
    assert "citation_precision" in report or "citation precision" in report.lower()
    saved = json.loads((tmp_path / "runs" / "csv" / "summary.json").read_text(encoding="utf-8"))
    assert saved["problems"] == summary.problems


def test_cli_eval_run_takes_a_jsonl_question_set_and_a_split(
    library: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.apps.cli import app

    rows = [
        {"id": "p1", "q": "Why should I collect my printouts quickly?", "course": "office",
         "section": "Printer Etiquette", "file": "tips.md", "split": "test"},
        {"id": "p2", "q": "Rooms?", "course": "office", "section": "Booking Rooms", "split": "train"},
    ]  # fmt: skip
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    monkeypatch.setenv("COURSEPILOT_LIBRARY_DIR", str(library.library.dir))
    monkeypatch.setenv("COURSEPILOT_INDEX_DIR", str(library.index.dir))
    monkeypatch.setenv("COURSEPILOT_DATABASE_URL", library.database.url)
    result = CliRunner().invoke(
        app, ["eval", "run", str(path), "--split", "test", "--name", "q", "--runs-dir", str(tmp_path / "r"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["cases"] == 1 and summary["metrics"]["hit@1"] == 1.0


CONVERSATION = """version: 1
cases:
- id: conv-1
  type: conversation
  turns:
  - question: Why should I collect my printouts quickly?
    expected: [{course: office, section: Printer Etiquette}]
    key_points: [confidential pages]
  - question: and what about meeting rooms when the meeting is cancelled?
    expected: [{course: office, section: Booking Rooms}]
    key_points: [release the room]
  - question: How do I renew my passport?
    answerable: false
"""


def test_conversation_turns_are_asked_after_the_real_answers(library: Settings, tmp_path: Path) -> None:
    pilot = CoursePilot(library)
    seen: list[list[tuple[str, str]]] = []

    class Recording:
        """The real CoursePilot, recording the history each turn is asked with."""

        settings = pilot.settings

        def ask(self, question: str, history: Any = None, **kw: Any) -> Any:
            seen.append([(t.role, t.content) for t in history or []])
            return pilot.ask(question, history=history, **kw)

        def warm_up(self) -> None:
            pilot.warm_up()

    path = tmp_path / "conv.yaml"
    path.write_text(CONVERSATION, encoding="utf-8")
    summary = run_eval(path, Recording(), "conv", runs_dir=tmp_path / "runs", judge=False)
    assert summary.counts["conversation"] == 1 and summary.counts["turns"] == 3
    lines = (tmp_path / "runs" / "conv" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["id"] for r in results] == ["conv-1.t1", "conv-1.t2", "conv-1.t3"]
    assert seen[0] == []
    assert seen[1] == [("user", "Why should I collect my printouts quickly?"), ("assistant", results[0]["answer"])]
    assert len(seen[2]) == 4 and seen[2][3] == ("assistant", results[1]["answer"])
    assert results[0]["metrics"]["citation_recall"]["value"] == 1.0
    assert summary.metrics["pass_rate"] is not None
    # A resumed run skips a conversation whose turns are all done, and keeps the same figures.
    again = run_eval(path, Recording(), "conv", runs_dir=tmp_path / "runs", judge=False)
    assert again.counts["resumed"] == 1 and len(seen) == 3 and again.metrics == summary.metrics
