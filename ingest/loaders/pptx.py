"""PPTX loader (python-pptx): one section per slide, page = slide number.

heading_path = (deck title, section, slide title), where the deck title is the first slide's title (or
the file stem) and the section is PowerPoint's own section (``p14:sectionLst`` in ``ppt/presentation.xml``)
or, in a deck without sections, the title of the last section-header slide (layout type ``secHead``).
A deck with neither gives (deck title, slide title). The body is the text of every text frame and table on
the slide except the title, followed by 'Speaker notes: ...', so notes stay with their slide. Zip-bomb
checks run before parsing, and every XML part is checked with defusedxml (no DTDs or entities).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.core.errors import LoaderError
from assistant.core.types import LoadedDocument
from ingest.loaders import (
    LoaderLimits,
    SectionBuilder,
    check_zip,
    clean_inline,
    pick_title,
    prettify_stem,
    register,
    render_table,
)

FIX_CORRUPT = "open it in PowerPoint and save it again as .pptx, then re-add it."


def _iter_shapes(shapes: Any) -> Iterator[Any]:
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _iter_shapes(shape.shapes)
        else:
            yield shape


def _slide_title(slide: Any) -> tuple[str, Any]:
    title_shape = slide.shapes.title
    if title_shape is not None and title_shape.has_text_frame:
        return clean_inline(title_shape.text_frame.text), title_shape
    return "", title_shape


def _sections_by_slide_id(path: Path) -> dict[int, str]:
    """slide id -> PowerPoint section name, from p14:sectionLst (empty when the deck has no sections)."""
    import zipfile

    from ingest.packages.xmlsafe import parse_xml

    with zipfile.ZipFile(path) as zf:
        root = parse_xml(zf.read("ppt/presentation.xml"), f"{path}:ppt/presentation.xml")
    found: dict[int, str] = {}
    for section in root.iter():
        if not str(section.tag).endswith("}section"):
            continue
        name = clean_inline(section.get("name") or "")
        for slide in section.iter():
            if str(slide.tag).endswith("}sldId") and (slide.get("id") or "").isdigit() and name:
                found[int(slide.get("id") or 0)] = name
    return found


def _is_section_header(slide: Any) -> bool:
    layout = slide.slide_layout
    kind = layout._element.get("type") or ""
    return kind == "secHead" or "section header" in (layout.name or "").lower()


def _shape_text(shape: Any) -> str:
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        return render_table(rows)
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines = []
        for paragraph in shape.text_frame.paragraphs:
            text = clean_inline(paragraph.text)
            if text:
                lines.append(text)
        return "\n".join(lines)
    return ""


@register(".pptx")
def load_pptx(path: Path, limits: LoaderLimits) -> LoadedDocument:
    check_zip(path, limits, required="ppt/presentation.xml", fix_corrupt=FIX_CORRUPT)
    from ingest.packages.xmlsafe import check_office_xml

    check_office_xml(path, FIX_CORRUPT)
    sections_by_id = _sections_by_slide_id(path)
    import pptx

    try:
        deck = pptx.Presentation(str(path))
    except Exception as exc:
        raise LoaderError(
            str(path),
            "corrupt",
            f"the file is not a readable .pptx ({type(exc).__name__}: {exc}).",
            FIX_CORRUPT,
        ) from exc

    slides = list(deck.slides)
    first_title = _slide_title(slides[0])[0] if slides else ""
    deck_title = first_title or prettify_stem(path)
    builder = SectionBuilder(path, limits)
    warnings: list[str] = []
    builder.heading(1, deck_title)
    current: str | None = None
    for number, slide in enumerate(slides, start=1):
        title, title_shape = _slide_title(slide)
        title = title or f"Slide {number}"
        section = sections_by_id.get(slide.slide_id) if sections_by_id else None
        if not sections_by_id and _is_section_header(slide):
            section = title
        elif not sections_by_id:
            section = current
        current = section
        if section is None:
            builder.heading(2, title)
        else:
            builder.heading(2, section)  # also closes the previous slide's level-3 title
            if title != section and not (number == 1 and title == deck_title):
                builder.heading(3, title)
        for shape in _iter_shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            builder.text(_shape_text(shape), page=number)
        if slide.has_notes_slide:
            frame = slide.notes_slide.notes_text_frame
            notes = clean_inline(frame.text) if frame is not None else ""
            if notes:
                builder.text(f"Speaker notes: {notes}", page=number)
        builder.flush()
    sections = builder.finish()
    if slides and not sections:
        warnings.append("the slides have no text besides their titles")
    title = pick_title(deck.core_properties.title, first_title, path=path)
    return LoadedDocument(
        path=str(path), kind="pptx", title=title, sections=sections, pages=len(slides), warnings=warnings
    )
