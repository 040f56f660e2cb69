"""Hostile text into Markdown for the chat UI: course text, titles, file names, learners' goals and model output.

Course and learner text goes through `escape_md` (every Markdown character escaped, URLs not auto-linked); element
names through `plain_name` (no brackets or markup, so Chainlit's name-to-link matching holds); answer text, which
carries the model's formatting, through `neutralise` (images and links become plain text), and so does a streamed
answer (`SafeStream`). The page's CSP (security.py) blocks remote images as a second line.
"""

from __future__ import annotations

import re
from typing import Any

_MD_CHAR = re.compile(r"([\\`*_{}\[\]()#!|~<>])")
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))", re.MULTILINE)  # a list, rule or heading of its own
_NAME_DROP = re.compile(r"[\\`*_\[\]<>|~#]")
_IMAGE = re.compile(r"!\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\s?(?:\([^)\n]*\)|\[[^\]\n]*\])")
_LINK = re.compile(r"(?<![\\!])\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\s?\(([^)\n]*)\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*\S.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]{1,20}:[^>\s]*)>", re.IGNORECASE)
_EMAIL_AUTOLINK = re.compile(r"<([^>\s@]+@[^>\s]+)>")


_BARE_URL = re.compile(
    r"(?i)(?:\b[a-z][a-z0-9+.-]{1,20}://|\bwww\.)[^\s<>`]*[^\s<>`.,;:!?)\]'\"]"
    r"|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
)


def _code(url: str) -> str:
    """A URL or address as inline code: shown, never auto-linked (GFM links bare URLs even when escaped)."""
    return f"`{url}`"


def _unlink(text: str) -> str:
    """No scheme://, www. or e-mail address is turned into a link by GFM's autolinking."""
    return _BARE_URL.sub(lambda m: _code(m.group(0)), text)


def escape_md(text: str) -> str:
    """Course or learner text shown as exactly that text: no markup, image, link or list of its own."""
    parts: list[str] = []
    last = 0
    text = str(text)
    for match in _BARE_URL.finditer(text):
        parts.append(_MD_CHAR.sub(r"\\\1", text[last : match.start()]))
        parts.append(_code(match.group(0)))
        last = match.end()
    parts.append(_MD_CHAR.sub(r"\\\1", text[last:]))
    return _LINE_START.sub(_escape_line_start, "".join(parts))


def _escape_line_start(match: re.Match[str]) -> str:
    lead, mark = match.group(1), match.group(2)
    return f"{lead}{mark}\\" if mark[0].isdigit() else f"{lead}\\{mark}"  # '1\.' / '\-'


def plain_name(text: str) -> str:
    """Text for an element name: Chainlit links the name where it appears, so it must hold no markup."""
    return " ".join(_NAME_DROP.sub("", str(text)).replace("://", ": //").split())


def neutralise(markdown: str) -> str:
    """Answer text (model output, or sentences of course text) with its formatting, but no image and no link.

    Images become '(image not shown: alt)', links their text only, link definitions are dropped, and bare
    URLs stay plain text. Nothing in an answer can make the learner's browser fetch a URL.
    """
    text = _REF_DEF.sub("", markdown)
    for _ in range(3):  # an image inside a link inside ...
        text = _IMAGE.sub(lambda m: f"(image not shown{': ' if m.group(1).strip() else ''}{m.group(1).strip()})", text)
        text = _LINK.sub(lambda m: m.group(1), text)
    text = _AUTOLINK.sub(lambda m: m.group(1), text)
    text = _EMAIL_AUTOLINK.sub(lambda m: m.group(1), text)
    return _unlink(text)


class SafeStream:
    """Streams answer tokens as `neutralise` shows them: an image or link in model output is never rendered,
    not even for the moment between its last token and the final message. A notice heads the message; a reset
    takes back what was streamed; either makes the next token replace the whole content."""

    def __init__(self, msg: Any) -> None:  # a cl.Message
        self.msg = msg
        self.notice = ""
        self.streamed = ""
        self.shown = ""
        self.replace = False

    async def token(self, text: str) -> None:
        self.streamed += text
        safe = neutralise(self.notice + self.streamed)
        if not self.replace and safe.startswith(self.shown):
            if safe != self.shown:
                await self.msg.stream_token(safe[len(self.shown) :])
        else:  # a notice, a reset, or an earlier part changed (a link closed): replace what is shown
            await self.msg.stream_token(safe, is_sequence=True)
            self.replace = False
        self.shown = safe

    def reset(self) -> None:
        self.streamed, self.replace = "", True

    def set_notice(self, text: str) -> None:
        self.notice, self.replace = text, True
