"""Document loaders: turn one course file into a LoadedDocument of heading-scoped sections.

Public API:

- ``load_document(path, limits=None)`` dispatches on the lowercase suffix after common checks
  (missing, empty, too large) and returns a :class:`~assistant.core.types.LoadedDocument`.
- ``supported_suffixes()`` lists the suffixes that have a loader.
- ``register(*suffixes)`` registers a loader ``fn(path, limits) -> LoadedDocument``.
- ``LoaderLimits`` bounds what a loader accepts.

The format modules (pdf, docx, pptx, markdown, html, text, captions, h5p) are imported on first use, and
they import their parsing libraries inside the loader functions, so importing this package
is cheap. The helpers below (SectionBuilder, text normalisation, decoding, zip checks,
table rendering) are shared by the format modules.
"""

from __future__ import annotations

import importlib
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from assistant.core.errors import LoaderError
from assistant.core.text import TABLE_CELL_SEPARATOR, normalize_unicode
from assistant.core.types import LoadedDocument, Section

__all__ = [
    "LoaderError",
    "LoaderFn",
    "LoaderLimits",
    "SectionBuilder",
    "load_document",
    "register",
    "supported_suffixes",
]

MB = 1024 * 1024


class LoaderLimits(BaseModel):
    """Bounds a loader enforces; anything beyond them raises LoaderError instead of eating memory."""

    model_config = ConfigDict(frozen=True)

    max_file_bytes: int = Field(default=50 * MB, gt=0, description="Largest file size on disk.")
    max_decompressed_bytes: int = Field(
        default=200 * MB,
        gt=0,
        description="Largest total uncompressed size of a zip-based file (docx, pptx).",
    )
    max_sections: int = Field(default=5000, gt=0, description="Most headings or sections in one document.")
    max_heading_depth: int = Field(
        default=6, ge=1, description="Deeper headings are folded into this level of the heading trail."
    )
    max_chars: int = Field(default=5_000_000, gt=0, description="Most characters of extracted text.")
    max_blocks: int = Field(
        default=100_000, gt=0, description="Most blocks (paragraphs, list items, table rows) in one text document."
    )
    max_pages: int = Field(default=2_000, gt=0, description="Most pages in one PDF; longer ones are refused unread.")


LoaderFn: TypeAlias = Callable[[Path, LoaderLimits], LoadedDocument]

_REGISTRY: dict[str, LoaderFn] = {}

# Built-in loaders, imported on first use so that `import ingest.loaders` stays cheap.
_BUILTIN_MODULES: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".vtt": "captions",
    ".srt": "captions",
    ".h5p": "h5p",
}


def _norm_suffix(suffix: str) -> str:
    suffix = suffix.strip().lower()
    return suffix if suffix.startswith(".") else f".{suffix}"


def register(*suffixes: str) -> Callable[[LoaderFn], LoaderFn]:
    """Decorator: register `fn(path, limits) -> LoadedDocument` for the given suffixes ('.pdf' or 'pdf')."""
    if not suffixes:
        raise ValueError("register() needs at least one suffix")

    def decorator(fn: LoaderFn) -> LoaderFn:
        for suffix in suffixes:
            _REGISTRY[_norm_suffix(suffix)] = fn
        return fn

    return decorator


def supported_suffixes() -> set[str]:
    """Lowercase suffixes (with the dot) that load_document can read."""
    return set(_REGISTRY) | set(_BUILTIN_MODULES)


def _loader_for(suffix: str) -> LoaderFn | None:
    if suffix not in _REGISTRY and suffix in _BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{_BUILTIN_MODULES[suffix]}")
    return _REGISTRY.get(suffix)


def _human_bytes(n: int) -> str:
    if n >= MB:
        return f"{n / MB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"


