"""The report as JSON and as one CSV per table."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from assistant.apps.insights.models import InsightsReport


def write_json(report: InsightsReport, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return path


# C0 and C1 control characters and DEL; tab and newline stay (a quoted CSV cell may hold them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """One CSV cell as a spreadsheet will read it: text from learners or courses has its control characters
    stripped, and text that would start a formula gets a leading single quote (OWASP), so `=HYPERLINK(...)`
    stays text. Numbers and booleans are written as they are; None is an empty cell."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub("", value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])
    return path


def write_csv(report: InsightsReport, folder: Path) -> dict[str, Path]:
    """One CSV per table: content_gaps, gap_questions, demand_skills, demand_courses, demand_goals,
    path_completion, feedback, reingest_impact. Returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    gaps = report.content_gaps.clusters
    demand = report.demand
    out = {
        "content_gaps": _csv(
            folder / "content_gaps.csv",
            [
                "rank",
                "label",
                "questions",
                "learners",
                "refused",
                "low_confidence",
                "nearest_section",
                "nearest_similarity",
                "examples",
            ],
            (
                [
                    c.rank,
                    c.label,
                    c.count,
                    c.learners,
                    c.refused,
                    c.low_confidence,
                    c.nearest.label if c.nearest else "",
                    c.nearest.similarity if c.nearest else "",
                    " | ".join(c.examples),
                ]
                for c in gaps
            ),
        ),
        "gap_questions": _csv(
            folder / "gap_questions.csv",
            [
                "cluster_rank",
                "cluster_label",
                "question_id",
                "learner_id",
                "refused",
                "top_score",
                "created_at",
                "question",
            ],
            (
                [c.rank, c.label, q.id, q.learner_id, q.refused, q.top_score, q.created_at.isoformat(), q.question]
                for c in gaps
                for q in c.questions
            ),
        ),
        "demand_skills": _csv(
            folder / "demand_skills.csv",
            ["skill", "courses", "questions", "learners"],
            ([s.skill, " ".join(s.courses), s.questions, s.learners] for s in demand.skills),
        ),
        "demand_courses": _csv(
            folder / "demand_courses.csv",
            ["course_id", "title", "questions", "learners", "citations"],
            ([c.course_id, c.title, c.questions, c.learners, c.citations] for c in demand.courses),
        ),
        "demand_goals": _csv(
            folder / "demand_goals.csv",
            ["goal", "playlists", "learners"],
            ([g.goal, g.playlists, g.learners] for g in demand.goals),
        ),
        "path_completion": _csv(
            folder / "path_completion.csv",
            ["playlist_id", "learner_id", "goal", "created_at", "steps", "done", "completion", "reached"],
            (
                [
                    p.playlist_id,
                    p.learner_id,
                    p.goal,
                    p.created_at.isoformat(),
                    p.steps,
                    p.done,
                    p.completion,
                    p.reached,
                ]
                for p in demand.path_completion.paths
            ),
        ),
        "feedback": _csv(
            folder / "feedback.csv",
            ["id", "learner_id", "created_at", "question", "answer", "refused", "citations", "comment"],
            (
                [
                    f.id,
                    f.learner_id,
                    f.created_at.isoformat(),
                    f.question,
                    f.answer,
                    f.refused,
                    " | ".join(f.citations),
                    f.comment,
                ]
                for f in report.feedback.down
            ),
        ),
        "reingest_impact": _csv(
            folder / "reingest_impact.csv",
            ["source", "ref", "learner_id", "status", "course_id", "module", "section", "context", "note"],
            (
                [i.source, i.ref, i.learner_id, i.status, i.course_id, i.module, i.section, i.context, i.note]
                for i in report.reingest_impact.flagged
            ),
        ),
    }
    return out
