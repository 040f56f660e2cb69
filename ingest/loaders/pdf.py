"""PDF loader (pypdf). Pages are 1-based; every Section lies on a single page.

Headings come from the outline (bookmarks) when the PDF has one: each entry's nesting gives its
level and its destination gives the page; the page text is split where the entry's title occurs
on that page (else at the start of the page). Without an outline, heading-like lines are
detected: short, no terminal period, in a font larger than the body median (levels by size) or
bold Title Case / numbered; without font information, short Title Case or numbered lines
surrounded by body text. Lines are re-joined into paragraphs and end-of-line hyphenation fixed;
running headers/footers (the same line, digits aside, atop or below most pages) are dropped.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.core.errors import LoaderError
from assistant.core.types import LoadedDocument
from ingest.loaders import LoaderLimits, SectionBuilder, clean_inline, page_ranges, pick_title, register

FIX_CORRUPT = "re-export the PDF from its source application (or print it to a new PDF) and re-add it."
FIX_ENCRYPTED = "remove the password (e.g. print to PDF) and re-add the file."
FIX_NO_TEXT = "it looks scanned: run OCR (e.g. ocrmypdf) and re-add it."

_NUMBERED = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[A-Z]\.|[IVXLC]+\.)\s+\S")
_TERMINAL = re.compile(r"[.,;:!]$")
_SMALL_WORDS = {
    "a",
    "an",
    "and",
    "as",
    "at",
    "but",
    "by",
    "for",
    "from",
    "in",
    "into",
    "nor",
    "of",
    "on",
    "or",
    "per",
    "the",
    "to",
    "vs",
    "via",
    "with",
}


@dataclass
class Line:
    text: str
    size: float | None = None
    bold: bool = False


# ---------------------------------------------------------------------------------------------
# Text extraction
# ---------------------------------------------------------------------------------------------


def _is_bold(font: Any) -> bool:
    try:
        name = str(font.get("/BaseFont", "")) if font else ""
    except Exception:
        return False
    return bool(re.search(r"bold|black|heavy|semibold|demi", name, re.IGNORECASE))


def _scale(cm: Any, tm: Any) -> float:
    """Vertical scale of text space: the font size is multiplied by this to get the rendered size."""
    try:
        a, b, c, d = (
            tm[0] * cm[0] + tm[1] * cm[2],
            tm[0] * cm[1] + tm[1] * cm[3],
            tm[2] * cm[0] + tm[3] * cm[2],
            tm[2] * cm[1] + tm[3] * cm[3],
        )
        scale = math.sqrt(abs(a * d - b * c))
        return scale if scale > 0 else 1.0
    except Exception:
        return 1.0


def _page_lines(page: Any) -> list[Line]:
    """The page's lines with the dominant font size and boldness of each (None size if unknown)."""
    lines: list[Line] = []
    current: list[tuple[str, float | None, bool]] = []

    def close_line() -> None:
        text = clean_inline("".join(t for t, _, _ in current))
        if text:
            weights: dict[float, int] = {}
            bold_chars = 0
            for frag, size, bold in current:
                n = len(frag.strip())
                if size is not None:
                    weights[size] = weights.get(size, 0) + n
                if bold:
                    bold_chars += n
            size = max(weights, key=lambda s: weights[s]) if weights else None
            total = sum(len(frag.strip()) for frag, _, _ in current) or 1
            lines.append(Line(text, size, bold_chars / total > 0.8))
        current.clear()

    def visitor(text: str, cm: Any, tm: Any, font: Any, font_size: Any) -> None:
        if not text:
            return
        try:
            size: float | None = round(float(font_size) * _scale(cm, tm), 1)
        except (TypeError, ValueError):
            size = None
        bold = _is_bold(font)
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if part:
                current.append((part, size, bold))
            if i < len(parts) - 1:
                close_line()

    plain = page.extract_text(visitor_text=visitor) or ""
    close_line()
    if not lines and plain.strip():  # visitor gave nothing usable: fall back to the plain text
        lines = [Line(clean_inline(t)) for t in plain.split("\n") if t.strip()]
    return lines


def lines_to_text(lines: list[str]) -> str:
    """Re-join PDF lines: fix 'spread-/sheet' hyphenation, join lines that continue a sentence."""
    out: list[str] = []
    for raw in lines:
        text = clean_inline(raw)
        if not text:
            continue
        if out:
            prev = out[-1]
            starts_lower = text[0].islower()
            if starts_lower and len(prev) > 1 and prev.endswith("-") and prev[-2].isalpha():
                out[-1] = prev[:-1] + text
                continue
            if starts_lower and not re.search(r"[.!?:;]['\")\]]?$", prev):
                out[-1] = f"{prev} {text}"
                continue
        out.append(text)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Headings
# ---------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def _short(text: str) -> bool:
    return len(text) <= 80 and len(text.split()) <= 12


def _title_case(text: str) -> bool:
    words = [w for w in re.findall(r"[^\W\d_][\w'’-]*", text)]
    if not words or not words[0][0].isupper():
        return False
    significant = [w for w in words if w.lower() not in _SMALL_WORDS]
    return all(w[0].isupper() for w in significant)


