"""course.yaml parsing and validation; inference when a course has no manifest."""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.core.errors import ManifestError
from assistant.core.text import normalize_unicode
from assistant.core.types import Course, Level, ModuleInfo

log = logging.getLogger(__name__)

MANIFEST_NAME = "course.yaml"
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _whole_minutes(value: Any) -> Any:
    # YAML reads `minutes: true` as a bool, which pydantic would take as 1 minute.
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number of minutes, not {str(value).lower()}")
    return value


class _ModuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="File name relative to the course folder.")
    title: str | None = None
    minutes: int = Field(default=30, ge=1, le=10_000)

    _check_minutes = field_validator("minutes", mode="before")(_whole_minutes)

    @field_validator("path")
    @classmethod
    def _printable_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a file, e.g. '01-intro.md'")
        bad = sorted({f"U+{ord(ch):04X}" for ch in value if ord(ch) < 32 or ord(ch) == 127})
        if bad:
            raise ValueError(f"contains control characters ({', '.join(bad)}), which no file name can hold")
        return value


class _ManifestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    description: str = ""
    level: Level = "beginner"
    minutes: int | None = Field(default=None, ge=1, le=100_000)
    skills: list[str] = Field(default_factory=list)
    prerequisites: list[str] = Field(default_factory=list)
    modules: list[_ModuleSpec] = Field(default_factory=list)

    _check_minutes = field_validator("minutes", mode="before")(_whole_minutes)

    @field_validator("title")
    @classmethod
    def _title_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _modules_listed_once(self) -> _ManifestSpec:
        seen: set[str] = set()
        for module in self.modules:
            key = re.sub(r"^(\./)+", "", module.path.strip())
            if key in seen:
                raise ValueError(f"module '{module.path}' is listed twice")
            seen.add(key)
        return self

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, value: str) -> str:
        if not _ID_PATTERN.match(value):
            raise ValueError("must be lowercase letters, digits and dashes, e.g. 'excel-basics'")
        return value


_FIELD_FIXES = {
    "level": "use one of: beginner, intermediate, advanced",
    "id": "use a lowercase slug such as 'excel-basics'",
    "minutes": "use a whole number of minutes, e.g. 45",
    "modules": "list modules as '- path: file.pdf' with optional 'title:' and 'minutes:'",
    "prerequisites": "list course ids, e.g. ['excel-basics']",
    "skills": "list short skill phrases, e.g. ['pivot tables']",
    "title": "give the course a title, e.g. 'title: Excel Basics'",
}
# Words authors use for a known key, which string similarity would not find ('file' is closer to 'title').
_SYNONYMS = {
    "file": "path",
    "filename": "path",
    "src": "path",
    "name": "title",
    "duration": "minutes",
    "time": "minutes",
    "length": "minutes",
    "prereqs": "prerequisites",
    "requires": "prerequisites",
    "tags": "skills",
    "topics": "skills",
    "difficulty": "level",
    "summary": "description",
    "lessons": "modules",
    "files": "modules",
}


