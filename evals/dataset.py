"""The golden dataset: strict pydantic models, a loader for YAML and JSONL, and the exported JSON Schema.

A case is one of four types, told apart by its ``type`` field:

* ``answer``: a learner question; scored on retrieval, citations, key points and refusal.
* ``conversation``: several questions asked in turn; each turn is asked after the earlier questions and
  CoursePilot's own answers to them, and scored like an ``answer`` case (result id ``CASE.tN``).
* ``find``: "which course teaches X?"; scored on the ranked courses.
* ``playlist``: a learning goal; scored on the planned order, coverage and budget.

Unknown fields are rejected (a typo such as ``key_point:`` would otherwise silently score nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from assistant.core.errors import CoursePilotError
from assistant.core.types import Level

__all__ = [
    "AnswerCase",
    "Case",
    "ConversationCase",
    "ConversationTurn",
    "Dataset",
    "ExpectedLocation",
    "FindCase",
    "HistoryTurn",
    "PlaylistCase",
    "dataset_json_schema",
    "load_dataset",
    "parse_cases",
]

SCHEMA_PATH = Path(__file__).resolve().parent / "datasets" / "schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HistoryTurn(_Strict):
    """One earlier message of the conversation the question follows."""

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class ExpectedLocation(_Strict):
    """Where the answer is taught. Only `course` is required; each other field narrows the match."""

    course: str = Field(min_length=1, description="Course id (the course folder / course.yaml id).")
    module: str | None = Field(
        default=None, description="Module file path relative to the course folder, e.g. '02-formulas.pdf'."
    )
    section: str | None = Field(
        default=None,
        description="Exact heading text (case-insensitive): matches any heading of the passage's trail, "
        "or the module title.",
    )
    pages: list[int] | None = Field(
        default=None, description="1-based pages/slides; a passage with a page must be on one of them."
    )

    def label(self) -> str:
        parts = [self.course]
        if self.module:
            parts.append(self.module)
        if self.section:
            parts.append(self.section)
        text = " › ".join(parts)
        return f"{text} (p. {', '.join(map(str, self.pages))})" if self.pages else text


class _CaseBase(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", description="Unique case id.")
    notes: str | None = Field(default=None, description="Free text for people; ignored by the runner.")


class AnswerCase(_CaseBase):
    """A question for CoursePilot.ask()."""

    type: Literal["answer"]
    question: str = Field(min_length=1)
    answerable: bool = Field(default=True, description="False: the library does not teach this; expect a refusal.")
    history: list[HistoryTurn] = Field(default_factory=list, description="Earlier turns of the conversation.")
    course: str | None = Field(default=None, description="Optional course filter passed to ask().")
    level: Level | None = Field(default=None, description="Optional level filter passed to ask().")
    expected: list[ExpectedLocation] = Field(default_factory=list, description="Where the answer is taught.")
    key_points: list[str] = Field(
        default_factory=list, description="Phrases a correct answer contains (case-insensitive)."
    )

    @model_validator(mode="after")
    def _answerable_needs_expected(self) -> AnswerCase:
        if self.answerable and not self.expected:
            raise ValueError("an answerable case needs at least one 'expected' location")
        return self


class FindCase(_CaseBase):
    """A query for CoursePilot.find()."""

    type: Literal["find"]
    question: str = Field(min_length=1)
    answerable: bool = Field(default=True, description="False: no course teaches this; expect no courses.")
    expected: list[ExpectedLocation] = Field(default_factory=list, description="Courses that teach it.")

    @model_validator(mode="after")
    def _answerable_needs_expected(self) -> FindCase:
        if self.answerable and not self.expected:
            raise ValueError("an answerable case needs at least one 'expected' course")
        return self


class PlaylistCase(_CaseBase):
    """A goal for CoursePilot.playlist()."""

    type: Literal["playlist"]
    goal: str = Field(min_length=1)
    minutes: int | None = Field(default=None, gt=0, description="Time budget; the plan must fit in it.")
    level: Level | None = None
    completed: list[str] = Field(default_factory=list, description="Course ids or item ids already done.")
    must_include: list[str] = Field(default_factory=list, description="Course ids or 'course_id/module_path'.")
    must_exclude: list[str] = Field(default_factory=list, description="Course ids or 'course_id/module_path'.")
    order: list[tuple[str, str]] = Field(
        default_factory=list, description="[before, after] pairs of course ids or item ids."
    )


class ConversationTurn(_Strict):
    """One question of a conversation, with what its answer should cite and contain."""

    question: str = Field(min_length=1)
    answerable: bool = Field(default=True, description="False: the library does not teach this; expect a refusal.")
    expected: list[ExpectedLocation] = Field(default_factory=list, description="Where the answer is taught.")
    key_points: list[str] = Field(
        default_factory=list, description="Phrases a correct answer contains (case-insensitive)."
    )

    @model_validator(mode="after")
    def _answerable_needs_expected(self) -> ConversationTurn:
        if self.answerable and not self.expected:
            raise ValueError("an answerable turn needs at least one 'expected' location")
        return self


class ConversationCase(_CaseBase):
    """Questions asked one after another; each turn sees the earlier questions and CoursePilot's answers."""

    type: Literal["conversation"]
    turns: list[ConversationTurn] = Field(min_length=2, description="The questions, in the order they are asked.")
    course: str | None = Field(default=None, description="Optional course filter passed to ask().")

    def turn_cases(self) -> list[AnswerCase]:
        """Each turn as an answer case with id CASE.tN (its history is filled in while the conversation runs)."""
        return [
            AnswerCase(
                id=f"{self.id}.t{number}",
                type="answer",
                question=turn.question,
                answerable=turn.answerable,
                course=self.course,
                expected=turn.expected,
                key_points=turn.key_points,
                notes=self.notes,
            )
            for number, turn in enumerate(self.turns, start=1)
        ]