def _heading_text_ok(text: str) -> bool:
    if not _short(text) or _TERMINAL.search(text):
        return False
    letters = sum(ch.isalpha() for ch in text)
    return letters >= 2 and letters >= len(text) * 0.4


def _numbered_level(text: str) -> int | None:
    match = re.match(r"^(\d+(?:\.\d+)*)\.?\s+\S", text)
    return len(match.group(1).split(".")) if match else None


def _detect_headings(pages: list[list[Line]]) -> dict[tuple[int, int], int]:
    """Map (page index, line index) -> heading level for heading-like lines (no outline)."""
    sized = [(line.size, len(line.text)) for page in pages for line in page if line.size]
    found: dict[tuple[int, int], int] = {}
    if sized:
        weighted: list[float] = []
        for size, n in sized:
            weighted.extend([size] * min(n, 200))
        body = statistics.median(weighted)
        heading_sizes = sorted(
            {
                line.size
                for page in pages
                for line in page
                if line.size is not None and line.size >= body * 1.15 and _heading_text_ok(line.text)
            },
            reverse=True,
        )
        rank = {size: i + 1 for i, size in enumerate(heading_sizes)}
        for p, page in enumerate(pages):
            for i, line in enumerate(page):
                if not _heading_text_ok(line.text):
                    continue
                if line.size in rank:
                    found[(p, i)] = rank[line.size]
                elif (
                    line.bold
                    and line.size is not None
                    and line.size >= body * 0.95
                    and (_title_case(line.text) or _NUMBERED.match(line.text))
                ):
                    found[(p, i)] = len(rank) + 1
        return found
    # No font information: short Title Case or numbered lines between body lines.
    for p, page in enumerate(pages):
        for i, line in enumerate(page):
            text = line.text
            if not _heading_text_ok(text) or text.endswith("?"):
                continue
            if not (_title_case(text) or _NUMBERED.match(text)):
                continue
            nxt = page[i + 1].text if i + 1 < len(page) else ""
            prev = page[i - 1].text if i > 0 else ""
            next_is_body = (len(nxt) > len(text) and not _heading_text_ok(nxt)) or len(nxt.split()) > 12
            prev_is_body = i == 0 or not _heading_text_ok(prev) or bool(_TERMINAL.search(prev))
            if next_is_body and prev_is_body:
                found[(p, i)] = _numbered_level(text) or 1
    return found


def _strip_running_lines(pages: list[list[Line]]) -> int:
    """Drop running headers/footers: lines at the top or bottom of at least half the pages (and 3+),
    compared with digits masked so 'Page 3 of 9' matches 'Page 4 of 9'. Returns how many were dropped."""
    if len(pages) < 3:
        return 0

    def key(line: Line) -> str:
        return re.sub(r"\d+", "#", _norm(line.text)) if len(line.text) <= 80 else ""

    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update({key(line) for line in lines[:2] + lines[-2:]} - {""})
    running = {k for k, c in counts.items() if c >= max(3, len(pages) / 2)}
    if not running:
        return 0
    dropped = 0
    for lines in pages:
        if all(key(line) in running for line in lines):
            continue  # never empty a page
        for _ in range(2):
            if lines and key(lines[0]) in running:
                lines.pop(0)
                dropped += 1
            if lines and key(lines[-1]) in running:
                lines.pop()
                dropped += 1
    return dropped