def load_document(path: Path, limits: LoaderLimits | None = None) -> LoadedDocument:
    """Load one course file into sections, or raise LoaderError naming the file, a reason and a fix.

    Reasons: missing, unsupported, empty, too_large, too_many_sections, corrupt, encrypted, no_text.
    """
    path = Path(path)
    limits = limits or LoaderLimits()
    where = str(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise LoaderError(where, "missing", f"the file {what}.", "check the path and the file name, then retry.")
    suffix = path.suffix.lower()
    loader = _loader_for(suffix)
    if loader is None:
        known = ", ".join(sorted(supported_suffixes()))
        raise LoaderError(
            where,
            "unsupported",
            f"files of type '{suffix or '(no suffix)'}' are not supported.",
            f"convert it to one of: {known} (e.g. export or 'Save as' PDF), or remove it from the course.",
        )
    size = path.stat().st_size
    if size == 0:
        raise LoaderError(where, "empty", "the file is empty (0 bytes).", "re-export or re-copy the file.")
    if size > limits.max_file_bytes:
        raise LoaderError(
            where,
            "too_large",
            f"the file is {_human_bytes(size)}, over the {_human_bytes(limits.max_file_bytes)} limit.",
            "split it into smaller modules (or compress its images) and re-add them.",
        )
    try:
        doc = loader(path, limits)
        doc.warnings = group_warnings(doc.warnings)
        return doc
    except LoaderError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise LoaderError(
            where,
            "too_large",
            f"the file is too large or too deeply nested to parse ({type(exc).__name__}).",
            "split it into smaller modules and re-add them.",
        ) from exc
    except Exception as exc:  # a parser failed on malformed input: report it, never crash ingestion
        raise LoaderError(
            where,
            "corrupt",
            f"the file could not be parsed ({type(exc).__name__}: {exc}).",
            "open it in its source application, save or export it again, and re-add it.",
        ) from exc


# ----------------------------------------------------------------------------------------------
# Shared helpers for the format modules
# ----------------------------------------------------------------------------------------------

_SPACES = re.compile(r"[ \t\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_HYPHEN_BREAK = re.compile(r"(?<=[A-Za-zÀ-ÿ])-\n(?=[a-zà-ÿ])")


def clean_inline(text: str) -> str:
    """Collapse all whitespace (newlines included) to single spaces; for headings and table cells."""
    text = normalize_unicode(text)
    return " ".join(text.split())


def normalize_text(text: str) -> str:
    """Collapse runs of spaces within lines, strip lines and drop blank ones; lines join with '\\n'."""
    text = normalize_unicode(text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def group_warnings(warnings: Sequence[str]) -> list[str]:
    """One line per distinct warning, in first-seen order, with a count where it repeats."""
    counts: dict[str, int] = {}
    for warning in warnings:
        counts[warning] = counts.get(warning, 0) + 1
    return [w if n == 1 else f"{w} ({n} times)" for w, n in counts.items()]


def page_ranges(pages: Sequence[int], limit: int = 8) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1-3, 7, 9-10' (at most `limit` ranges, then '... and N more')."""
    ranges: list[tuple[int, int]] = []
    for page in sorted(set(pages)):
        if ranges and page == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], page)
        else:
            ranges.append((page, page))
    shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges[:limit])
    return shown + (f" and {len(ranges) - limit} more ranges" if len(ranges) > limit else "")


def fix_hyphenation(text: str) -> str:
    """Join words broken at line ends ('spread-\\nsheet' -> 'spreadsheet')."""
    return _HYPHEN_BREAK.sub("", text)


def prettify_stem(path: Path) -> str:
    """'02-pivot_tables.pdf' -> 'Pivot tables'."""
    stem = path.stem
    pretty = re.sub(r"^\d+[-_. ]+", "", stem)
    pretty = " ".join(pretty.replace("_", " ").replace("-", " ").split())
    if not pretty:
        return stem
    return pretty[0].upper() + pretty[1:]


_PLACEHOLDER_TITLES = {
    "untitled",
    "untitled document",
    "document",
    "presentation",
    "powerpoint presentation",
    "microsoft word document",
    "slide 1",
}


def usable_title(title: object) -> str | None:
    """A metadata title worth showing, or None for empty or application-default titles."""
    if not isinstance(title, str):
        return None
    cleaned = clean_inline(title)
    if not cleaned or cleaned.lower() in _PLACEHOLDER_TITLES:
        return None
    return cleaned


def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Tables as readable text: 'Header1: value1; Header2: value2' per row, first row as headers.

    A table with one row becomes ' | '-joined cells. Empty rows and empty cells are skipped.
    """
    cleaned = [[clean_inline(c) for c in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    if len(cleaned) == 1:
        return " | ".join(c for c in cleaned[0] if c)
    headers = cleaned[0]
    lines: list[str] = []
    for row in cleaned[1:]:
        parts = []
        for i, cell in enumerate(row):
            if not cell:
                continue
            header = headers[i] if i < len(headers) else ""
            parts.append(f"{header}: {cell}" if header and header != cell else cell)
        if parts:
            lines.append(TABLE_CELL_SEPARATOR.join(parts))
    return "\n".join(lines)


def decode_text(path: Path, data: bytes) -> tuple[str, list[str]]:
    """Decode a text file: UTF-8 (BOM allowed), UTF-16 with BOM, else cp1252 / latin-1 with a warning.

    Bytes that look binary (NUL bytes without a UTF-16 BOM) raise LoaderError(reason="corrupt").
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        raise LoaderError(
            str(path),
            "corrupt",
            "the file contains binary data (NUL bytes), not text.",
            f"check that it really is a {path.suffix or 'text'} file; save it as UTF-8 text and re-add it.",
        )
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), ["decoded as cp1252; save as UTF-8"]
    except UnicodeDecodeError:
        return data.decode("latin-1"), ["decoded as latin-1; save as UTF-8"]


