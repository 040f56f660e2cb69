"""Markdown loader (.md, .markdown) built on markdown-it-py tokens.

ATX and setext headings give the heading trail; YAML front matter is skipped (its `title` is
used); fenced and indented code is kept verbatim as body text, so '# comment' lines inside code
are never headings; tables become 'Header: value; ...' lines; list items keep a '- ' prefix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
_TAG = re.compile(r"<[^>]*>")
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


def _inline_text(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or []:
        kind = child.type
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "image":
            parts.append(child.content)
    return "".join(parts)


@register(".md", ".markdown")
def load_markdown(path: Path, limits: LoaderLimits) -> LoadedDocument:
    from markdown_it import MarkdownIt

    raw, warnings = decode_text(path, path.read_bytes())
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    check_text_size(path, raw, limits)
    meta, body = split_front_matter(raw)

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    tokens = md.parse(body)

    builder = SectionBuilder(path, limits)
    lists: list[list[Any]] = []  # [ordered?, next number]
    pending_prefix = ""
    table_rows: list[list[str]] | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        if kind == "heading_open":
            inline = tokens[i + 1]
            builder.heading(int(tok.tag[1:]), _inline_text(inline))
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
            table_rows[-1].append(_inline_text(tokens[i + 1]))
            i += 3
            continue
        elif kind == "table_close":
            builder.text(render_table(table_rows or []))
            table_rows = None
        elif kind == "inline" and table_rows is None:
            builder.text(pending_prefix + _inline_text(tok))
            pending_prefix = ""
        elif kind in ("fence", "code_block"):
            builder.text(tok.content, preformatted=True)
        elif kind == "html_block":
            builder.text(_TAG.sub(" ", _NON_CONTENT.sub(" ", tok.content)))
        i += 1

    sections = builder.finish()
    if not sections:
        warnings.append("the file has headings but no body text")
    title = pick_title(meta.get("title"), builder.first_h1, path=path)
    return LoadedDocument(path=str(path), kind="markdown", title=title, sections=sections, warnings=warnings)
