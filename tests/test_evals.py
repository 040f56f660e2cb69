"""Offline evals: dataset validation, metric arithmetic, a small run end to end, resume, thresholds,
baseline regressions, the LLM judge against the fake server, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ARTIFACTS
from typer.testing import CliRunner

from assistant.core.errors import CoursePilotError
from assistant.core.settings import Settings
from assistant.core.types import Location, PlaylistItem
from evals import metrics as m
from evals.dataset import ExpectedLocation, dataset_json_schema, load_dataset
from evals.runner import (
    METRIC_NAMES,
    RunSummary,
    check_thresholds,
    compare_with_baseline,
    load_results,
    run_eval,
)

GOLDEN = Path(__file__).resolve().parent.parent / "evals" / "datasets"

SMALL_DATASET = """\
version: 1
cases:
  - id: ans-lock
    type: answer
    question: "How do I lock a cell reference so it does not change when I copy a formula?"
    expected:
      - course: excel-basics
        module: 02-formulas-and-references.pdf
        section: Absolute references
    key_points: ["$"]
  - id: ans-slicer
    type: answer
    question: "How do I add a slicer to a pivot table?"
    expected:
      - {course: excel-pivot-tables, module: 03-slicers-and-timelines.md, section: Adding a slicer}
    key_points: ["slicer", "hologram", "teleport"]   # deliberately failing: the library never says these
  - id: ans-followup
    type: answer
    history:
      - {role: user, content: "What is the SBI model?"}
      - {role: assistant, content: "A three-part structure for feedback: situation, behaviour, impact."}
    question: "And what are its three parts?"
    expected: [{course: giving-feedback, module: 02-the-sbi-model.pdf}]
  - id: ans-outside
    type: answer
    question: "What is the capital of Mongolia?"
    answerable: false
  - id: find-pivot
    type: find
    question: "Which course teaches pivot tables?"
    expected: [{course: excel-pivot-tables}]
  - id: plan-excel
    type: playlist
    goal: "I want to get good at advanced Excel"
    minutes: 600
    must_include: [excel-power-query]
    order: [[excel-basics, excel-pivot-tables]]