def check_text_size(path: Path, text: str, limits: LoaderLimits) -> None:
    """Refuse text sources already beyond max_chars before parsing them."""
    if len(text) > limits.max_chars:
        raise LoaderError(
            str(path),
            "too_large",
            f"the file has {len(text):,} characters of text, over the {limits.max_chars:,} limit.",
            "split it into smaller modules and re-add them.",
        )


def check_zip(path: Path, limits: LoaderLimits, required: str, fix_corrupt: str) -> None:
    """Zip-bomb and sanity checks for Office files, before any XML is decompressed.

    Uses the sizes declared in the central directory; Python's zipfile never inflates a member
    beyond its declared size (it fails the CRC check instead), so these bounds hold when parsing.
    """
    where = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise LoaderError(where, "corrupt", f"the file is not a valid Office (zip) file ({exc}).", fix_corrupt) from exc
    total = sum(info.file_size for info in infos)
    if total > limits.max_decompressed_bytes:
        raise LoaderError(
            where,
            "too_large",
            f"the file expands to {_human_bytes(total)} uncompressed, over the "
            f"{_human_bytes(limits.max_decompressed_bytes)} limit.",
            "split the document or remove embedded media, then re-add it.",
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 10 * MB and ratio > 200:
            raise LoaderError(
                where,
                "too_large",
                f"the member '{info.filename}' expands to {_human_bytes(info.file_size)} "
                f"(compression ratio {ratio:.0f}:1), which looks like a zip bomb.",
                "split the document or remove embedded media, then re-add it.",
            )
    names = {info.filename for info in infos}
    if required not in names:
        raise LoaderError(where, "corrupt", f"the file has no '{required}' part.", fix_corrupt)


class SectionBuilder:
    """Accumulates headings and body text into Sections.

    - heading(level, text): starts a new heading trail; deeper than max_heading_depth folds into
      the deepest level; skipped levels are fine (H1 then H3 gives a two-element trail).
    - text(text, page): appends body text; a page change starts a new Section with the same trail.
    - Sections without body text are dropped, but their headings still shape later trails.
    - Too many headings/sections raise too_many_sections; too much text raises too_large.
    """

    def __init__(self, path: Path, limits: LoaderLimits) -> None:
        self.path = path
        self.limits = limits
        self.sections: list[Section] = []
        self.first_h1: str | None = None
        self._stack: list[tuple[int, str]] = []
        self._buf: list[str] = []
        self._page: int | None = None
        self._chars = 0
        self._headings = 0

    @property
    def trail(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)

    def too_many(self) -> LoaderError:
        return LoaderError(
            str(self.path),
            "too_many_sections",
            f"the document has more than {self.limits.max_sections:,} headings or sections.",
            "split it into several smaller modules (or use fewer headings) and re-add them.",
        )

    def heading(self, level: int, text: str) -> None:
        text = clean_inline(text)
        if not text:
            return
        self.flush()
        self._headings += 1
        if self._headings > self.limits.max_sections:
            raise self.too_many()
        level = max(1, min(level, self.limits.max_heading_depth))
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    def text(self, text: str, page: int | None = None, *, preformatted: bool = False) -> None:
        if page != self._page:
            self.flush()
            self._page = page
        if preformatted:
            lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
            while lines and not lines[0]:
                lines.pop(0)
            while lines and not lines[-1]:
                lines.pop()
            body = "\n".join(lines)
        else:
            body = normalize_text(text)
        if not body:
            return
        self._chars += len(body) + 1
        if self._chars > self.limits.max_chars:
            raise LoaderError(
                str(self.path),
                "too_large",
                f"the document has more than {self.limits.max_chars:,} characters of text.",
                "split it into smaller modules and re-add them.",
            )
        self._buf.append(body)

    def flush(self) -> None:
        if not self._buf:
            return
        body = "\n".join(self._buf)
        self._buf = []
        self.sections.append(Section(heading_path=self.trail, text=body, page=self._page))
        if len(self.sections) > self.limits.max_sections:
            raise self.too_many()

    def finish(self) -> list[Section]:
        self.flush()
        return self.sections


def pick_title(*candidates: str | None, path: Path) -> str:
    """The first usable candidate, else the prettified file stem."""
    for candidate in candidates:
        title = usable_title(candidate)
        if title:
            return title
    return prettify_stem(path)


def join_nonempty(parts: Iterable[str], sep: str = "\n") -> str:
    return sep.join(p for p in parts if p)
