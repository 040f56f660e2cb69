"""Per-tool content extractors for one SCORM resource: plain HTML, H5P, Storyline, Rise, Captivate, iSpring.

Detection, in order, looks at the resource's launch file (``href``) and the files around it:
- Flash-only (``.swf`` launch file, or pages that only embed one): reported ``flash_only``;
- Articulate Storyline HTML5: ``html5/data/js/data.js`` beside the launch page. ``globalProvideData('data', ...)``
  lists scenes and their slide ids; each ``html5/data/js/<slide id>.js`` provides ``('slide', ...)`` whose
  text boxes carry ``vartext.blocks[].spans[].text``. Trail: scene › slide title.
- Articulate Rise: the launch page (``scormcontent/index.html`` in exports) passes the course JSON to the player
  as a literal, base64-encoded (``deserialize("...")`` / ``courseData = "..."``) or plain. ``course.lessons[]``
  (``type: "section"`` lessons are section headers) and their ``items[].items[]`` give headings, paragraphs,
  captions, card sides and answers. Trail: section › lesson.
- H5P: ``h5p.json`` (title, mainLibrary) and ``content/content.json``; text fields (text, question, answers,
  tips, feedback, descriptions...) are collected; Course Presentation slides and Interactive Book chapters give
  the trail. UI strings (``l10n``, button labels) are skipped.
- Adobe Captivate (``assets/js/CPM.js``) and iSpring (``data/*.js`` with iSpring markers): their accessibility
  strings (``accstr``, ``accessibleText``...) are read where present, else the launch page's visible text.
- Anything else: the HTML pages of the resource (``href`` first, then its other ``.html`` files) via the HTML
  loader, whose headings give the trail.
Text that cannot be found raises ``no_text`` with a fix ("publish with accessible text").
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.core.errors import LoaderError
from assistant.core.types import Section
from ingest.loaders import LoaderLimits, clean_inline, decode_text
from ingest.packages.archive import PackageArchive
from ingest.packages.jsdata import as_json, assigned_literals, call_arguments, string_values
from ingest.packages.scorm import Resource

FIX_NO_TEXT = (
    "publish the course with text (HTML5 output with 'accessible text' / alt text enabled), or add a "
    "text handout (PDF, DOCX) or captions to the course folder."
)
FIX_FLASH = "republish the course as HTML5 (Flash is no longer played or read), then re-add the package."
_HTML = (".html", ".htm")


@dataclass
class Extracted:
    kind: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)


def _text_of(fragment: str) -> str:
    """Visible text of an HTML fragment (tool data stores rich text as HTML)."""
    if "<" not in fragment and "&" not in fragment:
        return clean_inline(fragment)
    from bs4 import BeautifulSoup

    return clean_inline(BeautifulSoup(fragment, "html.parser").get_text(" "))


def _read_text(archive: PackageArchive, name: str) -> str:
    return decode_text(Path(name), archive.read(name))[0]


def _near(archive: PackageArchive, href: str, suffix: str) -> str | None:
    """The member `suffix` in the launch file's folder or above it (up to the package root)."""
    folder = posixpath.dirname(href)
    while True:
        candidate = posixpath.join(folder, suffix) if folder else suffix
        if archive.exists(candidate):
            return candidate
        if not folder:
            return None
        folder = posixpath.dirname(folder)


# -- Storyline --------------------------------------------------------------------------------------------
def _provided(text: str, kind: str) -> Any:
    for args in call_arguments(text, "globalProvideData"):
        if len(args) >= 2 and args[0] == kind:
            return as_json(args[1])
    return None