"""


def loc(
    course: str = "excel-basics",
    module: str = "02-refs.pdf",
    section: tuple[str, ...] = (),
    page: int | None = None,
    module_title: str = "Formulas and cell references",
) -> Location:
    return Location(
        course_id=course,
        course_title=course.title(),
        module=module,
        module_title=module_title,
        section=section,
        page=page,
    )


def item(item_id: str, minutes: int = 30) -> PlaylistItem:
    course = item_id.partition("/")[0]
    return PlaylistItem(
        item_id=item_id,
        kind="module" if "/" in item_id else "course",
        title=item_id,
        course_id=course,
        level="beginner",
        minutes=minutes,
        why="test",
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ dataset


def test_dataset_loads_yaml_and_jsonl(tmp_path: Path) -> None:
    dataset = load_dataset(write(tmp_path, "d.yaml", SMALL_DATASET))
    assert [c.type for c in dataset.cases] == ["answer", "answer", "answer", "answer", "find", "playlist"]
    plan = dataset.cases[-1]
    assert plan.type == "playlist" and plan.order == [("excel-basics", "excel-pivot-tables")]
    lines = [json.dumps(c.model_dump(mode="json", exclude_none=True)) for c in dataset.cases]
    again = load_dataset(write(tmp_path, "d.jsonl", "\n".join(["# comment", *lines, ""])))
    assert again.fingerprint() == dataset.fingerprint()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "cases:\n  - {id: a1, type: answer, question: q, expected: [{course: c}], key_point: [x]}\n",
            [
                "case 'a1' (case #1)",
                "field 'key_point'",
                "Extra inputs are not permitted",
                "Fix: remove or rename 'key_point'",
                "key_points",
            ],
        ),
        (
            "cases:\n  - {id: a1, type: answer, question: q, expected: [{course: c, sektion: s}]}\n",
            ["case 'a1'", "field 'expected.0.sektion'"],
        ),
        (
            "cases:\n  - {id: a1, type: find, question: q, expected: [{course: c}]}\n"
            "  - {id: a1, type: answer, question: q2, answerable: false}\n",
            [
                "case 'a1' (case #2)",
                "field 'id'",
                "duplicate id, first used at case #1",
                "Fix: give every case a unique id",
            ],
        ),
        (
            "cases:\n  - {id: a2, type: answer, answerable: false}\n",
            ["case 'a2'", "field 'question'", "Field required", "Fix: add 'question:'"],
        ),
        (
            "cases:\n  - {id: a3, type: answer, question: q}\n",
            ["case 'a3'", "field 'expected'", "at least one 'expected'", "answerable: false"],
        ),
        ("cases:\n  - {id: p1, type: playlist, minutes: 60}\n", ["case 'p1'", "field 'goal'", "Field required"]),
        ("cases:\n  - {id: x1, type: quiz, question: q}\n", ["case 'x1'", "field 'type'", "answer, find, playlist"]),
        ("version: 2\ncases: []\n", ["field 'version'", "version: 1"]),
    ],
)
def test_dataset_errors_name_file_case_field_and_fix(tmp_path: Path, body: str, expected: list[str]) -> None:
    path = write(tmp_path, "bad.yaml", body)
    with pytest.raises(CoursePilotError) as info:
        load_dataset(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message
    assert info.value.fix


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    good = json.dumps({"id": "f1", "type": "find", "question": "q", "expected": [{"course": "c"}]})
    path = write(tmp_path, "bad.jsonl", f"{good}\n\n{{not json\n")
    with pytest.raises(CoursePilotError, match=r"bad\.jsonl: line 3: invalid JSON"):
        load_dataset(path)
    path = write(
        tmp_path, "bad2.jsonl", good + "\n" + json.dumps({"id": "f2", "type": "find", "question": "q", "extra": 1})
    )
    with pytest.raises(CoursePilotError, match=r"case 'f2' \(line 2\): field 'extra'"):
        load_dataset(path)


def test_committed_schema_matches_models() -> None:
    committed = json.loads((GOLDEN / "schema.json").read_text(encoding="utf-8"))
    assert committed == dataset_json_schema()
    assert committed["additionalProperties"] is False
    assert set(committed["$defs"]) >= {"AnswerCase", "FindCase", "PlaylistCase", "ExpectedLocation"}


def test_golden_dataset_is_valid_when_present() -> None:
    path = GOLDEN / "golden.yaml"
    if not path.exists():
        pytest.skip("evals/datasets/golden.yaml has not been written yet")
    assert load_dataset(path).cases


# ------------------------------------------------------------------------------------------ metrics


def test_location_matching_rules() -> None:
    exp = ExpectedLocation(course="excel-basics", module="02-refs.pdf", section="absolute references", pages=[2, 3])
    assert m.location_matches(loc(section=("Absolute references", "Mixed references"), page=2), exp)
    assert m.location_matches(loc(section=("Absolute References",), page=None), exp)  # no page: no constraint
    assert not m.location_matches(loc(section=("Absolute references",), page=1), exp)  # page outside
    assert not m.location_matches(loc(section=("Relative references",), page=2), exp)
    assert not m.location_matches(loc(course="excel-pivot-tables", section=("Absolute references",)), exp)
    # section may name the module title; module may be given by path or title
    assert m.location_matches(loc(), ExpectedLocation(course="excel-basics", section="Formulas and cell references"))
    assert m.location_matches(loc(), ExpectedLocation(course="EXCEL-BASICS", module="formulas and cell references"))
    assert not m.location_matches(loc(), ExpectedLocation(course="excel-basics", module="03-other.pdf"))


def test_retrieval_metrics_exact_values() -> None:
    expected = [
        ExpectedLocation(course="excel-basics", section="Absolute references"),
        ExpectedLocation(course="excel-pivot-tables"),
    ]
    rel = loc(section=("Absolute references",))
    off = loc(section=("Relative references",))
    retrieved = [off, rel, rel, off, off, off]
    assert m.hit_at_k(retrieved, expected, 1).value == 0.0
    assert m.hit_at_k(retrieved, expected, 3).value == 1.0
    assert m.recall_at_k(retrieved, expected, 5).value == 0.5
    assert "missing: excel-pivot-tables" in m.recall_at_k(retrieved, expected, 5).reason
    assert m.mrr(retrieved, expected).value == 0.5
    assert m.mrr([off], expected).value == 0.0
    # relevant at ranks 2 and 3; ideal = max(2 expected, 2 found) relevant at ranks 1 and 2
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert m.ndcg_at_k(retrieved, expected, 10).value == pytest.approx(dcg / idcg)
    assert m.ndcg_at_k(retrieved, expected, 10).value == pytest.approx(0.693426, abs=1e-6)
    # one expected location, retrieved three times from rank 1: perfect
    assert m.ndcg_at_k([rel, rel, rel], expected[:1], 10).value == pytest.approx(1.0)
    assert m.ndcg_at_k([off, rel], expected[:1], 10).value == pytest.approx(1 / math.log2(3))
    assert m.hit_at_k(retrieved, [], 5).value is None


def test_citation_and_key_point_metrics() -> None:
    expected = [
        ExpectedLocation(course="excel-basics", section="Absolute references"),
        ExpectedLocation(course="excel-pivot-tables"),
    ]
    cited = [
        loc(section=("Absolute references",)),
        loc(section=("Named ranges",)),
        loc(section=("Absolute references",)),
    ]
    assert m.citation_precision(cited, expected).value == pytest.approx(2 / 3)
    assert m.citation_recall(cited, expected).value == 0.5
    assert m.citation_precision([], expected).value is None
    assert m.citation_recall([], expected).value == 0.0
    text = "Press **F4** to add the “dollar  sign” — e.g. $A$1."
    assert m.key_point_recall(text, ["dollar sign", "F4", "$A$1", "named range"]).value == 0.75
    assert m.key_point_recall(text, []).value is None


def test_refusal_and_find_metrics() -> None:
    assert m.refusal_correct(refused=True, answerable=False).value == 1.0
    assert m.refusal_correct(refused=True, answerable=True).value == 0.0
    pr = m.refusal_precision_recall([(True, True), (True, False), (False, True), (False, False), (False, False)])
    assert pr["refusal_precision"].value == 0.5 and pr["refusal_recall"].value == 0.5
    assert m.refusal_precision_recall([(False, False)])["refusal_precision"].value is None
    courses = ["excel-basics", "excel-pivot-tables", "excel-power-query"]
    assert m.find_top_k(courses, ["excel-pivot-tables"], 1).value == 0.0
    assert m.find_top_k(courses, ["excel-pivot-tables"], 3).value == 1.0
    assert m.find_mrr(courses, ["excel-power-query", "nope"]).value == pytest.approx(1 / 3)


def test_playlist_metrics() -> None:
    prereqs = {"excel-pivot-tables": ["excel-basics"], "excel-power-query": ["excel-pivot-tables"]}
    plan = [item("excel-pivot-tables"), item("excel-basics/02-refs.pdf"), item("excel-power-query")]
    violations = m.prerequisite_violations(plan, prereqs)
    assert violations.value == 1.0 and "excel-basics is planned after excel-pivot-tables" in violations.reason
    assert m.prerequisite_violations(plan, prereqs, completed=["excel-basics"]).value == 0.0
    assert m.prerequisite_violations([item("excel-power-query")], prereqs).value == 1.0  # prerequisite missing
    good = [item("excel-basics"), item("excel-pivot-tables"), item("excel-power-query")]
    assert m.prerequisite_violations(good, prereqs).value == 0.0

    assert m.must_include_coverage(
        plan, ["excel-power-query", "excel-basics/02-refs.pdf", "giving-feedback"]
    ).value == (pytest.approx(2 / 3))
    assert m.must_include_coverage(good, ["excel-basics/01-intro.md"]).value == 1.0  # whole course covers module
    assert m.must_exclude_respected(plan, ["giving-feedback"]).value == 1.0
    assert m.must_exclude_respected(plan, ["excel-basics"]).value == 0.0
    order = [("excel-basics", "excel-pivot-tables"), ("excel-pivot-tables", "excel-power-query")]
    assert m.order_satisfied(plan, order).value == 0.5
    assert m.order_satisfied(good, order).value == 1.0
    assert m.order_satisfied([item("excel-pivot-tables")], order[:1], completed=["excel-basics"]).value == 1.0
    assert m.budget_respected(plan, 90).value == 1.0
    assert m.budget_respected(plan, 89).value == 0.0
    assert m.budget_respected(plan, None).value is None


def test_latency_percentiles() -> None:
    values = m.latency_percentiles([10, 20, 30, 40, 100])
    assert values["latency_p50_ms"].value == 30
    assert values["latency_p95_ms"].value == pytest.approx(88.0)  # 40 + 0.8 * (100 - 40)
    assert m.latency_percentiles([])["latency_p95_ms"].value is None


# ------------------------------------------------------------------------------------------ thresholds, baseline


def test_check_thresholds() -> None:
    summary = {"metrics": {"hit@5": 0.5, "refusal_recall": 0.9, "latency_p95_ms": 1200.0, "find_top1": None}}
    assert check_thresholds(summary, ["refusal_recall=0.7", "latency_p95_ms=1500"]) == []
    failures = check_thresholds(
        summary, ["hit@5=0.8", "latency_p95_ms<=1000", "find_top1>=0.5", "refusal_recall>=0.95"]
    )
    assert failures == [
        "hit@5 = 0.5 is below the required 0.8",
        "latency_p95_ms = 1200 is above the allowed 1000",
        "find_top1: no value in this run (no applicable cases); required >= 0.5",
        "refusal_recall = 0.9 is below the required 0.95",
    ]
    with pytest.raises(CoursePilotError, match=r"Unknown metric 'hit@50'.*use one of: pass_rate, hit@1"):
        check_thresholds(summary, ["hit@50=0.8"])
    with pytest.raises(CoursePilotError, match="METRIC=VALUE"):
        check_thresholds(summary, ["hit@5 > 0.8"])


def test_compare_with_baseline_rules() -> None:
    baseline = {"metrics": {"hit@5": 0.9, "mrr": 0.8, "ndcg@10": 0.7, "latency_p95_ms": 100.0, "latency_p50_ms": 50.0}}
    current = {"hit@5": 0.88, "mrr": 0.7, "ndcg@10": 0.75, "latency_p95_ms": 126.0, "latency_p50_ms": 90.0}
    result = compare_with_baseline(current, baseline, "base", "runs/base/summary.json")
    assert result.regressions == ["mrr", "latency_p95_ms"]  # hit@5 drop of 0.02 is within tolerance
    assert result.metrics["mrr"].delta == pytest.approx(-0.1)
    assert not result.metrics["latency_p50_ms"].regression
    ok = compare_with_baseline({**current, "latency_p95_ms": 125.0, "mrr": 0.8}, baseline, "base", "x")
    assert ok.regressions == []


def test_missing_baseline_names_the_path(tmp_path: Path) -> None:
    dataset = write(tmp_path, "d.yaml", SMALL_DATASET)
    with pytest.raises(CoursePilotError) as info:
        run_eval(dataset, object(), "x", runs_dir=tmp_path / "runs", baseline="nope")
    assert str(tmp_path / "runs" / "nope" / "summary.json") in str(info.value)


# ------------------------------------------------------------------------------------------ runs


class CountingPilot:
    """Delegates to a CoursePilot and counts the case calls (ask/find/playlist)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in ("ask", "find", "playlist"):
            self.calls.append(name)
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def eval_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evals")
    return write(root, "small.yaml", SMALL_DATASET), root / "runs"


