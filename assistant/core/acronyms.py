"""Acronyms a question uses, and how the library spells them out.

Learners ask with the short form ("What's BLUF?", "What does RACI stand for?"); a course spells it out once, where
it introduces it, and uses the short form after that. The long form is what the headings and the explaining
sentences are written in ("Put the bottom line up front"), so a question that keeps only the acronym misses
them. The library's own definition is found in the passages that use the acronym, in the forms course text
spells one out:

* inline, near the acronym: "World Trade Organization (WTO)", "SBI (Situation-Behaviour-Impact)",
  "Situation-Behaviour-Impact, usually shortened to SBI", "often called BLUF, for bottom line up front";
* as a list whose items begin with the letters in order, in a passage that names the acronym:
  "Goal: ... / Reality: ... / Options: ... / Will: ..." under "What GROW stands for".

Nothing here is learned or tuned: a long form must match every letter, in order, one word per letter.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable

from assistant.core.text import LIST_BULLETS

# An acronym as a question writes it: 2-6 capitals, maybe a plural or possessive ("KPIs", "LLC's").
_QUESTION_ACRONYM = re.compile(r"\b([A-Z]{2,6})(?:s|'s|’s)?\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
_ITEM_WORD = re.compile(r"[A-Za-z](?:[A-Za-z']|-(?=[A-Za-z]))*")  # "Time-bound" is one item word
# Small words a long form may skip: "Department of Labor", "Mergers and Acquisitions".
_CONNECTORS = frozenset({"and", "of", "the", "for", "to", "in", "on", "a", "an", "with", "by", "at"})
_MAX_SKIPS = 2
# How far (characters) from the acronym an inline long form may sit: the same sentence, roughly.
_WINDOW = 160
# What may stand between a long form and its acronym: a bracket, a comma or a dash, and the words that say one
# names the other ("(FDIC)", ", usually shortened to SBI", "BLUF, for bottom line up front", "PPA, or project").
_GAP = re.compile(
    r"[\s\"'“”‘’]*[(\[,—–:-]?[\s\"'“”‘’]*(?:(?:or|for|also|usually|often|commonly|simply|i\.e\.|is|are|known|as|"
    r"called|shortened|abbreviated|to|short|which|stands|meaning)\s+)*"
)
_MAX_GAP = 40
# Occurrences of the acronym read per passage (a table that repeats it a thousand times costs no more).
_MAX_HITS = 12
_ROMAN = re.compile(r"[IVX]+")
_ASKS_WHAT = re.compile(
    r"(?:^|[.!?:;,]\s*)\s*(?:so\s+|and\s+|ok\s+)?(?:what|who)(?:'s|’s|s|\s+is|\s+are|\s+was|\s+were|\s+does|\s+do|\s+makes?)\b"
    r"|\b(?:stands?|stood)\s+for\b|\bmeaning\s+of\b|\bdefin(?:e|ition)\b|\b(?:explain|describe)\b|\btell me about\b",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(rf"^\s*(?:[{LIST_BULLETS}]|\d{{1,2}}[.)]|[a-z][.)])\s+")
_MIN_LIST_LETTERS = 3


def asks_what_it_is(question: str) -> bool:
    """Whether the question asks what something is, means or covers ("What's BLUF?", "What does RACI stand
    for?", "Describe the role of the WTO"): where an acronym's meaning is the answer. On a question that only
    uses one, the acronym is a rare word that search finds as it is (spelling out SciFact's claims, "HIV
    (human immunodeficiency virus) trans-activator protein...", lowered train nDCG@10 from 0.740 to 0.736)."""
    return bool(_ASKS_WHAT.search(question))


def question_acronyms(question: str) -> list[str]:
    """The acronyms in `question` that it does not define itself ("nucleoside triphosphate (NTP)"), in order,
    without repeats; none when the question is typed in capitals. A Roman numeral ("type II") is not one."""
    letters = [c for c in question if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) > 0.6 * len(letters):
        return []
    found = dict.fromkeys(m.group(1) for m in _QUESTION_ACRONYM.finditer(question))
    defined = {a for a in found if re.search(rf"\(\s*{a}s?\s*\)", question) or _inline(a, question)}
    return [a for a in found if not _ROMAN.fullmatch(a) and a not in defined]


def _spells(acronym: str, words: list[tuple[str, int, int]], start: int) -> int | None:
    """The index after the last word of a long form of `acronym` beginning at words[start], or None."""
    letters = acronym.lower()
    i, skips = start, 0
    for n, letter in enumerate(letters):
        while i < len(words) and n > 0 and words[i][0].lower() in _CONNECTORS and words[i][0][0].lower() != letter:
            i, skips = i + 1, skips + 1
        if i >= len(words) or skips > _MAX_SKIPS or words[i][0][0].lower() != letter:
            return None
        if words[i][0].lower() in _CONNECTORS and n in (0, len(letters) - 1):
            return None  # a long form begins and ends with a content word
        if words[i][0].upper() == acronym:
            return None  # the acronym itself is not its own long form
        i += 1
    return i


def _inline(acronym: str, text: str) -> list[str]:
    """Long forms of `acronym` in the sentences around its occurrences in `text`, closest first."""
    found: list[tuple[int, str]] = []
    for hit in itertools.islice(re.finditer(rf"\b{acronym}s?\b", text), _MAX_HITS):
        lo, hi = max(0, hit.start() - _WINDOW), min(len(text), hit.end() + _WINDOW)
        window = text[lo:hi]
        words = [(m.group(0), lo + m.start(), lo + m.end()) for m in _WORD.finditer(window)]
        for start in range(len(words)):
            end = _spells(acronym, words, start)
            if end is None:
                continue
            span = words[start:end]
            phrase = text[span[0][1] : span[-1][2]]
            if len(acronym) == 2 and not all(w[0][0].isupper() for w in span if w[0].lower() not in _CONNECTORS):
                continue  # two letters are spelled by chance too often: only a capitalised long form counts
            if "\n" in phrase or any(mark in phrase for mark in ".;:?!()"):
                continue  # a long form does not cross a sentence, a line or a bracket
            if "," in phrase and not all(w[0][0].isupper() for w in span if w[0].lower() not in _CONNECTORS):
                continue  # "Responsible, Accountable, Consulted, Informed", not "assembly, thereby providing"
            gap = text[span[-1][2] : hit.start()] if span[-1][2] <= hit.start() else text[hit.end() : span[0][1]]
            if len(gap) > _MAX_GAP or not _GAP.fullmatch(gap) or not gap.strip(" \"'“”‘’"):
                continue  # "Federal Deposit Insurance Corporation (FDIC)", not "DNA did not appear"
            found.append((len(gap), re.sub(r"\s*[-/]\s*", "-", phrase)))
    return [phrase for _, phrase in sorted(found)]


def _listed(acronym: str, text: str) -> list[str]:
    """Long forms of `acronym` spelled by the first words of consecutive list items or slide lines."""
    items: list[str] = []
    marked = False
    for line in text.splitlines():
        if not line.strip():
            continue
        has_marker = bool(_LIST_MARKER.match(line))
        if not has_marker and marked and items:
            continue  # the wrapped rest of a marked item
        marked = has_marker
        first = _ITEM_WORD.search(_LIST_MARKER.sub("", line))
        items.append(first.group(0) if first else "")
    letters = acronym.lower()
    out = []
    for start in range(len(items) - len(letters) + 1):
        run = items[start : start + len(letters)]
        if all(w and w[0].isupper() and w[0].lower() == c for w, c in zip(run, letters, strict=True)):
            out.append(", ".join(run))
    return out


def _key(form: str) -> str:
    return re.sub(r"[^a-z]+", " ", form.lower()).strip()


def long_forms(acronym: str, texts: Iterable[str], votes: Counter[str] | None = None) -> list[str]:
    """The library's long forms of `acronym` in `texts` (each a passage with its heading trail), the most often
    spelled first (ties: the first met); a passage must use the acronym itself to define it. `votes` receives
    the passages spelling each (by `_key`)."""
    votes = Counter() if votes is None else votes
    first_seen: dict[str, int] = {}
    spelled: dict[str, str] = {}
    for n, text in enumerate(texts):
        if not re.search(rf"\b{acronym}s?\b", text):
            continue
        forms = _inline(acronym, text)[:1]
        if len(acronym) >= _MIN_LIST_LETTERS:
            forms += _listed(acronym, text)[:1]
        for form in dict.fromkeys(forms):
            key = _key(form)
            votes[key] += 1
            first_seen.setdefault(key, n)
            spelled.setdefault(key, form)
    ranked = sorted(votes, key=lambda k: (-votes[k], first_seen[k]))
    return [spelled[k] for k in ranked]


def library_long_form(acronym: str, texts: Iterable[str]) -> str | None:
    """The one long form the passages agree on: the most often spelled, if no other is spelled as often."""
    votes = Counter[str]()
    forms = long_forms(acronym, texts, votes)
    if not forms or (len(forms) > 1 and votes[_key(forms[0])] == votes[_key(forms[1])]):
        return None
    return forms[0]


def spell_out(question: str, forms: dict[str, str]) -> str:
    """`question` with each acronym followed by its long form in brackets ("BLUF (bottom line up front)"),
    unless the question already holds that long form's words."""
    words = {w.lower() for w in _WORD.findall(question)}
    out = question
    for acronym, form in forms.items():
        own = {w.lower() for w in _WORD.findall(form)} - _CONNECTORS
        if own <= words:
            continue
        match = re.search(rf"\b{acronym}(?:s|'s|’s)?\b", out)
        if match is not None:  # spliced, not substituted: a long form is text, never a replacement pattern
            out = f"{out[: match.end()]} ({form}){out[match.end() :]}"
    return out


__all__ = ["asks_what_it_is", "library_long_form", "long_forms", "question_acronyms", "spell_out"]
