"""Run a golden dataset through CoursePilot (the same API the UI uses), score it, and write the run folder.

runs/NAME/
  meta.json      dataset fingerprint + config fingerprint (decides whether a re-run resumes)
  results.jsonl  one line per case, appended as cases finish
  summary.json   aggregate metrics, counts, config, baseline deltas
  report.md      tables
  report.html    self-contained report with charts
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from assistant.core.errors import CoursePilotError
from assistant.core.types import ChatTurn, Location, PlaylistItem
from evals import metrics as m
from evals.dataset import AnswerCase, ConversationCase, Dataset, FindCase, HistoryTurn, PlaylistCase, load_dataset
from evals.gates import check_thresholds, compare_with_baseline, load_summary
from evals.metrics import METRIC_NAMES, MetricValue
from evals.report import write_reports
from evals.types import BaselineComparison, CaseResult, MetricDelta, RunSummary

if TYPE_CHECKING:
    from assistant.core.settings import Settings
    from assistant.pilot import CoursePilot
    from evals.judge import Judge

__all__ = [
    "METRIC_NAMES",
    "BaselineComparison",
    "CaseResult",
    "MetricDelta",
    "RunSummary",
    "check_thresholds",
    "compare_with_baseline",
    "load_results",
    "load_summary",
    "run_eval",
]


# A case passes when every rule for its type holds (see _verdict).
KEY_POINT_PASS = 0.5

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


# ------------------------------------------------------------------------------------------ helpers


def _loc(location: Location) -> dict[str, Any]:
    return {
        "course": location.course_id,
        "module": location.module,
        "section": list(location.section),
        "page": location.page,
        "label": location.label(),
    }


def _error_text(exc: Exception) -> str:
    if isinstance(exc, AttributeError) and "playlist" in str(exc):
        return "CoursePilot.playlist() is not available in this version"
    return f"{type(exc).__name__}: {exc}"


def run_config(settings: Settings, judge_model: str | None) -> dict[str, Any]:
    """What the numbers depend on (no secrets): index collection, retrieval/fusion, models."""
    return {
        "collection": settings.collection_name(),
        "library_dir": str(settings.library.dir),
        "retrieval": settings.retrieval.model_dump(mode="json"),
        "chunking": settings.chunking.model_dump(mode="json"),
        "embedding": {
            "provider": settings.embedding.provider,
            "model": settings.embedding.model,
            "backend": settings.embedding.backend,
        },
        "chat": {
            "provider": settings.chat.provider,
            "model": settings.chat.model if settings.chat.provider != "none" else None,
        },
        "judge": judge_model,
    }


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------ one case


def _verdict(result: CaseResult, answerable: bool) -> tuple[bool, str | None]:
    mv = result.metrics

    def val(name: str) -> float | None:
        metric = mv.get(name)
        return metric.value if metric is not None else None

    failures: list[str] = []
    if result.type in ("answer", "find") and not answerable:
        if val("refusal_correct") == 0:
            failures.append(mv["refusal_correct"].reason)
    elif result.type == "answer":
        if result.refused:
            failures.append("refused an answerable question")
        else:
            if val("citation_recall") == 0:
                failures.append(f"cited none of the expected locations ({mv['citation_recall'].reason})")
            kp = val("key_point_recall")
            if kp is not None and kp < KEY_POINT_PASS:
                failures.append(f"key points: {mv['key_point_recall'].reason}")
        if val("hit@5") == 0:
            failures.append(f"retrieval: {mv['hit@5'].reason}")
    elif result.type == "find":
        if val("find_top3") == 0:
            failures.append(f"expected course not in the top 3 ({mv['find_top3'].reason})")
    elif result.type == "playlist":
        violations = val("prerequisite_violations")
        if violations:
            failures.append(f"prerequisites: {mv['prerequisite_violations'].reason}")
        for name in ("must_include_coverage", "must_exclude_respected", "order_satisfied", "budget_respected"):
            value = val(name)
            if value is not None and value < 1:
                failures.append(mv[name].reason)
    return (not failures), ("; ".join(failures) or None)


def evaluate_case(
    case: AnswerCase | FindCase | PlaylistCase,
    pilot: CoursePilot,
    judge: Judge | None = None,
    prerequisites: Mapping[str, Sequence[str]] | None = None,
) -> CaseResult:
    """Run one case through CoursePilot and score it. Errors are recorded on the result, not raised."""
    if isinstance(case, PlaylistCase):
        result = CaseResult(
            id=case.id,
            type=case.type,
            question=case.goal,
            expected={
                "minutes": case.minutes,
                "completed": case.completed,
                "must_include": case.must_include,
                "must_exclude": case.must_exclude,
                "order": [list(p) for p in case.order],
            },
        )
    else:
        result = CaseResult(
            id=case.id,
            type=case.type,
            question=case.question,
            expected=[e.model_dump(exclude_none=True) for e in case.expected],
        )
    try:
        if isinstance(case, AnswerCase):
            _run_answer(case, pilot, judge, result)
        elif isinstance(case, FindCase):
            _run_find(case, pilot, result)
        else:
            _run_playlist(case, pilot, prerequisites or {}, result)
    except Exception as exc:  # one failing case must not stop the run; it is reported as failed
        result.error = _error_text(exc)
        result.passed = False
        result.failure_reason = f"error: {result.error}"
        return result
    answerable = getattr(case, "answerable", True)
    result.passed, result.failure_reason = _verdict(result, answerable)
    return result


def evaluate_conversation(case: ConversationCase, pilot: CoursePilot, judge: Judge | None = None) -> list[CaseResult]:
    """Ask a conversation's turns in order, each after the earlier questions and CoursePilot's own answers."""
    history: list[dict[str, str]] = []
    results: list[CaseResult] = []
    for turn in case.turn_cases():
        turn.history = [HistoryTurn.model_validate(h) for h in history]
        result = evaluate_case(turn, pilot, judge)
        results.append(result)
        history += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": result.answer or "…"}]
    return results


def _result_ids(case: AnswerCase | FindCase | PlaylistCase | ConversationCase) -> list[str]:
    return [t.id for t in case.turn_cases()] if isinstance(case, ConversationCase) else [case.id]


def _run_answer(case: AnswerCase, pilot: CoursePilot, judge: Judge | None, result: CaseResult) -> None:
    history = [ChatTurn(role=t.role, content=t.content) for t in case.history]
    start = time.perf_counter()
    answer = pilot.ask(case.question, history=history, course=case.course, level=case.level)
    result.latency_ms = round((time.perf_counter() - start) * 1000, 2)
    retrieved = [e.chunk.location for e in answer.evidence]
    cited = [c.location for c in answer.citations]
    result.answer = answer.text
    result.refused = answer.refused
    result.cited = [{**_loc(loc), "relevant": m.matches_any(loc, case.expected)} for loc in cited]
    result.retrieved = [{**_loc(loc), "relevant": m.matches_any(loc, case.expected)} for loc in retrieved]
    scores: dict[str, MetricValue] = {}
    if case.answerable:
        exp = case.expected
        scores["hit@1"] = m.hit_at_k(retrieved, exp, 1)
        scores["hit@3"] = m.hit_at_k(retrieved, exp, 3)
        scores["hit@5"] = m.hit_at_k(retrieved, exp, 5)
        scores["recall@5"] = m.recall_at_k(retrieved, exp, 5)
        scores["mrr"] = m.mrr(retrieved, exp)
        scores["ndcg@10"] = m.ndcg_at_k(retrieved, exp, 10)
        scores["citation_precision"] = m.citation_precision(cited, exp)
        scores["citation_recall"] = m.citation_recall(cited, exp)
        scores["key_point_recall"] = m.key_point_recall(answer.text, case.key_points)
    scores["refusal_correct"] = m.refusal_correct(answer.refused, case.answerable)
    if judge is not None:
        scores.update(judge.score(answer))
    result.metrics = scores


def _run_find(case: FindCase, pilot: CoursePilot, result: CaseResult) -> None:
    start = time.perf_counter()
    found = pilot.find(case.question)
    result.latency_ms = round((time.perf_counter() - start) * 1000, 2)
    course_ids = [c.course_id for c in found.courses]
    result.refused = not course_ids
    result.answer = "\n".join(f"{i}. {c.title} ({c.course_id})" for i, c in enumerate(found.courses, start=1))
    result.cited = [_loc(loc) for c in found.courses for loc in c.sections[:1]]
    expected_courses = list(dict.fromkeys(e.course for e in case.expected))
    scores: dict[str, MetricValue] = {}
    if case.answerable:
        scores["find_top1"] = m.find_top_k(course_ids, expected_courses, 1)
        scores["find_top3"] = m.find_top_k(course_ids, expected_courses, 3)
        scores["find_mrr"] = m.find_mrr(course_ids, expected_courses)
    scores["refusal_correct"] = m.refusal_correct(result.refused, case.answerable)
    result.metrics = scores


def _run_playlist(
    case: PlaylistCase, pilot: CoursePilot, prerequisites: Mapping[str, Sequence[str]], result: CaseResult
) -> None:
    start = time.perf_counter()
    playlist = pilot.playlist(
        goal=case.goal, minutes=case.minutes, level=case.level, completed=list(case.completed) or None
    )
    result.latency_ms = round((time.perf_counter() - start) * 1000, 2)
    items: list[PlaylistItem] = list(playlist.items)
    result.answer = "\n".join(
        f"{i}. {it.item_id} ({it.minutes} min){' [prerequisite]' if it.is_prerequisite else ''}"
        for i, it in enumerate(items, start=1)
    )
    result.cited = [{"item_id": it.item_id, "course": it.course_id, "label": it.title} for it in items]
    budget = case.minutes if case.minutes is not None else playlist.budget_minutes
    result.metrics = {
        "prerequisite_violations": m.prerequisite_violations(items, prerequisites, case.completed),
        "must_include_coverage": m.must_include_coverage(items, case.must_include),
        "must_exclude_respected": m.must_exclude_respected(items, case.must_exclude),
        "order_satisfied": m.order_satisfied(items, case.order, case.completed),
        "budget_respected": m.budget_respected(items, budget),
    }


# ------------------------------------------------------------------------------------------ aggregate


def summarise_results(
    results: Sequence[CaseResult], answerable: Mapping[str, bool]
) -> tuple[dict[str, float | None], dict[str, int], dict[str, str]]:
    """(metric means, cases per metric, notes) over a run's results."""
    values: dict[str, list[float]] = {}
    for result in results:
        for name, metric in result.metrics.items():
            if metric.value is not None:
                values.setdefault(name, []).append(metric.value)
    out: dict[str, float | None] = {}
    cases: dict[str, int] = {}
    notes: dict[str, str] = {}
    for name in METRIC_NAMES:
        if name in values:
            out[name] = round(sum(values[name]) / len(values[name]), 4)
            cases[name] = len(values[name])
    outcomes = [
        (not answerable.get(r.id, True), r.refused) for r in results if r.type in ("answer", "find") and not r.error
    ]
    for name, metric in m.refusal_precision_recall(outcomes).items():
        out[name] = None if metric.value is None else round(metric.value, 4)
        cases[name] = len(outcomes)
        notes[name] = metric.reason
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    for name, metric in m.latency_percentiles(latencies).items():
        out[name] = None if metric.value is None else round(metric.value, 2)
        cases[name] = len(latencies)
        notes[name] = metric.reason
    if results:
        passed = sum(1 for r in results if r.passed)
        out["pass_rate"] = round(passed / len(results), 4)
        cases["pass_rate"] = len(results)
        notes["pass_rate"] = f"{passed}/{len(results)} cases passed"
    ordered = {name: out[name] for name in METRIC_NAMES if name in out}
    return ordered, {k: cases[k] for k in ordered if k in cases}, notes


