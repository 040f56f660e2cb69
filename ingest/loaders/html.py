"""HTML loader (.html, .htm) using BeautifulSoup with the stdlib 'html.parser'.

h1–h6 give the heading trail; script, style, nav (and other non-content elements) are dropped;
block elements become line breaks, list items keep a '- ' prefix and tables become
'Header: value; ...' lines. Title: <title>, else the first h1, else the file stem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from assistant.core.types import LoadedDocument, Section
from ingest.loaders import (
    LoaderLimits,
    SectionBuilder,
    check_text_size,
    clean_inline,
    decode_text,
    pick_title,
    register,
    render_table,
    usable_title,
)

_WS = re.compile(r"\s+")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_DROP = {"script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "head", "button"}
_BLOCK = {
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "ul",
    "caption",
}


class _Walker:
    def __init__(self, builder: SectionBuilder) -> None:
        self.builder = builder
        self.buf: list[str] = []

    def flush(self) -> None:
        if self.buf:
            self.builder.text("".join(self.buf))
            self.buf = []

    def walk(self, node: Any) -> None:
        from bs4 import NavigableString, Tag
        from bs4.element import CData, Comment, Declaration, Doctype, ProcessingInstruction

        skipped = (Comment, Declaration, Doctype, ProcessingInstruction)
        for child in node.children:
            if isinstance(child, NavigableString):
                if isinstance(child, skipped) and not isinstance(child, CData):
                    continue
                self.buf.append(_WS.sub(" ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = (child.name or "").lower()
            if name in _DROP:
                continue
            if name in _HEADINGS:
                self.flush()
                self.builder.heading(_HEADINGS[name], child.get_text(" "))
            elif name == "br":
                self.buf.append("\n")
            elif name == "table":
                self.flush()
                rows = [
                    [cell.get_text(" ") for cell in tr.find_all(["th", "td"])]
                    for tr in child.find_all("tr")
                    if tr.find_parent("table") is child
                ]
                self.builder.text(render_table(rows))
            elif name == "pre":
                self.flush()
                self.builder.text(child.get_text(), preformatted=True)
            elif name == "img":
                alt = clean_inline(str(child.get("alt") or ""))
                if alt:
                    self.buf.append(f" {alt} ")
            elif name == "li":
                self.buf.append("\n- ")
                self.walk(child)
                self.buf.append("\n")
            elif name in _BLOCK:
                self.buf.append("\n")
                self.walk(child)
                self.buf.append("\n")
            else:
                self.walk(child)


def parse_html(path: Path, text: str, limits: LoaderLimits) -> tuple[str | None, list[Section]]:
    """(title candidate, sections) of an HTML string; `path` only names it in errors.

    Also used for the HTML pages inside e-learning packages, which are read from the archive, not disk.
    """
    from bs4 import BeautifulSoup

    check_text_size(path, text, limits)
    soup = BeautifulSoup(text, "html.parser")
    title_tag = soup.find("title")
    meta_title = title_tag.get_text(" ") if title_tag is not None else None

    builder = SectionBuilder(path, limits)
    walker = _Walker(builder)
    body = soup.find("body")
    walker.walk(body if body is not None else soup)
    walker.flush()
    sections = builder.finish()
    return usable_title(meta_title) or builder.first_h1, sections


@register(".html", ".htm")
def load_html(path: Path, limits: LoaderLimits) -> LoadedDocument:
    text, warnings = decode_text(path, path.read_bytes())
    title_candidate, sections = parse_html(path, text, limits)
    if not sections:
        warnings.append("the page has no visible body text")
    title = pick_title(title_candidate, path=path)
    return LoadedDocument(path=str(path), kind="html", title=title, sections=sections, warnings=warnings)
