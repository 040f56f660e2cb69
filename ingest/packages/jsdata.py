"""Data out of JavaScript files without running them: string literals and JSON values are parsed, never evaluated.

Authoring tools ship their course text as JS that calls a player function with a literal, e.g. Storyline's
``window.globalProvideData('slide', '{"title": ...}')`` or Rise's ``deserialize("eyJjb3Vyc2Ui...")``. This module
reads such literals with a small tokenizer (quotes and escapes only) and ``json`` — no JS engine, no ``eval``;
any other code in the file is ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _escape(text: str, j: int) -> tuple[str, int]:
    """The character of the escape at text[j] ('\\') and the index after it; malformed escapes stay as written."""
    nxt = text[j + 1]
    try:
        if nxt == "u" and text.startswith("{", j + 2):
            end = text.index("}", j + 3)
            return chr(int(text[j + 3 : end], 16)), end + 1
        if nxt == "u":
            return chr(int(text[j + 2 : j + 6], 16)), j + 6
        if nxt == "x":
            return chr(int(text[j + 2 : j + 4], 16)), j + 4
    except ValueError:  # includes chr() of an out-of-range code point
        return nxt, j + 2
    if nxt == "\n":
        return "", j + 2
    return _ESCAPES.get(nxt, nxt), j + 2


def read_string(text: str, i: int) -> tuple[str, int] | None:
    """The JS string literal starting at text[i] (quote char) and the index after it, or None."""
    quote = text[i] if i < len(text) else ""
    if quote not in ("'", '"', "`"):
        return None
    out: list[str] = []
    j = i + 1
    n = len(text)
    while j < n:
        ch = text[j]
        if ch == quote:  # JS escapes emoji as surrogate pairs: join them, replace lone halves
            value = "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return value, j + 1
        if quote == "`" and ch == "$" and text.startswith("${", j):
            return None  # a template with code in it is not data
        if ch == "\\" and j + 1 < n:
            decoded, j = _escape(text, j)
            out.append(decoded)
            continue
        if ch == "\n" and quote != "`":
            return None
        out.append(ch)
        j += 1
    return None


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def read_literal(text: str, i: int) -> tuple[Any, int] | None:
    """A string literal, or a JSON object/array/number written in the JS, at text[i]; None for anything else."""
    i = _skip_space(text, i)
    if i >= len(text):
        return None
    if text[i] in "'\"`":
        return read_string(text, i)
    if text[i] in "{[":
        try:
            return json.JSONDecoder().raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError):
            return None
    return None


def call_arguments(text: str, function: str) -> list[list[Any]]:
    """The leading literal arguments of every call `function(...)` in text (stops at a non-literal argument)."""
    calls: list[list[Any]] = []
    for match in re.finditer(rf"\b{re.escape(function)}\s*\(", text):
        args: list[Any] = []
        i = match.end()
        while True:
            got = read_literal(text, i)
            if got is None:
                break
            args.append(got[0])
            i = _skip_space(text, got[1])
            if i < len(text) and text[i] == ",":
                i += 1
                continue
            break
        calls.append(args)
    return calls


def assigned_literals(text: str, name: str) -> list[Any]:
    """Literals assigned to `name` (`name = ...`, `name: ...`)."""
    values: list[Any] = []
    for match in re.finditer(rf"\b{re.escape(name)}[\"']?\s*[=:]\s*", text):
        got = read_literal(text, match.end())
        if got is not None:
            values.append(got[0])
    return values


def as_json(value: Any) -> Any:
    """A literal as data: JSON text is parsed, base64-encoded JSON is decoded; other values are returned as is."""
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            return value
    if len(stripped) >= 8 and re.fullmatch(r"[A-Za-z0-9+/=_\-\s]+", stripped):
        try:
            decoded = base64.b64decode(
                stripped + "=" * (-len(stripped) % 4), altchars=b"-_" if "-" in stripped else None
            )
            text = decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return value
        if text.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                return value
    return value


def string_values(text: str, keys: tuple[str, ...]) -> list[str]:
    """String literals assigned to any of `keys` (`key: '...'`, `"key": "..."`), in file order."""
    pattern = re.compile(r"[\"']?\b(" + "|".join(re.escape(k) for k in keys) + r")[\"']?\s*:\s*")
    found: list[tuple[int, str]] = []
    for match in pattern.finditer(text):
        got = read_string(text, match.end()) if match.end() < len(text) else None
        if got is not None and got[0].strip():
            found.append((match.start(), got[0]))
    return [value for _, value in sorted(found)]