def load_results(path: Path) -> list[CaseResult]:
    """Valid lines of results.jsonl; a line cut short by an interrupted run is dropped (and the file repaired)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    results: list[CaseResult] = []
    good: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            results.append(CaseResult.model_validate_json(line))
            good.append(line)
        except ValidationError:
            continue
    repaired = "".join(f"{line}\n" for line in good)
    if repaired != text:
        path.write_text(repaired, encoding="utf-8")
    return results


def run_eval(
    dataset_path: str | Path,
    pilot: CoursePilot,
    name: str,
    runs_dir: Path = Path("runs"),
    baseline: str | None = None,
    resume: bool = True,
    progress: Callable[[int, int], None] | None = None,
    judge: Judge | Literal[False] | None = None,
    split: str | None = None,
) -> RunSummary:
    """Run every case of a dataset through `pilot`, write runs/NAME/*, and return the summary.

    split: keep only the rows of a question set (CSV/JSONL, see evals/question_set.py) with this 'split'.

    resume: skip cases already in runs/NAME/results.jsonl when the dataset and config fingerprints match
    runs/NAME/meta.json (else start over). progress(done, total) is called after each case.
    judge: None = LLM judge when settings.chat.provider == 'openai'; False = off; or a Judge instance.
    """
    from evals.judge import make_judge

    if not _NAME_RE.match(name):
        raise CoursePilotError(
            f"Run name '{name}' is not a valid folder name.", "use letters, digits, '.', '_' and '-' (max 100)."
        )
    dataset_path = Path(dataset_path)
    dataset: Dataset = load_dataset(dataset_path, split)
    runs_dir = Path(runs_dir)
    baseline_data: dict[str, Any] | None = None
    baseline_path = runs_dir / baseline / "summary.json" if baseline else None
    if baseline_path is not None:
        baseline_data = load_summary(baseline_path)  # fail before spending time on the run

    if judge is None:
        judge = make_judge(pilot.settings)
    elif judge is False:
        judge = None
    config = run_config(pilot.settings, getattr(judge, "model_name", None) if judge is not None else None)

    run_dir = runs_dir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    results_path = run_dir / "results.jsonl"
    meta_path = run_dir / "meta.json"
    meta: dict[str, Any] = {
        "name": name,
        "dataset": str(dataset_path),
        "dataset_hash": dataset.fingerprint(),
        "config_hash": _hash(config),
    }
    previous: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            previous = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = {}
    can_resume = (
        resume
        and previous.get("dataset_hash") == meta["dataset_hash"]
        and previous.get("config_hash") == meta["config_hash"]
    )
    case_ids = {rid for c in dataset.cases for rid in _result_ids(c)}
    done_results: dict[str, CaseResult] = {}
    if can_resume:
        done_results = {r.id: r for r in load_results(results_path) if r.id in case_ids}
        meta["started_at"] = previous.get("started_at")
    else:
        results_path.write_text("", encoding="utf-8")
        meta["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for stale in ("summary.json", "report.md", "report.html"):
        (run_dir / stale).unlink(missing_ok=True)

    todo = [c for c in dataset.cases if any(rid not in done_results for rid in _result_ids(c))]
    total, done = len(dataset.cases), len(dataset.cases) - len(todo)
    resumed = done
    prerequisites: dict[str, list[str]] = {}
    if todo:
        if any(isinstance(c, PlaylistCase) for c in todo):
            prerequisites = {cid: list(course.prerequisites) for cid, course in pilot.catalogue().items()}
        warm_up = getattr(pilot, "warm_up", None)
        if callable(warm_up):
            warm_up()  # model load must not count as the first case's latency
    with results_path.open("a", encoding="utf-8") as out:
        for case in todo:
            if isinstance(case, ConversationCase):
                case_results = evaluate_conversation(case, pilot, judge)
            else:
                case_results = [evaluate_case(case, pilot, judge, prerequisites)]
            for result in case_results:
                out.write(result.model_dump_json() + "\n")
                done_results[result.id] = result
            out.flush()
            done += 1
            if progress is not None:
                progress(done, total)

    scored = [t for c in dataset.cases for t in (c.turn_cases() if isinstance(c, ConversationCase) else [c])]
    results = [done_results[c.id] for c in scored]
    answerable = {c.id: getattr(c, "answerable", True) for c in scored}
    values, cases, notes = summarise_results(results, answerable)
    by_type = {t: sum(1 for c in dataset.cases if c.type == t) for t in ("answer", "find", "playlist", "conversation")}
    counts = {
        "cases": total,
        **by_type,
        "turns": sum(len(c.turns) for c in dataset.cases if isinstance(c, ConversationCase)),
        "rows_left_out": len(dataset.problems),
        "passed": sum(1 for r in results if r.passed),
        "failed": sum(1 for r in results if not r.passed),
        "errors": sum(1 for r in results if r.error),
        "resumed": resumed,
    }
    summary = RunSummary(
        name=name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset={"path": str(dataset_path), "fingerprint": meta["dataset_hash"], "cases": total},
        config=config,
        counts=counts,
        metrics=values,
        metric_cases=cases,
        notes=notes,
        problems=list(dataset.problems),
        run_dir=str(run_dir),
        files={
            "results": str(results_path),
            "summary": str(run_dir / "summary.json"),
            "report_md": str(run_dir / "report.md"),
            "report_html": str(run_dir / "report.html"),
        },
    )
    if baseline_data is not None and baseline is not None and baseline_path is not None:
        summary.baseline = compare_with_baseline(values, baseline_data, baseline, baseline_path)
    write_reports(summary, results, run_dir)
    (run_dir / "summary.json").write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return summary
