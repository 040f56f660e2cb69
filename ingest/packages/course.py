"""A SCORM package as one course: its Course (manifest + LOM + course.yaml) and one document per item.

Documents: every item with a resource gives one document (module = the resource's launch file), with the
item titles between the top-level item (the module) and it as the heading trail; every caption file of the
resource (``.vtt``/``.srt`` in its file list or beside its launch file) gives one more document (module = the
caption file) whose passages carry their start time. Items whose content cannot be read become failures with
the reason and fix; the rest of the package is still indexed.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.core.errors import LoaderError
from assistant.core.types import Course, Level, LoadedDocument, ModuleInfo, Section
from ingest.loaders import LoaderLimits, clean_inline, prettify_stem
from ingest.loaders.captions import CAPTION_SUFFIXES, caption_sections, parse_captions
from ingest.packages.archive import FIX_REEXPORT, PackageArchive, PackageLimits
from ingest.packages.scorm import MANIFEST, Item, Manifest, parse_manifest
from ingest.packages.tools import extract_resource

OVERRIDE = "course.yaml"
# Found while reading an item, these mean the archive itself is hostile: the whole package is refused.
HOSTILE_REASONS = frozenset({"zip_bomb", "unsafe_path", "symlink", "outside_package", "xml_entities"})
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class PackageOverride(BaseModel):
    """What a course.yaml beside (or inside) a package may set; anything else is an error."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    title: str | None = None
    description: str | None = None
    level: Level | None = None
    minutes: int | None = Field(default=None, ge=1, le=100_000)
    skills: list[str] = Field(default_factory=list)
    prerequisites: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG.match(value):
            raise ValueError("must be lowercase letters, digits and dashes, e.g. 'safe-lifting'")
        return value


@dataclass
class PackageDoc:
    module: str
    module_title: str
    doc: LoadedDocument


@dataclass
class PackageFailure:
    module: str
    reason: str
    message: str
    fix: str


@dataclass
class PackageContent:
    course: Course
    version: str
    docs: list[PackageDoc] = field(default_factory=list)
    failures: list[PackageFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_package(path: Path) -> bool:
    """A top-level library entry that is a package: any .zip, or a folder with imsmanifest.xml at its root."""
    if path.name.startswith("."):
        return False
    if path.is_dir() and not path.is_symlink():
        return (path / MANIFEST).is_file()
    return path.is_file() and path.suffix.lower() == ".zip"


def find_packages(library: Path) -> list[Path]:
    return sorted(p for p in library.iterdir() if is_package(p))


def override_path(package: Path) -> Path:
    return package / OVERRIDE if package.is_dir() else package.with_name(package.stem + ".course.yaml")


def signature(package: Path) -> tuple[int, int]:
    """(size, mtime_ns) that change when the package or its course.yaml change; read without unzipping."""
    stats = [package.stat()] if package.is_file() else [p.lstat() for p in package.rglob("*") if not p.is_dir()]
    override = override_path(package)
    if package.is_file() and override.is_file():
        stats.append(override.stat())
    size = sum(s.st_size for s in stats)
    mtime = max((s.st_mtime_ns for s in stats), default=0)
    return size, mtime + len(stats)


def _read_override(package: Path) -> PackageOverride:
    path = override_path(package)
    if not path.is_file():
        return PackageOverride()
    where = path.name
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError("must be a mapping of fields")
        return PackageOverride.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise LoaderError(
            where,
            "invalid_manifest",
            f"field '{name}': {err['msg']}.",
            "a package's course.yaml may set id, title, description, level, minutes, skills, prerequisites.",
        ) from exc
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        raise LoaderError(where, "invalid_manifest", f"is not valid YAML ({exc}).", "fix the YAML syntax.") from exc


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "package"


def _walk(items: list[Item], trail: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Item]]:
    """(titles from the top-level item down to it, item) for every item, in order."""
    out: list[tuple[tuple[str, ...], Item]] = []
    for item in items:
        path = (*trail, clean_inline(item.title))
        out.append((path, item))
        out.extend(_walk(item.children, path))
    return out


def _trail(outer: tuple[str, ...], inner: tuple[str, ...]) -> tuple[str, ...]:
    """Item titles then the page's own headings, without a heading repeated right after itself."""
    out: list[str] = []
    for title in (*outer, *inner):
        if title and (not out or out[-1].strip().lower() != title.strip().lower()):
            out.append(title)
    return tuple(out)


def _captions(archive: PackageArchive, manifest_item: Item) -> list[str]:
    resource = manifest_item.resource
    if resource is None:
        return []
    folder = posixpath.dirname(resource.href or "")
    near = [n for n in archive.names() if posixpath.dirname(n) == folder] if resource.href else []
    names = [*resource.files, *near]
    return sorted({n for n in names if posixpath.splitext(n)[1].lower() in CAPTION_SUFFIXES and archive.exists(n)})


