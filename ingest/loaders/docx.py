"""DOCX loader (python-docx).

'Title' and 'Heading 1'..'Heading 9' styles give the heading trail ('Title' counts as level 1);
paragraphs and tables are read in document order; list paragraphs keep a '- ' prefix; tables
become 'Header: value; ...' lines (first row as headers). Zip-bomb checks run before parsing, and every
XML part is checked with defusedxml (no DTDs or entities) before python-docx sees it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from assistant.core.errors import LoaderError
from assistant.core.types import LoadedDocument
from ingest.loaders import LoaderLimits, SectionBuilder, check_zip, pick_title, register, render_table

FIX_CORRUPT = "open it in Word and save it again as .docx, then re-add it."
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)


def _heading_level(paragraph: Any) -> int | None:
    style = paragraph.style
    name = (getattr(style, "name", None) or "").strip()
    if name.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(name)
    if match:
        return int(match.group(1))
    return None


def _is_list_item(paragraph: Any) -> bool:
    name = (getattr(paragraph.style, "name", None) or "").lower()
    if name.startswith("list"):
        return True
    ppr = paragraph._p.pPr
    return ppr is not None and ppr.numPr is not None


def _table_rows(table: Any) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if previous is not None and cell._tc is previous:  # horizontally merged cell repeats
                continue
            previous = cell._tc
            cells.append(cell.text)
        rows.append(cells)
    return rows


@register(".docx")
def load_docx(path: Path, limits: LoaderLimits) -> LoadedDocument:
    check_zip(path, limits, required="word/document.xml", fix_corrupt=FIX_CORRUPT)
    from ingest.packages.xmlsafe import check_office_xml

    check_office_xml(path, FIX_CORRUPT)
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:
        raise LoaderError(
            str(path),
            "corrupt",
            f"the file is not a readable .docx ({type(exc).__name__}: {exc}).",
            FIX_CORRUPT,
        ) from exc

    from docx.table import Table
    from docx.text.paragraph import Paragraph

    builder = SectionBuilder(path, limits)
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text
            if not text.strip():
                continue
            level = _heading_level(block)
            if level is not None:
                builder.heading(level, text)
            elif _is_list_item(block):
                builder.text("- " + " ".join(text.split()))
            else:
                builder.text(text)
        elif isinstance(block, Table):
            builder.text(render_table(_table_rows(block)))

    sections = builder.finish()
    warnings: list[str] = []
    if not sections:
        warnings.append("the document has no body text")
    title = pick_title(document.core_properties.title, builder.first_h1, path=path)
    return LoadedDocument(path=str(path), kind="docx", title=title, sections=sections, warnings=warnings)