def _flatten_outline(reader: Any) -> list[tuple[int, str, int]]:
    """[(level, title, page index)] in outline order; entries without a usable page are skipped."""
    entries: list[tuple[int, str, int]] = []
    n_pages = len(reader.pages)

    def walk(items: Any, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                title = clean_inline(str(item.title or ""))
                page = reader.get_destination_page_number(item)
            except Exception:
                continue
            if title and page is not None and 0 <= page < n_pages:
                entries.append((level, title, page))

    try:
        walk(reader.outline, 1)
    except Exception:
        return []
    return entries


def _find_heading_line(lines: list[Line], title: str, start: int) -> tuple[int, int] | None:
    """(line index, number of lines) where `title` is printed on the page, searching from `start`."""
    target = _norm(title)
    if not target:
        return None
    for i in range(start, len(lines)):
        line = _norm(lines[i].text)
        if line == target:
            return i, 1
        if line.endswith(target) and len(line) - len(target) <= 12:  # '2.1 Title', 'Chapter 2 Title'
            return i, 1
        if line.startswith(target) and len(line) - len(target) <= 6:  # 'Title 7' (page number)
            return i, 1
        if i + 1 < len(lines) and target.startswith(line) and _norm(f"{lines[i].text} {lines[i + 1].text}") == target:
            return i, 2
    return None


# ---------------------------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    import pypdf
    from pypdf.errors import PdfReadError

    where = str(path)
    try:
        reader = pypdf.PdfReader(str(path))
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise LoaderError(where, "corrupt", f"the PDF is damaged or truncated ({exc}).", FIX_CORRUPT) from exc
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except Exception as exc:
            raise LoaderError(
                where, "encrypted", f"the PDF is encrypted and cannot be opened ({exc}).", FIX_ENCRYPTED
            ) from exc
        if not ok:
            raise LoaderError(where, "encrypted", "the PDF is password-protected.", FIX_ENCRYPTED)
    return reader


def _too_many_pages(where: str, count: int, limits: LoaderLimits) -> LoaderError:
    return LoaderError(
        where,
        "too_large",
        f"the PDF has {count:,} pages, over the {limits.max_pages:,}-page limit.",
        "split it into smaller modules (one PDF per chapter, say) and re-add them, or raise "
        "COURSEPILOT_LIMITS_MAX_PDF_PAGES.",
    )


def _check_page_count(reader: Any, limits: LoaderLimits, where: str) -> None:
    """Refuse a PDF whose page tree declares too many pages before pypdf walks it (99,990 pages took 34 s)."""
    try:
        declared = int(reader.trailer["/Root"]["/Pages"]["/Count"])
    except Exception:
        return  # no usable count: the page list below is checked instead
    if declared > limits.max_pages:
        raise _too_many_pages(where, declared, limits)


def _pages(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"page {numbers[0]}"
    return f"{len(numbers):,} pages ({page_ranges(numbers)})"


@register(".pdf")
def load_pdf(path: Path, limits: LoaderLimits) -> LoadedDocument:
    where = str(path)
    reader = _open(path)
    _check_page_count(reader, limits, where)
    try:
        n_pages = len(reader.pages)
    except Exception as exc:
        raise LoaderError(where, "corrupt", f"the PDF's page tree is damaged ({exc}).", FIX_CORRUPT) from exc
    if n_pages == 0:
        raise LoaderError(where, "corrupt", "the PDF has no pages.", FIX_CORRUPT)
    if n_pages > limits.max_pages:  # refused before any page is read (a page tree whose /Count lied)
        raise _too_many_pages(where, n_pages, limits)

    warnings: list[str] = []
    pages: list[list[Line]] = []
    failed: dict[str, list[int]] = {}
    empty: list[int] = []
    chars = 0
    for number in range(1, n_pages + 1):
        try:
            lines = _page_lines(reader.pages[number - 1])
        except Exception as exc:
            failed.setdefault(type(exc).__name__, []).append(number)
            lines = []
        else:
            if not lines:
                empty.append(number)
        chars += sum(len(line.text) + 1 for line in lines)
        if chars > limits.max_chars:
            raise LoaderError(
                where,
                "too_large",
                f"the PDF has more than {limits.max_chars:,} characters of text.",
                "split it into smaller modules and re-add them.",
            )
        pages.append(lines)
    # One line per kind of problem, with the pages it concerns, rather than one line per page.
    for error, numbers in failed.items():
        warnings.append(f"{_pages(numbers)}: text could not be extracted ({error})")
    if empty:
        warnings.append(f"{_pages(empty)}: no extractable text (scanned image?)")

    if not any(pages):
        if failed:
            count = sum(len(n) for n in failed.values())
            raise LoaderError(where, "corrupt", f"no page could be read ({count} of {n_pages} failed).", FIX_CORRUPT)
        raise LoaderError(where, "no_text", f"none of the {n_pages} pages has extractable text.", FIX_NO_TEXT)

    _strip_running_lines(pages)
    builder = SectionBuilder(path, limits)
    outline = _flatten_outline(reader)
    if outline:
        by_page: dict[int, list[tuple[int, str]]] = {}
        for level, title, page in outline:
            by_page.setdefault(page, []).append((level, title))
        for p, lines in enumerate(pages):
            cursor = 0
            for level, title in by_page.get(p, []):
                hit = _find_heading_line(lines, title, cursor)
                if hit is not None:
                    index, span = hit
                    builder.text(lines_to_text([ln.text for ln in lines[cursor:index]]), page=p + 1)
                    cursor = index + span
                builder.heading(level, title)
            builder.text(lines_to_text([ln.text for ln in lines[cursor:]]), page=p + 1)
    else:
        headings = _detect_headings(pages)
        for p, lines in enumerate(pages):
            body: list[str] = []
            i = 0
            while i < len(lines):
                found = headings.get((p, i))
                if found is None:
                    body.append(lines[i].text)
                    i += 1
                    continue
                text = lines[i].text
                i += 1
                # a heading wrapped over several lines in the same style
                while headings.get((p, i)) == found and len(text) + len(lines[i].text) <= 120:
                    text = f"{text} {lines[i].text}"
                    i += 1
                builder.text(lines_to_text(body), page=p + 1)
                body = []
                builder.heading(found, text)
            builder.text(lines_to_text(body), page=p + 1)

    sections = builder.finish()
    meta_title = None
    try:
        meta = reader.metadata
        meta_title = meta.title if meta is not None else None
    except Exception:
        warnings.append("the PDF metadata could not be read")
    title = pick_title(meta_title, builder.first_h1, path=path)
    return LoadedDocument(path=where, kind="pdf", title=title, sections=sections, pages=n_pages, warnings=warnings)
