"""Discovery: walk the library, keep the course folders and the regular files a loader can read, refuse the rest.

Every problem is one FileResult for the file or folder it concerns, and the walk goes on past it:

- a name that is not UTF-8 (an archive unzipped from Windows): `bad_name`, with the name shown with \\x escapes;
- a symlink loop: `symlink_loop`; a link whose target is missing: `missing`; a link out of the library:
  `outside_library`; a link to a folder: `link_to_folder` (links to folders are never followed);
- a FIFO, socket or device (reading one would block the ingest for ever): `not_a_file`;
- a course whose id another folder already uses: `duplicate_course_id`, naming both folders; the folder indexed under
  that id before (else the first by name) keeps it, unchanged.

A course folder that cannot be read as a whole (a broken manifest, a duplicate id, a link out of the library) is
"protected": what was indexed from it before stays in the index and the catalogue until it is fixed.
Names with bidirectional or control characters are indexed, with a warning.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from assistant.core.errors import ManifestError
from assistant.core.text import control_characters
from assistant.core.types import Course
from ingest.loaders import supported_suffixes
from ingest.loaders.captions import MEDIA_SUFFIXES
from ingest.manifest import MANIFEST_NAME, infer_course, load_manifest
from ingest.packages.course import is_package
from ingest.results import FileResult

log = logging.getLogger(__name__)

FIX_NAME = (
    "rename it with UTF-8 characters only (for a whole folder unzipped from Windows: `convmv -f cp1252 -t utf8 -r "
    "--notest FOLDER`, or unzip it again with `unzip -O cp1252`)."
)


@dataclass
class Discovered:
    courses: list[Course] = field(default_factory=list)
    files: list[tuple[Course, Path, str]] = field(default_factory=list)
    failures: list[FileResult] = field(default_factory=list)
    protected_courses: set[str] = field(default_factory=set)
    protected_prefixes: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def fail(self, path: str, reason: str, message: str, fix: str, course_id: str | None = None) -> None:
        self.failures.append(
            FileResult(path=path, course_id=course_id, status="failed", reason=reason, message=message, fix=fix)
        )


def display_name(name: str) -> str:
    """A file name as text that can be printed and stored: undecodable bytes shown as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class _Walker:
    def __init__(self, library: Path, found: Discovered) -> None:
        self.library = library
        self.root = library.resolve()
        self.found = found
        self.suffixes = supported_suffixes()

    def rel(self, path: Path) -> str:
        return display_name(path.relative_to(self.library).as_posix())

    def check_name(self, path: Path, is_dir: bool) -> bool:
        """False (and a failure) for a name that is not UTF-8; a warning for invisible or bidi characters."""
        rel = self.rel(path)
        if not _utf8(path.name):
            what = "folder" if is_dir else "file"
            self.found.fail(
                rel,
                "bad_name",
                f"{rel}: the {what} name is not valid UTF-8 (bytes of another encoding, often cp1252); "
                f"it was skipped{' with everything in it' if is_dir else ''}.",
                FIX_NAME,
            )
            return False
        hidden = control_characters(path.name)
        if hidden:
            self.found.warnings.append(
                f"{rel}: the name contains invisible or direction-changing characters ({', '.join(hidden)}), so it "
                "may not read as what it is; rename it."
            )
        return True

    def target(self, path: Path, rel: str) -> os.stat_result | None:
        """The stat of what `path` is (following a link), or None after recording why it cannot be used."""
        if not path.is_symlink():
            return path.lstat()
        try:
            resolved = path.resolve(strict=True)
        except (RuntimeError, OSError) as exc:
            if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
                self.found.fail(
                    rel,
                    "symlink_loop",
                    f"{rel}: is a symbolic link that loops back on itself; it was skipped.",
                    "delete the link, or point it at a real file in the course folder.",
                )
            else:
                self.found.fail(
                    rel,
                    "missing",
                    f"{rel}: is a link to '{display_name(os.readlink(path))}', which does not exist.",
                    "delete the link, or copy the file it meant into the course folder.",
                )
            return None
        if not resolved.is_relative_to(self.root):
            self.found.fail(
                rel,
                "outside_library",
                f"{rel}: is a link to a file outside the library; it was not read.",
                "copy the file into the course folder instead of linking to it.",
            )
            return None
        return resolved.stat()

    def files(self, folder: Path) -> list[Path]:
        """The readable module files under a course folder; every other entry is a failure or skipped."""
        out: list[Path] = []
        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                entries = sorted(os.scandir(current), key=lambda e: e.name)
            except OSError as exc:
                rel = self.rel(current)
                self.found.protected_prefixes.add(rel + "/")
                self.found.fail(
                    rel, "unreadable", f"{rel}: the folder cannot be read ({exc.strerror}).", "check its permissions."
                )
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.name.startswith("."):
                    continue
                rel = self.rel(path)
                try:
                    st = self.target(path, rel)
                except OSError as exc:
                    self.found.fail(
                        rel, "unreadable", f"{rel}: cannot be read ({exc.strerror}).", "check its permissions."
                    )
                    continue
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if path.is_symlink():
                        self.found.fail(
                            rel,
                            "link_to_folder",
                            f"{rel}: is a link to a folder; links to folders are not followed.",
                            "move or copy that folder's files into the course folder instead of linking to it.",
                        )
                    elif self.check_name(path, is_dir=True):
                        stack.append(path)
                    else:
                        self.found.protected_prefixes.add(rel + "/")
                    continue
                if not self.check_name(path, is_dir=False):
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self.found.fail(
                        rel,
                        "not_a_file",
                        f"{rel}: is {_kind(st.st_mode)}, not a regular file; it was skipped.",
                        "replace it with the file itself, or remove it from the course folder.",
                    )
                    continue
                if path.name == MANIFEST_NAME or path.suffix.lower() in MEDIA_SUFFIXES:
                    continue  # media are companions of their captions, not modules
                if path.suffix.lower() not in self.suffixes:
                    self.found.fail(
                        rel,
                        "unsupported",
                        f"{rel}: '{path.suffix or '(no suffix)'}' files are not supported.",
                        f"convert it to one of {', '.join(sorted(self.suffixes))}, or move it out of the library.",
                    )
                    continue
                out.append(path)
        return sorted(out)

    def course(self, folder: Path) -> tuple[Course, list[Path]] | None:
        """The course of one folder and its files in module order, or None after recording why not."""
        found, rel_folder = self.found, folder.name
        module_files = self.files(folder)
        if not (folder / MANIFEST_NAME).exists():
            course = infer_course(folder, module_files)
            found.warnings.append(
                f"{rel_folder}: no {MANIFEST_NAME}; inferred id '{course.id}', title '{course.title}', "
                f"level beginner, {len(course.modules)} module(s). Add a {MANIFEST_NAME} to set them."
            )
            return course, module_files
        try:
            course = load_manifest(folder)
        except ManifestError as exc:
            found.protected_prefixes.add(rel_folder + "/")
            found.fail(f"{rel_folder}/{MANIFEST_NAME}", "invalid_manifest", exc.message, exc.fix or "")
            return None
        listed = {m.path for m in course.modules}
        already = {f.path for f in found.failures}
        for module in course.modules:
            rel = f"{rel_folder}/{module.path}"
            target = folder / module.path
            if rel in already:
                continue  # the walk has said what is wrong with it
            if target.is_dir():
                found.fail(
                    rel,
                    "not_a_file",
                    f"{rel_folder}/{MANIFEST_NAME} lists '{module.path}', which is a folder, not a file.",
                    "list the files inside it one by one under 'modules:'.",
                    course.id,
                )
            elif not target.exists():
                found.fail(
                    rel,
                    "missing",
                    f"{rel_folder}/{MANIFEST_NAME} lists '{module.path}', which does not exist.",
                    "add the file or remove it from the manifest's modules.",
                    course.id,
                )
        extra = [p for p in module_files if p.relative_to(folder).as_posix() not in listed]
        if extra and course.modules:
            found.warnings.append(
                f"{rel_folder}: {len(extra)} file(s) not listed in {MANIFEST_NAME} were indexed after the "
                "listed modules; add them under 'modules:' to set their order and minutes."
            )
            course.modules.extend(infer_course(folder, extra).modules)
        elif not course.modules:
            course.modules = infer_course(folder, module_files).modules
        order = {m.path: i for i, m in enumerate(course.modules)}
        return course, sorted(module_files, key=lambda p: order.get(p.relative_to(folder).as_posix(), 10**6))


