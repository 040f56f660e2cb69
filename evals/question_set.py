"""Question sets an L&D team exports from a spreadsheet: one question per row, with where it is taught.

The columns are those of ``../shared/benchmarks/openstax-intro-business/questions.jsonl``, as JSONL or CSV:

| column | required | meaning |
| --- | --- | --- |
| ``q`` (or ``question``) | yes | the question |
| ``course`` | yes | gold course id |
| ``section`` | yes, unless ``slides`` is given | gold heading: any heading of a passage's trail matches |
| ``file`` | no | the module file, relative to the course folder; narrows the match |
| ``slides`` | no (PPTX) | ``[first, last]`` slide numbers (CSV: ``3-7``, ``3,7`` or ``3``); a slide matches on its number |
| ``id`` | no | a stable id (default ``row-N``) |
| ``split`` | no | e.g. ``train`` / ``test``; ``coursepilot eval run --split test`` keeps only those rows |

Other columns (``module_title``, ``chapter``, ``sits_in``...) are ignored. Gold follows the benchmark's rule: a
citation is a hit when course and file match and, for a PPTX with ``slides``, its slide is in the range,
otherwise ``section`` is one of its headings. A bad row is reported with its row number and column and left
out; every other row still runs.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from assistant.core.errors import CoursePilotError
from evals.dataset import AnswerCase, Dataset, ExpectedLocation

__all__ = ["QUESTION_COLUMNS", "RowError", "load_question_set", "row_to_case"]

QUESTION_COLUMNS = ("id", "q", "question", "course", "section", "file", "slides", "split")
_ID_BAD = re.compile(r"[^A-Za-z0-9._:-]+")


class RowError(ValueError):
    """A row that cannot become a case: which column is wrong and how to fix it."""

    def __init__(self, column: str, message: str, fix: str) -> None:
        super().__init__(f"column '{column}': {message}")
        self.column = column
        self.fix = fix


def _text(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise RowError(column, f"expected text, got {type(value).__name__}", f"write '{column}' as plain text.")
    return str(value).strip()


def _slides(value: Any) -> list[int] | None:
    """[first, last] from a JSON list or a spreadsheet cell ('3-7', '3,7', '[3, 7]', '3')."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    numbers: list[Any]
    if isinstance(value, list):
        numbers = value
    elif isinstance(value, int) and not isinstance(value, bool):
        numbers = [value]
    elif isinstance(value, str):
        numbers = [p for p in re.split(r"\s*(?:-|–|,|;|\.\.|to)\s*", value.strip().strip("[]()")) if p]
    else:
        numbers = [value]
    try:
        parsed = [int(n) for n in numbers]
    except (TypeError, ValueError):
        parsed = []
    if not 1 <= len(parsed) <= 2 or any(isinstance(n, bool) for n in numbers):
        raise RowError(
            "slides", f"'{value}' is not a slide range", "write the first and last slide, e.g. 3-7 or [3, 7]."
        )
    first, last = parsed[0], parsed[-1]
    if first < 1 or last < first:
        raise RowError("slides", f"'{value}' is not a range of 1-based slides", "write first <= last, both >= 1.")
    return [first, last]


def row_to_case(row: dict[str, Any], number: int) -> AnswerCase:
    """One question-set row as an answer case; raises RowError naming the column."""
    question = _text(row, "q") or _text(row, "question")
    if not question:
        raise RowError("q", "the question is empty", "write the question in the 'q' (or 'question') column.")
    course = _text(row, "course")
    if not course:
        raise RowError("course", "no gold course", "write the id of the course that teaches it (its course.yaml id).")
    section = _text(row, "section") or None
    module = _text(row, "file") or None
    slides = _slides(row.get("slides"))
    if module and module.lower().endswith(".pptx") and slides is not None:
        # A slide's heading trail names only the deck and the slide: PPTX gold is the slide range.
        section = None
    elif section is None:
        raise RowError(
            "section",
            "no gold section",
            "write the heading that teaches it, or 'slides' (first-last) for a PPTX 'file'.",
        )
    case_id = _ID_BAD.sub("-", _text(row, "id")).strip("-.:") or f"row-{number}"
    if not case_id[0].isalnum():
        case_id = f"row-{number}-{case_id}"
    pages = list(range(slides[0], slides[1] + 1)) if slides else None
    expected = ExpectedLocation(course=course, module=module, section=section, pages=pages)
    return AnswerCase(id=case_id, type="answer", question=question, expected=[expected])


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample.splitlines()[0] if sample else ",", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "q" not in header and "question" not in header:
        raise CoursePilotError(
            f"{path}: row 1 (header): no 'q' or 'question' column (found: {', '.join(header) or 'nothing'}).",
            "name the columns q, course, section, file, slides (see README, 'Scoring your own library').",
        )
    reader.fieldnames = header
    # Row numbers as a spreadsheet shows them: the header is row 1.
    return [(reader.line_num, {k: v for k, v in raw.items() if k is not None}) for raw in reader]


def _jsonl_rows(text: str) -> list[tuple[int, Any]]:
    rows: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append((number, exc))
    return rows


def load_question_set(path: Path, text: str | None = None, split: str | None = None) -> Dataset:
    """Read a .csv or .jsonl question set into answer cases; bad rows go to Dataset.problems."""
    if text is None:
        text = path.read_text(encoding="utf-8")
    text = text.lstrip("\ufeff")
    is_csv = path.suffix.lower() == ".csv"
    rows: list[tuple[int, Any]] = _csv_rows(text, path) if is_csv else _jsonl_rows(text)
    kind = "row" if is_csv else "line"
    cases: list[AnswerCase] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        where = f"{path}: {kind} {number}"
        if isinstance(row, json.JSONDecodeError):
            problems.append(f"{where}: invalid JSON ({row.msg}); write one JSON object per line.")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected an object with q, course and section; got {type(row).__name__}.")
            continue
        if split is not None and str(row.get("split") or "").strip() != split:
            continue
        try:
            case = row_to_case(row, number)
        except RowError as exc:
            problems.append(f"{where}: {exc}; {exc.fix}")
            continue
        except ValueError as exc:  # pydantic: e.g. a course id the location model rejects
            problems.append(f"{where}: {str(exc).splitlines()[0]}; correct the row.")
            continue
        if case.id in seen:
            problems.append(f"{where}: column 'id': '{case.id}' is already used by {kind} {seen[case.id]}; left out.")
            continue
        seen[case.id] = number
        cases.append(case)
    if not cases:
        reason = problems[0] if problems else f"{path}: no questions" + (f" with split '{split}'" if split else "")
        raise CoursePilotError(
            f"{reason} (and no usable row)." if problems else f"{reason}.",
            "write one question per row with the columns q, course, section (see README, 'Scoring your own library').",
        )
    dataset = Dataset(version=1, cases=list(cases))
    dataset.problems.extend(problems)
    return dataset
