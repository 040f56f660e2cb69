"""Regenerate the binary modules (PDF, DOCX, PPTX) of the bundled sample course library.

Usage:
    python scripts/build_sample_library.py [--check]

Layout
------
Every binary module ``data/courses/<course>/<stem>.<pdf|docx|pptx>`` is rendered from the markdown
source ``data/sources/<course>/<stem>.md``. The output format is taken from the module path listed in
``data/courses/<course>/course.yaml``; a source with no matching PDF/DOCX/PPTX module is an error.
Markdown, HTML and TXT modules are written by hand directly in ``data/courses`` and are not touched.

Source syntax (a deliberately small subset of markdown)
------------------------------------------------------
* ``# Title`` / ``## Section`` / ``### Subsection`` headings (H1 = module title).
* Paragraphs: consecutive non-blank lines, joined with spaces.
* ``- item`` bullets (indent two spaces per nesting level) and ``1. item`` numbered steps.
* Simple pipe tables: a header row, a ``|---|---|`` separator row, then body rows.
* Fenced code blocks (three backticks), rendered in a monospaced font.
* Inline ``**bold**``, ``*italic*`` and ``code`` spans (backticks).
* Directives, as HTML comments on their own line:
  ``<!-- pdf-outline -->``  (PDF only) write a PDF outline (bookmarks) for H1/H2/H3. Without it the
  PDF has no outline and headings are only visible as short, larger, bold lines.
  ``<!-- pagebreak -->``    (PDF only) force a page break at this point.
* PDF sources may only use characters the standard PDF fonts can draw (cp1252/WinAnsi: curly quotes,
  dashes, "›" and "€" are fine; arrows and emoji are not). The build stops on anything else.

PPTX convention
---------------
* ``# Deck title`` makes the title slide; the first paragraph after it becomes the subtitle.
* Each ``## Slide title`` starts a new "Title and Content" slide; its ``- `` bullets (indented
  two spaces for level 2) fill the body placeholder.
* Lines starting with ``>`` after a slide's bullets are that slide's speaker notes. The first one may
  start with ``notes:`` (which is dropped). A line that is just ``>`` separates notes paragraphs.

SCORM packages
--------------
A source folder with an ``imsmanifest.xml`` at its root, ``data/sources/<course>/imsmanifest.xml``, is a SCORM
package written by hand (manifest, LOM metadata, HTML SCOs, captions). It is zipped, every file in name order
with fixed timestamps, into ``data/courses/<course>.zip``, which CoursePilot ingests as one course.

Determinism
-----------
PDFs are built with reportlab's ``invariant=1`` (fixed dates and document id) and fixed metadata;
DOCX/PPTX core properties get fixed dates, and their zip containers are rewritten with fixed entry
timestamps. A file is only rewritten when its bytes change, so re-running is a no-op.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

ROOT = Path(__file__).resolve().parents[1]
COURSES = ROOT / "data" / "courses"
SOURCES = ROOT / "data" / "sources"

AUTHOR = "CoursePilot sample library"
FIXED_DATE = dt.datetime(2024, 1, 15, 9, 0, 0)
ZIP_DATE = (2024, 1, 15, 9, 0, 0)
BINARY_EXTS = (".pdf", ".docx", ".pptx")


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


@dataclass
class Block:
    kind: str  # heading | para | bullets | numbers | table | code | notes | pagebreak
    text: str = ""
    level: int = 0
    items: list[tuple[int, str]] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Source:
    path: Path
    blocks: list[Block]
    directives: set[str]

    @property
    def title(self) -> str:
        for b in self.blocks:
            if b.kind == "heading" and b.level == 1:
                return plain(b.text)
        return self.path.stem


_BULLET = re.compile(r"^(\s*)- (.*)$")
_NUMBER = re.compile(r"^(\s*)\d+\. (.*)$")
_HEADING = re.compile(r"^(#{1,3}) (.*)$")
_DIRECTIVE = re.compile(r"^<!--\s*([a-z-]+)\s*-->$")
_TABLE_SEP = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse(path: Path) -> Source:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    directives: set[str] = set()
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            blocks.append(Block("para", " ".join(s.strip() for s in para)))
            para.clear()

    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            flush()
            i += 1
            continue
        if line.strip().startswith("```"):
            flush()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i].rstrip())
                i += 1
            i += 1  # closing fence
            blocks.append(Block("code", "\n".join(code)))
            continue
        if m := _DIRECTIVE.match(line.strip()):
            flush()
            if m.group(1) == "pagebreak":
                blocks.append(Block("pagebreak"))
            else:
                directives.add(m.group(1))
            i += 1
            continue
        if m := _HEADING.match(line):
            flush()
            blocks.append(Block("heading", m.group(2).strip(), level=len(m.group(1))))
            i += 1
            continue
        if line.lstrip().startswith(">"):
            flush()
            notes: list[list[str]] = [[]]
            while i < len(lines) and lines[i].lstrip().startswith(">"):
                body = lines[i].lstrip()[1:].strip()
                if not any(notes) and body.lower().startswith("notes:"):
                    body = body[6:].strip()
                if body:
                    notes[-1].append(body)
                elif notes[-1]:
                    notes.append([])
                i += 1
            blocks.append(Block("notes", "\n".join(" ".join(p) for p in notes if p)))
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1].strip()):
            flush()
            rows = [_cells(line)]
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            blocks.append(Block("table", rows=rows))
            continue
        for pattern, kind in ((_BULLET, "bullets"), (_NUMBER, "numbers")):
            if pattern.match(line):
                flush()
                items: list[tuple[int, str]] = []
                while i < len(lines):
                    cur = lines[i].rstrip()
                    m = _BULLET.match(cur) or _NUMBER.match(cur)
                    if m:
                        items.append((len(m.group(1)) // 2, m.group(2).strip()))
                    elif cur.strip() and cur.startswith("  ") and items:
                        lvl, text = items[-1]
                        items[-1] = (lvl, text + " " + cur.strip())  # continuation line
                    else:
                        break
                    i += 1
                blocks.append(Block(kind, items=items))
                break
        else:
            para.append(line)
            i += 1
            continue
    flush()
    return Source(path, blocks, directives)


_INLINE = re.compile(r"(\*\*[^*]+\*\*|\*[^*\s][^*]*\*|`[^`]+`)")


def spans(text: str) -> list[tuple[str, str]]:
    """Split inline markdown into (style, text) spans; style is '', 'b', 'i' or 'code'."""
    out: list[tuple[str, str]] = []
    for part in _INLINE.split(text):
        if not part:
            continue
        if part.startswith("**") and part.endswith("**"):
            out.append(("b", part[2:-2]))
        elif part.startswith("`") and part.endswith("`"):
            out.append(("code", part[1:-1]))
        elif part.startswith("*") and part.endswith("*") and len(part) > 2:
            out.append(("i", part[1:-1]))
        else:
            out.append(("", part))
    return out


def plain(text: str) -> str:
    return "".join(t for _, t in spans(text))


# --------------------------------------------------------------------------------------------------
# PDF (reportlab)
# --------------------------------------------------------------------------------------------------


def _rl_markup(text: str) -> str:
    parts = []
    for style, t in spans(text):
        t = escape(t)
        if style == "b":
            parts.append(f"<b>{t}</b>")
        elif style == "i":
            parts.append(f"<i>{t}</i>")
        elif style == "code":
            parts.append(f'<font name="Courier">{t}</font>')
        else:
            parts.append(t)
    return "".join(parts)


def _pdf_story(src: Source, outline: bool, break_h2: bool) -> list:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.platypus import CondPageBreak, PageBreak, Paragraph, Preformatted, Spacer, Table, TableStyle

    body = ParagraphStyle("Body", fontName="Helvetica", fontSize=10.5, leading=14.5, spaceAfter=7)
    h = {
        1: ParagraphStyle("H1", fontName="Helvetica-Bold", fontSize=20, leading=25, spaceAfter=12),
        2: ParagraphStyle("H2", fontName="Helvetica-Bold", fontSize=15, leading=19, spaceBefore=10, spaceAfter=6),
        3: ParagraphStyle("H3", fontName="Helvetica-Bold", fontSize=12.5, leading=16, spaceBefore=6, spaceAfter=4),
    }
    cell = ParagraphStyle("Cell", parent=body, fontSize=9.5, leading=12, spaceAfter=0)
    code_style = ParagraphStyle(
        "Code",
        fontName="Courier",
        fontSize=9.5,
        leading=12,
        leftIndent=14,
        spaceBefore=2,
        spaceAfter=8,
        backColor=colors.HexColor("#F3F3F3"),
        borderPadding=4,
    )
    story: list = []
    seen_h2 = False
    for b in src.blocks:
        if b.kind == "heading":
            if b.level == 2 and break_h2 and seen_h2:
                story.append(PageBreak())
            seen_h2 = seen_h2 or b.level == 2
            story.append(CondPageBreak(3 * cm))  # keep headings with what follows
            p = Paragraph(_rl_markup(b.text), h[b.level])
            if outline:
                p._cp_outline = (b.level, plain(b.text))  # read by the afterFlowable hook
            story.append(p)
        elif b.kind == "para":
            story.append(Paragraph(_rl_markup(b.text), body))
        elif b.kind in ("bullets", "numbers"):
            for n, (lvl, text) in enumerate(b.items, start=1):
                round_bullet = b.kind == "bullets" and lvl == 0
                bullet = f"{n}." if b.kind == "numbers" else ("\u2022" if lvl == 0 else "\u2013")
                style = ParagraphStyle(
                    f"L{lvl}",
                    parent=body,
                    leftIndent=18 + 16 * lvl,
                    bulletIndent=6 + 16 * lvl,
                    spaceAfter=3,
                    # Helvetica's bullet glyph extracts as U+007F in common PDF text extractors; Symbol's does not.
                    bulletFontName="Symbol" if round_bullet else "Helvetica",
                )
                story.append(Paragraph(_rl_markup(text), style, bulletText=bullet))
            story.append(Spacer(1, 5))
        elif b.kind == "table":
            data = [[Paragraph(_rl_markup(c), cell) for c in row] for row in b.rows]
            t = Table(data, repeatRows=1, hAlign="LEFT")
            t.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF4")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ]
                )
            )
            story.extend([t, Spacer(1, 8)])
        elif b.kind == "code":
            story.append(Preformatted(b.text, code_style))
        elif b.kind == "pagebreak":
            story.append(PageBreak())
    return story


def build_pdf(src: Source, course_title: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    outline = "pdf-outline" in src.directives
    # The standard PDF fonts only cover WinAnsi (close to cp1252); anything else would render as a box.
    for n, line in enumerate(src.path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            line.encode("cp1252")
        except UnicodeEncodeError as exc:
            raise SystemExit(f"{src.path}:{n}: {line[exc.start]!r} cannot be drawn with the PDF fonts") from exc

    class Doc(SimpleDocTemplate):
        def afterFlowable(self, flowable) -> None:
            info = getattr(flowable, "_cp_outline", None)
            if info:
                level, text = info
                key = f"h{self._cp_count}"
                self._cp_count += 1
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(text, key, level=level - 1, closed=False)

    def render(break_h2: bool) -> tuple[bytes, int]:
        buf = io.BytesIO()
        doc = Doc(
            buf,
            pagesize=A4,
            leftMargin=2.3 * cm,
            rightMargin=2.3 * cm,
            topMargin=2.2 * cm,
            bottomMargin=2.2 * cm,
            title=src.title,
            author=AUTHOR,
            subject=course_title,
            creator="scripts/build_sample_library.py",
            producer="ReportLab",
            invariant=1,
        )
        doc._cp_count = 0
        doc.build(_pdf_story(src, outline, break_h2))
        if outline:
            doc.canv.showOutline()
        return buf.getvalue(), doc.page

    data, pages = render(break_h2=False)
    if pages < 2:
        data, pages = render(break_h2=True)
    if pages < 2:
        raise SystemExit(f"{src.path}: renders to a single page; add text or a <!-- pagebreak -->")
    return data


# --------------------------------------------------------------------------------------------------
# DOCX (python-docx)
# --------------------------------------------------------------------------------------------------


def _docx_runs(paragraph, text: str) -> None:
    for style, t in spans(text):
        run = paragraph.add_run(t)
        if style == "b":
            run.bold = True
        elif style == "i":
            run.italic = True
        elif style == "code":
            run.font.name = "Consolas"


def build_docx(src: Source, course_title: str) -> bytes:
    import docx

    d = docx.Document()
    cp = d.core_properties
    cp.title = src.title
    cp.author = AUTHOR
    cp.last_modified_by = AUTHOR
    cp.subject = course_title
    cp.keywords = course_title
    cp.comments = "Generated by scripts/build_sample_library.py"
    cp.created = FIXED_DATE
    cp.modified = FIXED_DATE
    cp.last_printed = FIXED_DATE
    cp.revision = 1
    for b in src.blocks:
        if b.kind == "heading":
            p = d.add_paragraph(style=f"Heading {b.level}")
            _docx_runs(p, b.text)
        elif b.kind == "para":
            _docx_runs(d.add_paragraph(), b.text)
        elif b.kind in ("bullets", "numbers"):
            base = "List Bullet" if b.kind == "bullets" else "List Number"
            for lvl, text in b.items:
                style = base if lvl == 0 else f"{base} {min(lvl + 1, 3)}"
                _docx_runs(d.add_paragraph(style=style), text)
        elif b.kind == "table":
            cols = max(len(r) for r in b.rows)
            table = d.add_table(rows=0, cols=cols)
            table.style = "Table Grid"
            for r, row in enumerate(b.rows):
                cells = table.add_row().cells
                for c in range(cols):
                    para = cells[c].paragraphs[0]
                    _docx_runs(para, row[c] if c < len(row) else "")
                    if r == 0:
                        for run in para.runs:
                            run.bold = True
            d.add_paragraph()
        elif b.kind == "code":
            for code_line in b.text.split("\n"):
                p = d.add_paragraph(style="No Spacing")
                run = p.add_run(code_line)
                run.font.name = "Consolas"
            d.add_paragraph()
        elif b.kind == "pagebreak":
            d.add_page_break()
    buf = io.BytesIO()
    d.save(buf)
    return normalise_zip(buf.getvalue())


# --------------------------------------------------------------------------------------------------
# PPTX (python-pptx)
# --------------------------------------------------------------------------------------------------


def _pptx_runs(paragraph, text: str, size_pt: float) -> None:
    from pptx.util import Pt

    for style, t in spans(text):
        run = paragraph.add_run()
        run.text = t
        run.font.size = Pt(size_pt)
        if style == "b":
            run.font.bold = True
        elif style == "i":
            run.font.italic = True
        elif style == "code":
            run.font.name = "Consolas"


def _set_notes(slide, notes: str) -> None:
    if notes:
        slide.notes_slide.notes_text_frame.text = notes


def build_pptx(src: Source, course_title: str) -> bytes:
    from pptx import Presentation

    prs = Presentation()
    cp = prs.core_properties
    cp.title = src.title
    cp.author = AUTHOR
    cp.last_modified_by = AUTHOR
    cp.subject = course_title
    cp.keywords = course_title
    cp.comments = "Generated by scripts/build_sample_library.py"
    cp.created = FIXED_DATE
    cp.modified = FIXED_DATE
    cp.last_printed = FIXED_DATE
    cp.revision = 1

    slide = None
    subtitle_done = False
    for b in src.blocks:
        if b.kind == "heading" and b.level == 1:
            slide = prs.slides.add_slide(prs.slide_layouts[0])
            slide.shapes.title.text = plain(b.text)
            subtitle_done = False
        elif b.kind == "heading":
            slide = prs.slides.add_slide(prs.slide_layouts[1])
            slide.shapes.title.text = plain(b.text)
            subtitle_done = True
        elif slide is None:
            raise SystemExit(f"{src.path}: content before the first heading")
        elif b.kind == "para" and not subtitle_done:
            slide.placeholders[1].text_frame.text = plain(b.text)
            subtitle_done = True
        elif b.kind in ("bullets", "numbers", "para"):
            tf = slide.placeholders[1].text_frame
            tf.word_wrap = True
            items = b.items if b.kind != "para" else [(0, b.text)]
            for n, (lvl, text) in enumerate(items, start=1):
                first = len(tf.paragraphs) == 1 and not tf.paragraphs[0].runs
                para = tf.paragraphs[0] if first else tf.add_paragraph()
                para.level = lvl
                if b.kind == "numbers":
                    text = f"{n}. {text}"
                _pptx_runs(para, text, 20 if lvl == 0 else 17)
        elif b.kind == "notes":
            _set_notes(slide, b.text)
        elif b.kind in ("table", "code"):
            raise SystemExit(f"{src.path}: {b.kind} blocks are not supported in PPTX sources")
    buf = io.BytesIO()
    prs.save(buf)
    return normalise_zip(buf.getvalue())


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def normalise_zip(data: bytes) -> bytes:
    """Rewrite an OOXML zip with fixed entry timestamps and attributes so output is reproducible."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            fixed.create_system = 0
            zout.writestr(fixed, zin.read(info.filename))
    return out.getvalue()