@pytest.fixture(scope="module")
def base_run(pilot: Any, eval_dirs: tuple[Path, Path]) -> RunSummary:
    dataset, runs = eval_dirs
    seen: list[tuple[int, int]] = []
    summary = run_eval(dataset, pilot, "base", runs_dir=runs, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (6, 6)
    return summary


def test_run_writes_all_outputs(base_run: RunSummary, eval_dirs: tuple[Path, Path]) -> None:
    run_dir = eval_dirs[1] / "base"
    for name in ("meta.json", "results.jsonl", "summary.json", "report.md", "report.html"):
        assert (run_dir / name).is_file(), name
    lines = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == [
        "ans-lock",
        "ans-slicer",
        "ans-followup",
        "ans-outside",
        "find-pivot",
        "plan-excel",
    ]
    for record in lines:
        assert {
            "id",
            "type",
            "question",
            "answer",
            "refused",
            "cited",
            "expected",
            "metrics",
            "latency_ms",
            "passed",
            "failure_reason",
        } <= set(record)
    by_id = {r["id"]: r for r in lines}
    lock = by_id["ans-lock"]
    assert lock["metrics"]["hit@5"]["value"] == 1.0 and lock["cited"] and lock["answer"]
    assert by_id["ans-outside"]["refused"] and by_id["ans-outside"]["metrics"]["refusal_correct"]["value"] == 1.0
    assert by_id["find-pivot"]["metrics"]["find_top1"]["value"] == 1.0
    slicer = by_id["ans-slicer"]
    assert not slicer["passed"] and "key points: 1/3 key points present" in slicer["failure_reason"]
    assert slicer["metrics"]["key_point_recall"]["value"] == pytest.approx(1 / 3)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counts"]["cases"] == 6 and summary["counts"]["answer"] == 4
    assert set(summary["metrics"]) <= set(METRIC_NAMES)
    assert {"hit@5", "mrr", "ndcg@10", "citation_precision", "refusal_recall", "find_top1", "latency_p95_ms"} <= set(
        summary["metrics"]
    )
    assert summary["metrics"]["refusal_recall"] == 1.0
    assert summary["config"]["collection"].startswith("cp-")
    assert summary["config"]["retrieval"]["fusion"] in ("rrf", "weighted")
    assert summary["config"]["chat"]["provider"] == "none"
    md = (run_dir / "report.md").read_text()
    assert "| hit@5 ↑ |" in md and "## Failing cases (" in md and "| ans-slicer (answer) |" in md
    assert 'data-case="ans-slicer"' in (run_dir / "report.html").read_text()


def test_interrupted_run_resumes_without_rerunning(pilot: Any, eval_dirs: tuple[Path, Path]) -> None:
    dataset, runs = eval_dirs

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    first = CountingPilot(pilot)
    with pytest.raises(KeyboardInterrupt):
        run_eval(dataset, first, "resume", runs_dir=runs, progress=stop_after_two)
    results = runs / "resume" / "results.jsonl"
    assert len(results.read_text().splitlines()) == 2
    assert not (runs / "resume" / "summary.json").exists()
    with results.open("a") as fh:  # a line cut short by the interruption is dropped on resume
        fh.write('{"id": "ans-followup", "ty')

    second = CountingPilot(pilot)
    summary = run_eval(dataset, second, "resume", runs_dir=runs)
    assert len(second.calls) == 4
    assert summary.counts["resumed"] == 2 and summary.counts["cases"] == 6
    assert [r.id for r in load_results(results)] == [
        "ans-lock",
        "ans-slicer",
        "ans-followup",
        "ans-outside",
        "find-pivot",
        "plan-excel",
    ]
    third = CountingPilot(pilot)
    run_eval(dataset, third, "resume", runs_dir=runs)
    assert third.calls == []
    assert len(results.read_text().splitlines()) == 6


def test_threshold_fails_on_a_deliberate_regression(base_run: RunSummary) -> None:
    assert check_thresholds(base_run, ["hit@5=0.5", "refusal_recall=0.7"]) == []
    worse = base_run.model_copy(update={"metrics": {**base_run.metrics, "hit@5": 0.25}})
    assert check_thresholds(worse, ["hit@5=0.5", "refusal_recall=0.7"]) == ["hit@5 = 0.25 is below the required 0.5"]


@pytest.fixture(scope="module")
def baseline_run(pilot: Any, base_run: RunSummary, eval_dirs: tuple[Path, Path]) -> RunSummary:
    """A candidate compared with a deliberately better baseline: reuses base's results via resume (no re-run)."""
    _, runs = eval_dirs
    better = json.loads((runs / "base" / "summary.json").read_text())
    better["name"] = "good"
    better["metrics"]["mrr"] = (better["metrics"].get("mrr") or 0) + 0.1
    better["metrics"]["latency_p95_ms"] = max(1.0, better["metrics"]["latency_p95_ms"] / 2)
    (runs / "good").mkdir()
    (runs / "good" / "summary.json").write_text(json.dumps(better))
    shutil.copytree(runs / "base", runs / "candidate")
    counting = CountingPilot(pilot)
    summary = run_eval(eval_dirs[0], counting, "candidate", runs_dir=runs, baseline="good")
    assert counting.calls == []
    return summary


def test_baseline_comparison_flags_regressions(baseline_run: RunSummary, eval_dirs: tuple[Path, Path]) -> None:
    assert baseline_run.baseline is not None
    assert set(baseline_run.baseline.regressions) == {"mrr", "latency_p95_ms"}
    assert baseline_run.baseline.metrics["mrr"].delta == pytest.approx(-0.1, abs=1e-3)
    run_dir = eval_dirs[1] / "candidate"
    stored = json.loads((run_dir / "summary.json").read_text())
    assert stored["baseline"]["name"] == "good" and set(stored["baseline"]["regressions"]) == {"mrr", "latency_p95_ms"}
    assert "**REGRESSION**" in (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert 'class="regression" data-metric="mrr"' in html and "good (baseline)" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


# ------------------------------------------------------------------------------------------ judge


def test_judge_against_fake_openai(fake_openai: Any) -> None:
    from evals.judge import Judge

    settings = Settings(_env_file=None, chat={"provider": "openai", "base_url": fake_openai.base_url, "max_retries": 0})  # type: ignore[call-arg]
    judge = Judge(settings)
    fake_openai.script(
        '```json\n{"claims": [{"claim": "F4 locks", "supported": true}, {"claim": "moon", "supported": false}], "reason": "r"}\n```',
        '{"score": 4, "reason": "mostly answers"}',
        "no json here",
    )
    faith = judge.faithfulness("How do I lock a reference?", "Press F4. The moon is cheese.", ["Press F4 to lock it."])
    assert faith.value == 0.5 and "unsupported: moon" in faith.reason
    prompt = fake_openai.last_prompt()
    assert "Press F4 to lock it." in prompt and "The moon is cheese." in prompt and "{context}" not in prompt
    relevance = judge.answer_relevance("How do I lock a reference?", "Press F4.")
    assert relevance.value == 0.75
    broken = judge.answer_relevance("q", "a")
    assert broken.value is None and "not understood" in broken.reason


# ------------------------------------------------------------------------------------------ browser


@pytest.mark.browser
def test_report_html_renders_charts_in_chromium(baseline_run: RunSummary) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    report = Path(baseline_run.files["report_html"])
    ARTIFACTS.mkdir(exist_ok=True)
    remote: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(report.as_uri())
            charts = page.locator("[data-chart]")
            assert charts.count() == 2
            for chart_id in ("chart-metrics", "chart-latency"):
                chart = page.locator(f"#{chart_id}")
                assert chart.locator("svg").count() == 1
                box = chart.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100
            assert page.locator("#chart-metrics svg text", has_text="mrr").count() >= 1
            assert page.locator("#metrics-table tr.regression").count() == 2
            assert page.locator("#failing-cases tr[data-case='ans-slicer']").is_visible()
            page.screenshot(path=str(ARTIFACTS / "eval-report.png"), full_page=True)
        finally:
            browser.close()
    assert remote == []
    assert (ARTIFACTS / "eval-report.png").stat().st_size > 10_000


def test_ablation_markdown_is_one_table_row_per_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`eval ablation --markdown` went through the console, which wrapped each row at the terminal's width (80
    columns when piped), so the table pasted into a README was broken. The ablation itself is not what is tested
    here: it is replaced by a result of the shape it returns."""
    import evals.ablation as ablation
    from assistant.apps.cli import app as cli_app

    rows = [
        ablation.AblationRow(
            name="learned ranker + distinct sections (shipped default)",
            scifact_ndcg_at_10=0.7297,
            openstax_hit_at_1=0.8346,
            openstax_hit_at_5=0.9528,
            golden_hit_at_1=0.725,
            golden_hit_at_5=0.8875,
        )
    ]
    result = ablation.AblationResult(rows=rows, refusal=ablation.RefusalFigures(), seconds=1.0)
    monkeypatch.setattr(ablation, "run_ablation", lambda *args, **kwargs: result)
    out = CliRunner().invoke(cli_app, ["eval", "ablation", "--markdown"], terminal_width=80)
    assert out.exit_code == 0, out.output
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 3 and all(line.endswith("|") for line in table)
    assert "| learned ranker + distinct sections (shipped default) | 0.730 | 0.835 | 0.953 | 0.725 | 0.887 |" in table