def read_package(package: Path, limits: LoaderLimits, package_limits: PackageLimits | None = None) -> PackageContent:
    """Open, check and read a package; raises LoaderError when the package as a whole is refused."""
    override = _read_override(package)
    with PackageArchive(package, package_limits) as archive:
        if not archive.exists(MANIFEST):
            raise LoaderError(
                package.name,
                "not_a_package",
                f"has no {MANIFEST} at its root, so it is not a SCORM package.",
                "export the course as SCORM 1.2 or 2004 (the zip must have imsmanifest.xml at its top level).",
            )
        manifest = parse_manifest(archive.read(MANIFEST), package.name, archive.read)
        content = _content(package, archive, manifest, limits)
    course = content.course
    update = override.model_dump(exclude_none=True, exclude_defaults=True)
    content.course = course.model_copy(update=update)
    return content


def _content(package: Path, archive: PackageArchive, manifest: Manifest, limits: LoaderLimits) -> PackageContent:
    meta = manifest.metadata
    title = clean_inline(manifest.title or meta.title or "") or prettify_stem(Path(package.stem))
    course = Course(
        id=_slugify(package.stem if package.is_file() else package.name),
        title=title,
        description=meta.description or "",
        skills=meta.keywords,
        folder=package.name,
    )
    content = PackageContent(course=course, version=manifest.version)
    used: set[str] = set()
    for trail, item in _walk(manifest.items):
        resource = item.resource
        if resource is None:
            continue
        module_title = trail[0]
        where = resource.href or resource.identifier
        module = where if where not in used else f"{where}#{item.identifier}"
        if resource.external:
            content.failures.append(
                PackageFailure(
                    module,
                    "external_resource",
                    f"'{item.title}' is hosted outside the package ({resource.external}); it was not fetched.",
                    "include the content in the package, or add it to the library as a file.",
                )
            )
            continue
        used.add(module)
        heading = trail[1:]
        captions = _captions(archive, item)
        try:
            extracted = extract_resource(archive, resource, limits)
            sections = [
                Section(heading_path=_trail(heading, s.heading_path), text=s.text, page=s.page, start=s.start)
                for s in extracted.sections
            ]
            doc = LoadedDocument(
                path=module, kind=extracted.kind, title=item.title, sections=sections, warnings=extracted.warnings
            )
            content.docs.append(PackageDoc(module, module_title, doc))
        except LoaderError as exc:
            if exc.reason in HOSTILE_REASONS:
                raise LoaderError(package.name, exc.reason, exc.message, exc.fix or "") from exc
            if not (exc.reason == "no_text" and captions):  # a video page: its captions are the content
                message = f"'{item.title}': {exc.message}"
                content.failures.append(PackageFailure(module, exc.reason, message, exc.fix or ""))
        except Exception as exc:  # a tool's data file we could not make sense of: report the item, go on
            message = f"'{item.title}': its content could not be parsed ({type(exc).__name__}: {exc})."
            content.failures.append(PackageFailure(module, "corrupt", message, FIX_REEXPORT))
        for name in captions:
            if name in used:
                continue
            used.add(name)
            try:
                caption_title, cues, warnings = parse_captions(
                    name, posixpath.splitext(name)[1].lower(), archive.read(name)
                )
            except LoaderError as exc:
                if exc.reason in HOSTILE_REASONS:
                    raise LoaderError(package.name, exc.reason, exc.message, exc.fix or "") from exc
                content.failures.append(PackageFailure(name, exc.reason, exc.message, exc.fix or ""))
                continue
            video = clean_inline(caption_title or "") or item.title
            sections = caption_sections(cues, (*heading, video) if heading[-1:] != (video,) else heading)
            if not sections:
                content.failures.append(
                    PackageFailure(name, "no_text", "the caption file has no cues.", "export the captions again.")
                )
                continue
            doc = LoadedDocument(path=name, kind="captions", title=video, sections=sections, warnings=warnings)
            content.docs.append(PackageDoc(name, module_title, doc))
    if not content.docs and not content.failures:
        raise LoaderError(package.name, "no_text", "the manifest lists no content items.", FIX_REEXPORT)
    minutes = meta.minutes or 30 * max(len({d.module_title for d in content.docs}), 1)
    per_module = max(1, minutes // max(len(content.docs), 1))
    content.course.minutes = minutes
    content.course.modules = [ModuleInfo(path=d.module, title=d.module_title, minutes=per_module) for d in content.docs]
    return content


def document_hash(course: Course, doc: LoadedDocument) -> str:
    """What a package document's chunks depend on: the course fields and the extracted text."""
    digest = hashlib.sha1(course.model_dump_json(include={"id", "title", "level", "modules"}).encode())
    digest.update(doc.model_dump_json(include={"kind", "title", "sections"}).encode())
    return digest.hexdigest()