BUILDERS = {".pdf": build_pdf, ".docx": build_docx, ".pptx": build_pptx}


def build_package(folder: Path) -> bytes:
    """A SCORM zip of `folder`: every file in name order, fixed timestamps and modes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 0
            zout.writestr(info, path.read_bytes())
    return out.getvalue()


def package_targets() -> list[tuple[Path, Path]]:
    """(source folder, output zip) for every hand-written SCORM package source."""
    return [(m.parent, COURSES / f"{m.parent.name}.zip") for m in sorted(SOURCES.glob("*/imsmanifest.xml"))]


def targets() -> list[tuple[Path, Path, str]]:
    """(source, output, course title) for every binary module listed in a course.yaml.

    Every PDF/DOCX/PPTX module must have a source, and every source must belong to such a module.
    """
    found: list[tuple[Path, Path, str]] = []
    for course_dir in sorted(p for p in COURSES.iterdir() if (p / "course.yaml").is_file()):
        manifest = yaml.safe_load((course_dir / "course.yaml").read_text(encoding="utf-8"))
        src_dir = SOURCES / course_dir.name
        for module in manifest.get("modules", []):
            out = course_dir / module["path"]
            if out.suffix not in BINARY_EXTS:
                continue
            src = src_dir / f"{out.stem}.md"
            if not src.is_file():
                raise SystemExit(f"{out}: no markdown source at {src}")
            found.append((src, out, manifest["title"]))
    known = {src for src, _, _ in found}
    orphans = sorted(p for p in SOURCES.glob("*/*.md") if p not in known)
    if orphans:
        raise SystemExit(f"sources with no PDF/DOCX/PPTX module in a course.yaml: {orphans}")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if any output is out of date; write nothing")
    args = ap.parse_args(argv)
    stale = 0
    outputs: list[tuple[Path, Callable[[], bytes]]] = [
        (out, partial(lambda s, t, o: BUILDERS[o.suffix](parse(s), t), src, title, out))
        for src, out, title in targets()
    ]
    outputs += [(out, partial(build_package, folder)) for folder, out in package_targets()]
    for out, build in outputs:
        data = build()
        current = out.read_bytes() if out.exists() else None
        rel = out.relative_to(ROOT)
        if current == data:
            print(f"unchanged  {rel}")
            continue
        stale += 1
        if args.check:
            print(f"stale      {rel}")
        else:
            out.write_bytes(data)
            print(f"wrote      {rel}")
    if args.check and stale:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