def _nearest_key(key: str, known: list[str]) -> str | None:
    lowered = key.strip().lower()
    if lowered in _SYNONYMS and _SYNONYMS[lowered] in known:
        return _SYNONYMS[lowered]
    close = difflib.get_close_matches(lowered, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _check_keys(path: Path, raw: dict[Any, Any]) -> None:
    """Refuse unknown keys first, suggesting the nearest known one (else a `file:` says 'modules.path' is missing)."""
    places: list[tuple[str, dict[Any, Any], type[BaseModel]]] = [("", raw, _ManifestSpec)]
    modules = raw.get("modules")
    if isinstance(modules, list):
        places += [(f"modules[{i + 1}].", m, _ModuleSpec) for i, m in enumerate(modules) if isinstance(m, dict)]
    for prefix, mapping, model in places:
        known = list(model.model_fields)
        for key in mapping:
            if key in known:
                continue
            name = str(key)
            guess = _nearest_key(name, [k for k in known if k not in mapping]) or _nearest_key(name, known)
            hint = f"did you mean `{guess}`? " if guess else ""
            raise ManifestError(
                str(path),
                prefix + name,
                f"unknown key '{name}'.",
                f"{hint}The keys here are: {', '.join(known)} (see the course.yaml reference in the README).",
            )


def _title_from_name(name: str) -> str:
    stem = re.sub(r"^\d+[-_ ]*", "", Path(name).stem)
    return stem.replace("-", " ").replace("_", " ").strip().capitalize() or name


def _safe_module_path(folder: Path, manifest_path: Path, raw: str) -> str:
    try:
        candidate = (folder / raw).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a link loop, a name too long for the file system
        raise ManifestError(
            str(manifest_path), "modules.path", f"'{raw}' cannot be resolved ({exc}).", "list a real file's name."
        ) from exc
    if not candidate.is_relative_to(folder.resolve()):
        raise ManifestError(
            str(manifest_path),
            "modules.path",
            f"'{raw}' points outside the course folder.",
            "list only files inside the course folder, e.g. '01-intro.md'.",
        )
    return candidate.relative_to(folder.resolve()).as_posix()


def load_manifest(folder: Path) -> Course:
    """Read and validate `folder/course.yaml`; raises ManifestError naming the field and the fix."""
    path = folder / MANIFEST_NAME
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except RecursionError as exc:
        raise ManifestError(
            str(path), "(file)", "is nested too deeply to read.", "keep lists and mappings a few levels deep."
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(
            str(path), "(file)", f"is not valid YAML{where}.", "fix the YAML syntax (indentation, colons)."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(str(path), "(file)", "is not UTF-8 text.", "save it as UTF-8.") from exc
    if not isinstance(raw, dict):
        raise ManifestError(
            str(path),
            "(file)",
            "must be a mapping of fields.",
            "start with 'id: my-course' and 'title: ...'.",
        )
    _check_keys(path, raw)
    try:
        spec = _ManifestSpec.model_validate(raw)
    except RecursionError as exc:
        raise ManifestError(
            str(path), "(file)", "is nested too deeply to read.", "keep lists and mappings a few levels deep."
        ) from exc
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "(file)"
        top = field.split(".")[0]
        fix = _FIELD_FIXES.get(top, "see the course.yaml reference in the README")
        if err["type"] == "extra_forbidden":
            fix = "remove it, or check its spelling against the course.yaml reference in the README"
        if err["type"] == "missing":
            fix = f"add '{field}:' to the manifest"
        message = err["msg"].removeprefix("Value error, ")
        if field == "(file)" and "listed twice" in message:
            field, fix = "modules.path", "list each file once under 'modules:'"
        elif "control characters" in message:
            fix = "remove them: list the file's real name, e.g. '01-intro.md'"
        raise ManifestError(str(path), field, message + ".", fix + ".") from exc
    modules = [
        ModuleInfo(
            path=_safe_module_path(folder, path, m.path),
            title=m.title or _title_from_name(m.path),
            minutes=m.minutes,
        )
        for m in spec.modules
    ]
    minutes = spec.minutes or sum(m.minutes for m in modules) or 60
    return Course(
        id=spec.id,
        title=normalize_unicode(spec.title),
        description=normalize_unicode(spec.description),
        level=spec.level,
        minutes=minutes,
        skills=[normalize_unicode(s) for s in spec.skills],
        prerequisites=spec.prerequisites,
        modules=modules,
        folder=folder.name,
    )


def infer_course(folder: Path, module_files: list[Path]) -> Course:
    """Build a Course for a folder with no course.yaml, from its name and files."""
    slug = re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-") or "course"
    modules = [ModuleInfo(path=p.relative_to(folder).as_posix(), title=_title_from_name(p.name)) for p in module_files]
    return Course(
        id=slug,
        title=_title_from_name(folder.name),
        modules=modules,
        minutes=sum(m.minutes for m in modules) or 60,
        folder=folder.name,
        inferred=True,
    )
