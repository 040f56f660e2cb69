"""Markdown loader (.md, .markdown) built on markdown-it-py tokens.

ATX and setext headings give the heading trail; YAML front matter is skipped (its `title` is
used); fenced and indented code is kept verbatim as body text, so '# comment' lines inside code
are never headings; tables become 'Header: value; ...' lines; list items keep a '- ' prefix.

Bounded as the parse goes: the text is parsed in pieces of about 16 KB, cut only where a new block starts outside
fences and raw HTML, so a 5 MB file never holds millions of tokens at once, and the limits on headings, sections,
blocks and characters fail the file as soon as they are crossed rather than after a full parse. (A link reference
defined in a later piece than its use stays literal text.) Markdown nested deeper than markdown-it's limit (20 levels
of quotes or lists), which markdown-it would drop, is read as plain text with a warning that says so. Inline HTML
tags are dropped but anything else in angle brackets is text (`Okapi <T> generics` keeps `<T>`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from markdown_it.common.html_blocks import block_names

from assistant.core.errors import LoaderError
from assistant.core.types import LoadedDocument
from ingest.loaders import (
    LoaderLimits,
    SectionBuilder,
    check_text_size,
    decode_text,
    pick_title,
    register,
    render_table,
)

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_INLINE_TAGS = [
    "a",
    "abbr",
    "acronym",
    "b",
    "bdi",
    "bdo",
    "big",
    "br",
    "button",
    "cite",
    "code",
    "data",
    "del",
    "dfn",
    "em",
    "font",
    "i",
    "img",
    "input",
    "ins",
    "kbd",
    "label",
    "mark",
    "meter",
    "object",
    "output",
    "picture",
    "progress",
    "q",
    "ruby",
    "rp",
    "rt",
    "s",
    "samp",
    "script",
    "select",
    "slot",
    "small",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "sup",
    "svg",
    "template",
    "textarea",
    "time",
    "tt",
    "u",
    "var",
    "video",
    "audio",
    "canvas",
    "embed",
    "iframe",
    "math",
    "wbr",
]
_HTML_NAMES = "|".join(sorted({*block_names, *_INLINE_TAGS}, key=len, reverse=True))
# Only real HTML tags (and comments, processing instructions, declarations) are markup; `<T>` or `<K, V>` is text.
_TAG = re.compile(
    rf"</?(?:{_HTML_NAMES}|[a-z][a-z0-9]*-[\w-]*)(?=[\s/>])[^>]*>|<!--.*?-->|<\?.*?\?>|<![A-Za-z][^>]*>",
    re.IGNORECASE | re.DOTALL,
)
_PIECE_CHARS = 16 * 1024
# Where a piece may end: before a heading or a list item at the margin, or a margin line after a blank one.
_BLOCK_START = re.compile(r"(?:#{1,6}(?:[ \t]|$)|[-+*][ \t]|\d{1,9}[.)][ \t])")
_HEADING = re.compile(r"#{1,6}[ \t]+\S")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_RAW_OPEN = re.compile(r"^ {0,3}(?:<(script|pre|style|textarea)(?:\s|>|$)|(<!--)|(<\?)|(<!\[CDATA\[))", re.IGNORECASE)
_CONTAINER = re.compile(r"^(?:[ \t]*(?:>|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t])))+[ \t]*")
_NON_CONTENT = re.compile(r"<!--.*?(?:-->|\Z)|<(script|style)\b.*?(?:</\1\s*>|\Z)", re.DOTALL | re.IGNORECASE)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Return (front matter, rest). Only a leading '---' block that parses as a YAML mapping counts."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError:
        return {}, text
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return {}, text
    # keep line numbers stable: replace the block with blank lines
    return data, "\n" * match.group(0).count("\n") + text[match.end() :]


def _inline_text(token: Any, max_nesting: int = 10**6) -> str:
    children = token.children or []
    if any(child.level >= max_nesting - 1 for child in children):
        return str(token.content)  # markdown-it stopped inside: keep the source rather than lose the rest
    parts: list[str] = []
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "html_inline":
            parts.append(_TAG.sub("", child.content))
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "image":
            parts.append(child.content)
    return "".join(parts)


class _Over(Exception):
    """The line scan found more headings ('headings') or blocks ('blocks') than the limits allow."""


def _pieces(
    body: str, size: int, max_blocks: int | None = None, max_headings: int | None = None
) -> list[tuple[int, str]]:
    """Consecutive pieces of about `size` characters (size 0: one per block) as (first line number, text).

    Lines that start a block at the margin (a heading, a list item, a line after a blank one), and the headings with
    text among them, are lower bounds on the blocks and headings, counted without parsing: _Over is raised as soon as
    either passes its maximum, so a hostile file is refused after the lines that prove it."""
    lines = body.split("\n")
    pieces: list[tuple[int, str]] = []
    start, length, starts, headings = 0, 0, 0, 0
    fence: str | None = None
    raw_end: str | None = None
    previous_blank = True
    for i, line in enumerate(lines):
        if fence is None and raw_end is None:
            at_margin = bool(line) and not line[0].isspace()
            block_start = at_margin and (previous_blank or bool(_BLOCK_START.match(line)))
            if block_start:
                starts += 1
                headings += bool(_HEADING.match(line))
                if max_headings is not None and headings > max_headings:
                    raise _Over("headings")
                if max_blocks is not None and starts > max_blocks:
                    raise _Over("blocks")
            if i > start and length >= size and (block_start or (size and length >= 4 * size)):
                pieces.append((start, "\n".join(lines[start:i])))
                start, length = i, 0
        length += len(line) + 1
        previous_blank = not line.strip()
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
        elif raw_end is not None:
            if raw_end in line.lower():
                raw_end = None
        elif match := _FENCE.match(line):
            fence = match.group(1)
        elif match := _RAW_OPEN.match(line):
            end = f"</{match.group(1).lower()}>" if match.group(1) else "-->" if match.group(2) else "?>"
            if match.group(4):
                end = "]]>"
            if end not in line.lower()[match.end() :]:
                raw_end = end
    if start < len(lines):
        pieces.append((start, "\n".join(lines[start:])))
    return pieces


class _MarkdownReader:
    """Feeds markdown-it tokens, piece by piece, into a SectionBuilder, counting blocks as it goes."""

    _BLOCKS = frozenset(
        ["paragraph_open", "heading_open", "list_item_open", "fence", "code_block", "html_block", "tr_open", "hr"]
    )

    def __init__(self, path: Path, limits: LoaderLimits, warnings: list[str]) -> None:
        from markdown_it import MarkdownIt

        self.md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
        self.max_nesting = int(self.md.options["maxNesting"])
        self.env: dict[str, Any] = {}  # link references carry over from one piece to the next
        self.path, self.limits, self.warnings = path, limits, warnings
        self.builder = SectionBuilder(path, limits)
        self.blocks = 0
        self.flattened: list[tuple[int, int]] = []

    def read(self, body: str) -> None:
        # Refused before any parse: 1.25 M list items or headings need no tokens to be counted.
        try:
            pieces = _pieces(body, _PIECE_CHARS, self.limits.max_blocks, self.limits.max_sections)
        except _Over as over:
            raise self.builder.too_many() if over.args[0] == "headings" else self._too_many_blocks() from None
        for first, piece in pieces:
            tokens = self.md.parse(piece, self.env)
            if not self._too_deep(tokens):
                self._feed(tokens)
                continue
            for offset, block in _pieces(piece, 0):  # find the blocks markdown-it cut short, read the rest as usual
                tokens = self.md.parse(block, self.env)
                if self._too_deep(tokens):
                    self._plain(block, first + offset)
                else:
                    self._feed(tokens)
        if self.flattened:
            where = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.flattened[:5])
            more = f" and {len(self.flattened) - 5} more" if len(self.flattened) > 5 else ""
            self.warnings.append(
                f"lines {where}{more} nest quotes or lists more than {self.max_nesting} levels deep, deeper than "
                "Markdown parsing goes; they were read as plain text"
            )

    def _too_deep(self, tokens: list[Any]) -> bool:
        return any(t.level >= self.max_nesting - 1 for t in tokens)

    def _plain(self, block: str, first: int) -> None:
        for line in block.split("\n"):
            self._count()
            self.builder.text(_CONTAINER.sub("", line))
        self.flattened.append((first + 1, first + block.count("\n") + 1))

    def _count(self) -> None:
        self.blocks += 1
        if self.blocks > self.limits.max_blocks:
            raise self._too_many_blocks()

    def _too_many_blocks(self) -> LoaderError:
        return LoaderError(
            str(self.path),
            "too_large",
            f"the document has more than {self.limits.max_blocks:,} blocks (paragraphs, list items, table rows).",
            "split it into smaller modules and re-add them.",
        )

    def _feed(self, tokens: list[Any]) -> None:
        builder = self.builder
        lists: list[list[Any]] = []  # [ordered?, next number]
        pending_prefix = ""
        table_rows: list[list[str]] | None = None
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            kind = tok.type
            if kind in self._BLOCKS:
                self._count()
            if kind == "heading_open":
                builder.heading(int(tok.tag[1:]), _inline_text(tokens[i + 1], self.max_nesting))
                i += 3
                continue
            if kind == "bullet_list_open":
                lists.append([False, 1])
            elif kind == "ordered_list_open":
                start = tok.attrGet("start")
                lists.append([True, int(start) if start is not None else 1])
            elif kind in ("bullet_list_close", "ordered_list_close"):
                if lists:
                    lists.pop()
            elif kind == "list_item_open":
                if lists and lists[-1][0]:
                    pending_prefix = f"{lists[-1][1]}. "
                    lists[-1][1] += 1
                else:
                    pending_prefix = "- "
            elif kind == "table_open":
                table_rows = []
            elif kind == "tr_open" and table_rows is not None:
                table_rows.append([])
            elif kind in ("th_open", "td_open") and table_rows is not None:
                table_rows[-1].append(_inline_text(tokens[i + 1], self.max_nesting))
                i += 3
                continue
            elif kind == "table_close":
                builder.text(render_table(table_rows or []))
                table_rows = None
            elif kind == "inline" and table_rows is None:
                builder.text(pending_prefix + _inline_text(tok, self.max_nesting))
                pending_prefix = ""
            elif kind in ("fence", "code_block"):
                builder.text(tok.content, preformatted=True)
            elif kind == "html_block":
                builder.text(_TAG.sub(" ", _NON_CONTENT.sub(" ", tok.content)))
            i += 1


@register(".md", ".markdown")
def load_markdown(path: Path, limits: LoaderLimits) -> LoadedDocument:
    raw, warnings = decode_text(path, path.read_bytes())
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    check_text_size(path, raw, limits)
    meta, body = split_front_matter(raw)

    reader = _MarkdownReader(path, limits, warnings)
    reader.read(body)
    builder = reader.builder
    sections = builder.finish()
    if not sections:
        warnings.append(
            "the file has headings but no body text" if builder.trail or builder.first_h1 else "the file has no text"
        )
    title = pick_title(meta.get("title"), builder.first_h1, path=path)
    return LoadedDocument(path=str(path), kind="markdown", title=title, sections=sections, warnings=warnings)