Case = Annotated[AnswerCase | FindCase | PlaylistCase | ConversationCase, Field(discriminator="type")]
AnyCase = AnswerCase | FindCase | PlaylistCase | ConversationCase


class Dataset(_Strict):
    """A versioned list of cases."""

    version: Literal[1] = 1
    cases: list[Case] = Field(default_factory=list)
    # Rows of a question set that could not be read (each names its row and column); the rest still run.
    _problems: list[str] = PrivateAttr(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self._problems

    @model_validator(mode="after")
    def _unique_ids(self) -> Dataset:
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"duplicate case id '{case.id}'")
            seen.add(case.id)
        return self

    def fingerprint(self) -> str:
        """sha256 of the cases' canonical JSON: stable across YAML formatting and comments."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------- errors

_TYPES = ("answer", "find", "playlist", "conversation")
_FIELDS = {
    "answer": sorted(AnswerCase.model_fields),
    "conversation": sorted(ConversationCase.model_fields),
    "find": sorted(FindCase.model_fields),
    "playlist": sorted(PlaylistCase.model_fields),
}


def _fix_for(error: dict[str, Any], case_type: str | None) -> str:
    kind = error.get("type", "")
    field = str(error["loc"][-1]) if error.get("loc") else ""
    if kind == "extra_forbidden":
        if case_type in _FIELDS:
            return f"remove or rename '{field}'; {case_type} cases accept: {', '.join(_FIELDS[case_type])}."
        return f"remove or rename '{field}'."
    if kind == "missing":
        return f"add '{field}:' to the case."
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"set 'type:' to one of: {', '.join(_TYPES)}."
    if kind == "literal_error":
        return f"use one of the allowed values for '{field}' (see evals/datasets/schema.json)."
    if kind.startswith("int") or kind.startswith("bool") or kind.startswith("string") or kind.startswith("list"):
        return f"give '{field}' a value of the right type (see evals/datasets/schema.json)."
    if "'expected'" in str(error.get("msg", "")):
        return "add an 'expected:' list with at least one {course: ...}, or set 'answerable: false'."
    return "correct the value (see evals/datasets/schema.json)."


def _describe(errors: Sequence[dict[str, Any]], where: str, case_type: str | None) -> CoursePilotError:
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    # Drop the discriminator tag pydantic inserts ('answer', 'find', ...) from the field path.
    if loc and loc[0] in _TYPES:
        loc = loc[1:]
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    kind = first.get("type", "")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc = ["type"]
    elif not loc and "'expected'" in msg:
        loc = ["expected"]
    field = ".".join(loc) or "(case)"
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    return CoursePilotError(f"{where}: field '{field}': {msg}{more}.", _fix_for(first, case_type))


def _case_where(path: Path, raw: Any, position: str) -> str:
    case_id = raw.get("id") if isinstance(raw, dict) else None
    return f"{path}: case '{case_id}' ({position})" if case_id else f"{path}: {position}"


def _parse_case(raw: Any, path: Path, position: str) -> AnyCase:
    from pydantic import TypeAdapter

    where = _case_where(path, raw, position)
    if not isinstance(raw, dict):
        raise CoursePilotError(
            f"{where}: a case must be a mapping, got {type(raw).__name__}.", "write 'key: value' fields."
        )
    case_type = raw.get("type")
    try:
        return TypeAdapter(Case).validate_python(raw)
    except ValidationError as exc:
        raise _describe(
            [dict(e) for e in exc.errors()], where, case_type if isinstance(case_type, str) else None
        ) from None


def parse_cases(raws: Sequence[tuple[Any, str]], path: Path, version: Any = 1) -> Dataset:
    """Validate (raw case, position label) pairs into a Dataset; errors name the file, case and field."""
    if version != 1:
        raise CoursePilotError(f"{path}: field 'version': unsupported version {version!r}.", "set 'version: 1'.")
    cases = [_parse_case(raw, path, position) for raw, position in raws]
    seen: dict[str, str] = {}
    for case, (_, position) in zip(cases, raws, strict=True):
        if case.id in seen:
            raise CoursePilotError(
                f"{path}: case '{case.id}' ({position}): field 'id': duplicate id, first used at {seen[case.id]}.",
                "give every case a unique id.",
            )
        seen[case.id] = position
    return Dataset(version=1, cases=cases)


def load_dataset(path: str | Path, split: str | None = None) -> Dataset:
    """Load a golden dataset from .yaml/.yml (``version`` + ``cases``) or .jsonl (one case per line), or a
    question set (.csv, or .jsonl rows with ``q`` and ``course``; see evals/question_set.py)."""
    path = Path(path)
    if not path.is_file():
        raise CoursePilotError(f"Dataset {path} does not exist.", "pass the path of a .yaml or .jsonl dataset.")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".csv" or (suffix == ".jsonl" and looks_like_question_set(text)):
        from evals.question_set import load_question_set

        return load_question_set(path, text, split)
    if split is not None:
        raise CoursePilotError(
            f"{path}: --split {split} applies only to question sets (.csv, or .jsonl rows with 'q' and 'course').",
            "leave out --split for a golden dataset.",
        )
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark is not None else ""
            raise CoursePilotError(f"{path}: invalid YAML{line}: {exc}.", "fix the YAML syntax.") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise CoursePilotError(
                f"{path}: the top level must be a mapping.", "write 'version: 1' and 'cases: [...]'."
            )
        unknown = sorted(set(data) - {"version", "cases"})
        if unknown:
            raise CoursePilotError(
                f"{path}: field '{unknown[0]}': unknown top-level field.", "use only 'version' and 'cases'."
            )
        cases = data.get("cases") or []
        if not isinstance(cases, list):
            raise CoursePilotError(f"{path}: field 'cases': must be a list.", "write each case as '- id: ...'.")
        return parse_cases([(raw, f"case #{i}") for i, raw in enumerate(cases, start=1)], path, data.get("version", 1))
    if suffix == ".jsonl":
        raws: list[tuple[Any, str]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                raws.append((json.loads(line), f"line {number}"))
            except json.JSONDecodeError as exc:
                raise CoursePilotError(
                    f"{path}: line {number}: invalid JSON ({exc.msg}).", "write one JSON object per line."
                ) from None
        return parse_cases(raws, path)
    raise CoursePilotError(
        f"{path}: unsupported dataset format '{suffix}'.",
        "use a .yaml, .yml or .jsonl dataset, or a .csv question set.",
    )


def looks_like_question_set(text: str) -> bool:
    """A JSONL file whose first row is a question-set row (``q``/``question`` and ``course``, no ``type``)."""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            return False
        return isinstance(row, dict) and "type" not in row and "course" in row and ("q" in row or "question" in row)
    return False


def dataset_json_schema() -> dict[str, Any]:
    """JSON Schema of the YAML/JSON dataset (what evals/datasets/schema.json holds)."""
    schema = Dataset.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "CoursePilot golden dataset"
    return schema


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    """Write dataset_json_schema() to `path` (default evals/datasets/schema.json)."""
    path.write_text(json.dumps(dataset_json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
