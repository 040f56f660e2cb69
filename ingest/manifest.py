"""course.yaml parsing and validation; inference when a course has no manifest."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.core.errors import ManifestError
from assistant.core.types import Course, Level, ModuleInfo

log = logging.getLogger(__name__)

MANIFEST_NAME = "course.yaml"
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class _ModuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="File name relative to the course folder.")
    title: str | None = None
    minutes: int = Field(default=30, ge=1, le=10_000)


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
}


def _title_from_name(name: str) -> str:
    stem = re.sub(r"^\d+[-_ ]*", "", Path(name).stem)
    return stem.replace("-", " ").replace("_", " ").strip().capitalize() or name


def _safe_module_path(folder: Path, manifest_path: Path, raw: str) -> str:
    candidate = (folder / raw).resolve()
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
    try:
        spec = _ManifestSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "(file)"
        top = field.split(".")[0]
        fix = _FIELD_FIXES.get(top, "see the course.yaml reference in the README")
        if err["type"] == "extra_forbidden":
            fix = "remove it, or check its spelling against the course.yaml reference in the README"
        if err["type"] == "missing":
            fix = f"add '{field}:' to the manifest"
        raise ManifestError(str(path), field, err["msg"] + ".", fix + ".") from exc
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
        title=spec.title,
        description=spec.description,
        level=spec.level,
        minutes=minutes,
        skills=spec.skills,
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
