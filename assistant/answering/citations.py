"""Citation keys in, locations out. Keys the model invents are dropped; numbering follows first use.

One numbering for streamed and saved answers: `CitationStream` turns model text into the answer's text as
tokens arrive, and `cite` runs the same object over the whole text at once, so what the learner watched being
written is exactly what is saved.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.core.types import Citation, Evidence

_KEY_GROUP = re.compile(r"\[((?:S\d+)(?:\s*[,;]\s*S\d+)*)\]")
# What the start of a key group looks like before its closing bracket has arrived.
_OPEN_GROUP = re.compile(r"\[(?:S\d*(?:\s*[,;]\s*(?:S\d*)?)*)?")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:])")
_TRAILING_SPACE = re.compile(r"\s+$")
_NUMBERED = re.compile(r"\[(S\d+)\]")


def _citation(number: int, item: Evidence) -> Citation:
    return Citation(
        key=str(number),
        location=item.chunk.location,
        label=item.chunk.location.label(),
        snippet=item.chunk.text,
        chunk_id=item.chunk.id,
    )


class CitationStream:
    """Model text with [S3] / [S1, S2] keys in, answer text with [1], [2] out, token by token.

    A group's keys become one bracket per key, keys never given are dropped (with the space before them), and
    the first key used becomes [1]. Text that might still turn into a key (an open '[S1, S'), and trailing
    whitespace (a dropped key may be followed by punctuation), are held back until the next token decides.
    """

    def __init__(self, evidence: Sequence[Evidence]) -> None:
        self._by_key = {e.key: e for e in evidence}
        self._order: dict[str, int] = {}
        self.citations: list[Citation] = []
        self._held = ""
        self._started = False

    def _number(self, match: re.Match[str]) -> str:
        out = []
        for key in (k.strip() for k in re.split(r"[,;]", match.group(1))):
            item = self._by_key.get(key)
            if item is None:
                continue
            if key not in self._order:
                self._order[key] = len(self._order) + 1
                self.citations.append(_citation(self._order[key], item))
            out.append(f"[{self._order[key]}]")
        return "".join(out)

    def _render(self, text: str) -> str:
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", _KEY_GROUP.sub(self._number, text))
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        return text

    def feed(self, token: str) -> str:
        """The text that can be shown now (possibly empty)."""
        text = self._held + token
        cut = text.rfind("[")
        if cut != -1 and _OPEN_GROUP.fullmatch(text, cut):
            ready, rest = text[:cut], text[cut:]
        else:
            ready, rest = text, ""
        ready = self._render(ready)
        space = _TRAILING_SPACE.search(ready)
        if space is not None:
            ready, rest = ready[: space.start()], ready[space.start() :] + rest
        self._held = rest
        return ready

    def finish(self) -> str:
        """The held-back tail, once the model is done."""
        text, self._held = self._render(self._held), ""
        return text.rstrip()


def cite(text: str, evidence: Sequence[Evidence]) -> tuple[str, list[Citation]]:
    """The whole model text through one CitationStream: (answer text, citations in order of first use)."""
    stream = CitationStream(evidence)
    body = stream.feed(text) + stream.finish()
    return body, stream.citations


def number_citations(text: str, used: Sequence[Evidence]) -> tuple[str, list[Citation]]:
    """Replace [S<k>] keys by [1], [2]... in order of first use, with a Citation per number (extractive text).

    Keys not among `used` are dropped.
    """
    stream = CitationStream(used)

    def replace(match: re.Match[str]) -> str:
        return stream._number(match)

    return _NUMBERED.sub(replace, text), stream.citations
