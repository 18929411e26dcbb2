"""POSIX ERE/BRE and PCRE pattern text rewritten for Python's ``re`` syntax,
which the ``regex`` module that runs the patterns (relayd.tables.patterns) shares.

Python's syntax is close to PCRE's and a superset of most ERE usage; what
differs and is rewritten here:

- bracket expressions: POSIX classes (``[[:alpha:]]``) become ranges; in
  POSIX a backslash inside brackets is a literal character (``[\\.]`` is a
  backslash or a dot), and a ``[`` there is literal too;
- ``$`` means only the very end of the string in POSIX (no REG_NEWLINE) and
  with PCRE's E flag, where Python's ``$`` also matches before a final newline;
- POSIX basic syntax (regexp: ``x`` flag off): ``\\(`` ``\\)`` ``\\{`` ``\\}``
  group and count, bare ``( ) { } | + ?`` are literal;
- GNU word boundaries ``\\<`` ``\\>``; PCRE named groups ``(?<name>...)``.

Collating elements (``[.x.]``) and equivalence classes (``[=x=]``) have no
Python equivalent and are refused.
"""
from __future__ import annotations

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
    "lower": "a-z", "space": r" \t\n\r\f\v", "blank": r" \t", "xdigit": "0-9A-Fa-f",
    "punct": r"!-/:-@\[-`{-~", "print": r"\x20-\x7e", "graph": r"\x21-\x7e",
    "cntrl": r"\x00-\x1f\x7f", "word": r"\w",
}
_BRE_ESCAPES = {"(": "(", ")": ")", "{": "{", "}": "}", "|": "|", "+": "+", "?": "?"}
_GNU_ESCAPES = {"<": r"\b(?=\w)", ">": r"\b(?<=\w)", "`": r"\A", "'": r"\Z"}


class PatternSyntaxError(ValueError):
    """The pattern cannot be expressed for Python's re; str() says why."""


def translate(pattern: str, *, posix: bool, dollar_end: bool, basic: bool = False) -> str:
    """*pattern* as Python re text. *posix*: POSIX bracket rules and GNU
    escapes; *dollar_end*: ``$`` only at the end; *basic*: POSIX BRE."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(_escape(pattern[i + 1], posix, basic))
            i += 2
        elif c == "[":
            i = _bracket(pattern, i, posix, out)
        elif c == "$" and dollar_end:
            out.append(r"\Z")
            i += 1
        elif basic and c in _BRE_ESCAPES:
            out.append("\\" + c)
            i += 1
        elif pattern.startswith("(?<", i) and pattern[i + 3:i + 4] not in ("=", "!"):
            out.append("(?P<")
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _escape(c: str, posix: bool, basic: bool) -> str:
    if basic and c in _BRE_ESCAPES:
        return _BRE_ESCAPES[c]
    if posix and c in _GNU_ESCAPES:
        return _GNU_ESCAPES[c]
    return "\\" + c


def _bracket(pattern: str, i: int, posix: bool, out: list[str]) -> int:
    """Append the bracket expression starting at pattern[i]; return the index after it."""
    n, j = len(pattern), i + 1
    out.append("[")
    if j < n and pattern[j] == "^":
        out.append("^")
        j += 1
    if j < n and pattern[j] == "]":
        out.append(r"\]")
        j += 1
    while j < n and pattern[j] != "]":
        c = pattern[j]
        if c == "[" and pattern[j + 1:j + 2] in (":", ".", "="):
            j = _named_class(pattern, j, out)
        elif c == "\\" and posix:
            out.append(r"\\")
            j += 1
        elif c == "\\":
            out.append(pattern[j:j + 2])
            j += 2
        elif c == "[":
            out.append(r"\[")
            j += 1
        else:
            out.append(c)
            j += 1
    if j >= n:
        raise PatternSyntaxError("unmatched [ in bracket expression")
    out.append("]")
    return j + 1


def _named_class(pattern: str, j: int, out: list[str]) -> int:
    kind = pattern[j + 1]
    end = pattern.find(kind + "]", j + 2)
    if end < 0:
        raise PatternSyntaxError(f"unterminated [{kind} in bracket expression")
    name = pattern[j + 2:end]
    if kind != ":":
        raise PatternSyntaxError(f"[{kind}{name}{kind}] is not supported")
    if name not in _CLASSES:
        raise PatternSyntaxError(f"unknown character class [:{name}:]")
    out.append(_CLASSES[name])
    return end + 2