def _vartext(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        vartext = node.get("vartext")
        if isinstance(vartext, dict):
            for block in vartext.get("blocks") or []:
                spans = block.get("spans") if isinstance(block, dict) else None
                line = "".join(str(s.get("text", "")) for s in spans or [] if isinstance(s, dict))
                line = clean_inline(line)
                if line and line not in out:
                    out.append(line)
        for key, value in node.items():
            if key != "vartext":
                _vartext(value, out)
    elif isinstance(node, list):
        for value in node:
            _vartext(value, out)


def _storyline(archive: PackageArchive, data_js: str) -> Extracted:
    folder = posixpath.dirname(data_js)
    data = _provided(_read_text(archive, data_js), "data")
    refs: list[tuple[str, str]] = []  # (scene title, slide id)
    if isinstance(data, dict):
        for n, scene in enumerate(data.get("scenes") or [], start=1):
            if not isinstance(scene, dict):
                continue
            scene_title = clean_inline(str(scene.get("title") or scene.get("name") or f"Scene {n}"))
            for slide in scene.get("slides") or []:
                ident = slide.get("id") if isinstance(slide, dict) else slide
                if isinstance(ident, str):
                    refs.append((scene_title, ident))
    if not refs:  # no scene list: every slide file in the folder, in name order
        refs = [("", Path(n).stem) for n in archive.names() if posixpath.dirname(n) == folder and n != data_js]
    sections: list[Section] = []
    for number, (scene, ident) in enumerate(refs, start=1):
        name = posixpath.join(folder, f"{ident}.js")
        if not archive.exists(name):
            continue
        slide = _provided(_read_text(archive, name), "slide")
        if not isinstance(slide, dict):
            continue
        lines: list[str] = []
        _vartext(slide, lines)
        notes = slide.get("notes")
        if isinstance(notes, str) and _text_of(notes):
            lines.append("Speaker notes: " + _text_of(notes))
        title = clean_inline(str(slide.get("title") or "")) or f"Slide {number}"
        body = [line for line in lines if line != title]
        if body:
            trail = (scene, title) if scene else (title,)
            sections.append(Section(heading_path=trail, text="\n".join(body), page=number))
    return Extracted("storyline", sections)


# -- Rise ---------------------------------------------------------------------------------------------------
_RISE_TEXT_KEYS = ("heading", "title", "paragraph", "caption", "description", "feedback", "text")


def _rise_texts(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for key in _RISE_TEXT_KEYS:
            value = node.get(key)
            if isinstance(value, str) and (text := _text_of(value)) and text not in out:
                out.append(text)
        for key in ("items", "answers", "front", "back", "choices"):
            if key in node:
                _rise_texts(node[key], out)
    elif isinstance(node, list):
        for value in node:
            _rise_texts(value, out)


def find_rise_course(text: str) -> dict[str, Any] | None:
    candidates = [a[0] for a in call_arguments(text, "deserialize") if a]
    candidates += assigned_literals(text, "courseData")
    for value in candidates:
        data = as_json(value)
        if isinstance(data, dict):
            course = data.get("course", data)
            if isinstance(course, dict) and isinstance(course.get("lessons"), list):
                return course
    return None


def _rise_course(archive: PackageArchive, href: str, pages: list[str]) -> dict[str, Any] | None:
    """Rise's course JSON from the resource's pages or the export's scormcontent/index.html."""
    candidates = list(pages)
    if (content := _near(archive, href, "scormcontent/index.html")) and content not in candidates:
        candidates.append(content)
    for name in candidates:
        text = _read_text(archive, name)
        if "deserialize" in text or "courseData" in text:
            course = find_rise_course(text)
            if course is not None:
                return course
    return None


def _rise(course: dict[str, Any]) -> Extracted:
    sections: list[Section] = []
    header = ""
    for lesson in course["lessons"]:
        if not isinstance(lesson, dict):
            continue
        title = _text_of(str(lesson.get("title") or ""))
        if lesson.get("type") == "section":
            header = title
            continue
        lines: list[str] = []
        if isinstance(lesson.get("description"), str) and _text_of(lesson["description"]):
            lines.append(_text_of(lesson["description"]))
        _rise_texts(lesson.get("items") or [], lines)
        body = [line for line in lines if line != title]
        if body:
            trail = tuple(t for t in (header, title or "Lesson") if t)
            sections.append(Section(heading_path=trail, text="\n".join(body)))
    return Extracted("rise", sections)


# -- H5P ----------------------------------------------------------------------------------------------------
_H5P_TEXT_KEYS = {
    "text",
    "question",
    "questions",
    "answer",
    "answers",
    "correct",
    "tip",
    "feedback",
    "description",
    "introduction",
    "header",
    "title",
    "taskDescription",
    "chosenFeedback",
    "notChosenFeedback",
    "wrong",
    "textField",
}
_H5P_SKIP = {"l10n", "behaviour", "metadata", "overallFeedback", "library", "subContentId", "copyright", "UI", "a11y"}


def _h5p_texts(node: Any, out: list[str], key: str = "") -> None:
    """Strings under text keys, in document order; a list of strings takes its parent's key."""
    if isinstance(node, str):
        if key in _H5P_TEXT_KEYS and (text := _text_of(node)) and text not in out:
            # H5P marks Blanks with *answer* and Drag Text with *word*: keep the words, drop the markers.
            out.append(re.sub(r"\*([^*]+)\*", r"\1", text))
    elif isinstance(node, dict):
        for k, v in node.items():
            if k not in _H5P_SKIP:
                _h5p_texts(v, out, k)
    elif isinstance(node, list):
        for v in node:
            _h5p_texts(v, out, key)


def h5p_document(archive: PackageArchive, h5p_json: str) -> tuple[str, Extracted]:
    """(title from h5p.json, sections of content/content.json beside it)."""
    meta = as_json(_read_text(archive, h5p_json))
    title = clean_inline(str(meta.get("title") or "")) if isinstance(meta, dict) else ""
    return title, _h5p(archive, h5p_json, title)


def _h5p(archive: PackageArchive, h5p_json: str, title: str) -> Extracted:
    content_name = posixpath.join(posixpath.dirname(h5p_json), "content", "content.json")
    if not archive.exists(content_name):
        raise LoaderError(f"{archive.where}:{h5p_json}", "no_text", "has no content/content.json.", FIX_NO_TEXT)
    content = as_json(_read_text(archive, content_name))
    sections: list[Section] = []
    if isinstance(content, dict) and isinstance(content.get("presentation"), dict):
        for number, slide in enumerate(content["presentation"].get("slides") or [], start=1):
            lines: list[str] = []
            _h5p_texts(slide, lines)
            if lines:
                sections.append(Section(heading_path=(title, f"Slide {number}"), text="\n".join(lines), page=number))
    elif isinstance(content, dict) and isinstance(content.get("chapters"), list):
        for number, chapter in enumerate(content["chapters"], start=1):
            chapter_meta = chapter.get("metadata") if isinstance(chapter, dict) else None
            name = clean_inline(str((chapter_meta or {}).get("title") or f"Chapter {number}"))
            lines = []
            _h5p_texts(chapter, lines)
            if lines:
                sections.append(Section(heading_path=(title, name), text="\n".join(lines)))
    else:
        lines = []
        _h5p_texts(content, lines)
        if lines:
            sections.append(Section(heading_path=(title,) if title else (), text="\n".join(lines)))
    return Extracted("h5p", sections)


# -- Captivate / iSpring -------------------------------------------------------------------------------------
_ACCESSIBLE_KEYS = ("accstr", "accessibleText", "accText", "altText", "slideText", "notesText")


def _accessible(archive: PackageArchive, names: list[str], kind: str) -> Extracted:
    lines: list[str] = []
    for name in names:
        for value in string_values(_read_text(archive, name), _ACCESSIBLE_KEYS):
            text = _text_of(value)
            if text and text not in lines:
                lines.append(text)
    return Extracted(kind, [Section(text="\n".join(lines))] if lines else [])


# -- plain HTML ---------------------------------------------------------------------------------------------
def _html(archive: PackageArchive, pages: list[str], limits: LoaderLimits) -> Extracted:
    from ingest.loaders.html import parse_html

    sections: list[Section] = []
    warnings: list[str] = []
    for name in pages:
        text, warned = decode_text(Path(name), archive.read(name))
        warnings.extend(f"{name}: {w}" for w in warned)
        sections.extend(parse_html(Path(f"{archive.where}:{name}"), text, limits)[1])
    return Extracted("scorm-html", sections, warnings)


def _flash_only(archive: PackageArchive, href: str, pages: list[str]) -> bool:
    if href.lower().endswith(".swf"):
        return True
    if not pages or not any(n.lower().endswith(".swf") for n in archive.names()):
        return False
    launch = _read_text(archive, pages[0]).lower()
    return ".swf" in launch and not re.sub(r"<[^>]+>|\s", "", re.sub(r"<script.*?</script>", "", launch, flags=re.S))


def extract_resource(archive: PackageArchive, resource: Resource, limits: LoaderLimits) -> Extracted:
    """The text of one resource, by authoring tool; raises LoaderError when nothing readable is found."""
    href = resource.href or ""
    where = f"{archive.where}:{href or resource.identifier}"
    pages = [href] if href.lower().endswith(_HTML) and archive.exists(href) else []
    pages += [f for f in resource.files if f.lower().endswith(_HTML) and f not in pages and archive.exists(f)]
    if href and not archive.exists(href):
        raise LoaderError(where, "missing", "the manifest's launch file is not in the package.", FIX_NO_TEXT)
    if _flash_only(archive, href, pages):
        raise LoaderError(where, "flash_only", "is Flash-only content; it has no readable text.", FIX_FLASH)
    extracted: Extracted | None = None
    if data_js := _near(archive, href, "html5/data/js/data.js"):
        extracted = _storyline(archive, data_js)
    elif (course := _rise_course(archive, href, pages)) is not None:
        extracted = _rise(course)
    elif h5p_json := _near(archive, href, "h5p.json"):
        extracted = h5p_document(archive, h5p_json)[1]
    elif cpm := _near(archive, href, "assets/js/CPM.js"):
        extracted = _accessible(archive, [cpm], "captivate")
    elif pages and "ispring" in _read_text(archive, pages[0]).lower():
        data = [n for n in archive.names() if n.startswith("data/") and n.endswith(".js")]
        extracted = _accessible(archive, data, "ispring")
    if extracted is not None and not extracted.sections and pages:
        fallback = _html(archive, pages, limits)
        extracted = Extracted(extracted.kind, fallback.sections, extracted.warnings + fallback.warnings)
    if extracted is None:
        extracted = _html(archive, pages, limits)
    if not extracted.sections:
        tool = {"scorm-html": "the page"}.get(extracted.kind, f"this {extracted.kind} export")
        raise LoaderError(
            where, "no_text", f"{tool} has no readable text (only images, media or scripts).", FIX_NO_TEXT
        )
    return extracted
