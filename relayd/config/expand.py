"""``$name`` expansion in parameter values, as postconf(5) describes it.

Forms: ``$name`` and ``${name}`` (the value of name), ``${name?text}`` and
``${name?{text}}`` (text if name's value is not empty, else nothing),
``${name:text}`` and ``${name:{text}}`` (text if name's value is empty),
``${name?{text1}:{text2}}`` (text1 if not empty, else text2), ``$$`` (a
literal dollar). Values are expanded recursively; a name that refers back to
itself is an error. A name that is not defined expands to nothing, as in
Postfix.
"""
from __future__ import annotations

import re
from typing import Callable

_NAME = re.compile(r"[A-Za-z0-9_]+")
_REFERENCE = re.compile(r"\$\$|\$\{?([A-Za-z0-9_]+)")


class ExpansionError(ValueError):
    """Unbalanced braces or a recursive reference; str() says which."""


# lookup(name, stack) -> the *expanded* value of name, or None when undefined.
Lookup = Callable[[str, tuple[str, ...]], "str | None"]


def expand(text: str, lookup: Lookup, stack: tuple[str, ...] = ()) -> str:
    """Expand every ``$`` form in *text*; *stack* holds the names being expanded."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 1)
            out.append(_expand_braced(text[i + 2:end], lookup, stack))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            out.append(_value(match.group(), lookup, stack))
            i = match.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def references(text: str) -> set[str]:
    """The parameter names *text* refers to with ``$name`` or ``${name...}``."""
    return {m.group(1) for m in _REFERENCE.finditer(text) if m.group(1)}


def _value(name: str, lookup: Lookup, stack: tuple[str, ...]) -> str:
    if name in stack:
        chain = " -> ".join(f"${n}" for n in (*stack[stack.index(name):], name))
        raise ExpansionError(f"recursive parameter expansion: {chain}")
    value = lookup(name, stack + (name,))
    return "" if value is None else value


def _expand_braced(inner: str, lookup: Lookup, stack: tuple[str, ...]) -> str:
    match = _NAME.match(inner)
    if not match:
        raise ExpansionError(f"bad parameter name in '${{{inner}}}'")
    value = _value(match.group(), lookup, stack)
    rest = inner[match.end():]
    if not rest:
        return value
    op, text = rest[0], rest[1:]
    if op not in "?:":
        raise ExpansionError(f"bad expression '${{{inner}}}'")
    when_set, when_empty = _branches(op, text)
    return expand(when_set if value else when_empty, lookup, stack)


def _branches(op: str, text: str) -> tuple[str, str]:
    """The (if-not-empty, if-empty) texts of a ``?`` or ``:`` expression."""
    if not text.startswith("{"):
        return (text, "") if op == "?" else ("", text)
    end = _closing_brace(text, 0)
    first, after = text[1:end].strip(), text[end + 1:]
    if op == "?" and after.startswith(":{"):
        second_end = _closing_brace(after, 1)
        if after[second_end + 1:]:
            raise ExpansionError(f"text after '}}' in '{text}'")
        return first, after[2:second_end].strip()
    if after:
        raise ExpansionError(f"text after '}}' in '{text}'")
    return (first, "") if op == "?" else ("", first)


def _closing_brace(text: str, start: int) -> int:
    """Index of the '}' that closes the '{' at *start*."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ExpansionError(f"unmatched '{{' in '{text}'")