def _course_folders(walker: _Walker, library: Path, skip: Path | None) -> list[Path]:
    found = walker.found
    folders: list[Path] = []
    for entry in sorted(os.scandir(library), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue
        try:
            is_dir = path.is_dir()  # False for a symlink loop or a dangling link, as before
        except OSError:
            is_dir = False
        if not is_dir:
            continue
        if skip is not None and (path.resolve() == skip or skip.is_relative_to(path.resolve())):
            continue  # the index itself lives here
        if is_package(path):
            continue  # an unpacked SCORM package: read by ingest.packages
        rel = display_name(entry.name)
        if not walker.check_name(path, is_dir=True):
            continue
        if not path.resolve().is_relative_to(walker.root):
            # Like a bad file: what was indexed from this course before stays until the folder is back.
            found.protected_prefixes.add(rel + "/")
            found.fail(
                rel,
                "outside_library",
                f"{rel}: is a link to a folder outside the library; it was not read, and what was indexed from it "
                "before is kept.",
                "copy the course into the library instead of linking to it.",
            )
            continue
        folders.append(path)
    return folders


def discover(library: Path, exclude: Path | None = None, indexed: Mapping[str, Course] | None = None) -> Discovered:
    """Course folders, their manifests and module files. `indexed` (the catalogue so far) decides which of two folders
    claiming one course id keeps it: the folder that already had it, else the first by name."""
    found = Discovered()
    walker = _Walker(library, found)
    skip = exclude.resolve() if exclude is not None else None
    claimed: list[tuple[Course, list[Path]]] = []
    for folder in _course_folders(walker, library, skip):
        try:
            result = walker.course(folder)
        except Exception as exc:  # one course never stops the batch: say which, keep what it had
            log.exception("discovering %s failed", folder)
            rel = display_name(folder.name)
            found.protected_prefixes.add(rel + "/")
            found.fail(
                rel,
                "unreadable",
                f"{rel}: the course folder could not be read ({type(exc).__name__}: {exc}).",
                "check the folder's files and course.yaml, then re-ingest; what was indexed from it before is kept.",
            )
            continue
        if result is not None:
            claimed.append(result)
    owners: dict[str, str] = {}
    for course, _ in claimed:
        previous = indexed.get(course.id) if indexed else None
        if previous is not None and previous.folder == course.folder:
            owners[course.id] = course.folder
        else:
            owners.setdefault(course.id, course.folder or "")
    for course, files in claimed:
        owner = owners[course.id]
        if course.folder != owner:
            name = course.folder or ""
            where = f"{name}/{MANIFEST_NAME}" if (library / name / MANIFEST_NAME).exists() else name
            found.protected_prefixes.add(name + "/")
            found.fail(
                where,
                "duplicate_course_id",
                f"{where}: the course id '{course.id}' is already used by the folder '{owner}'; this folder was not "
                f"indexed, and '{owner}' keeps the id.",
                f"give one of the two courses another id in its {MANIFEST_NAME} (e.g. 'id: {course.id}-2'), "
                "then re-ingest.",
            )
            continue
        found.courses.append(course)
        for path in files:
            found.files.append((course, path, walker.rel(path)))
    return found
