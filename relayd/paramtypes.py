"""The value types of main.cf parameters: Postfix's text to typed values.

Types and what ``Config[name]`` returns for them:

=========  =====================================================  ==========
type       accepted text                                          value
=========  =====================================================  ==========
str        anything                                               str
int        decimal digits; also one of the parameter's            int (str for
           ``choices`` when it has some ("auto")                  a choice)
size       decimal digits (bytes)                                 int
bool       yes/no (also true/false), any case                     bool
time       digits with an optional unit s m h d w; without a      int
           unit the parameter's own default unit applies          (seconds)
list       items separated by commas and/or whitespace; ``{...}``  list[str]
           keeps an item with blanks together (items limited to
           ``choices`` when the parameter has some)
choice     one of the parameter's ``choices``                     str
=========  =====================================================  ==========
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["TIME_UNITS", "TYPES", "BadValue", "Param", "convert", "split_list"]

TYPES = ("str", "int", "size", "bool", "time", "list", "choice")

# Seconds per Postfix time unit (conv_time() in src/global/mail_conf_time.c).
TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Param:
    """One main.cf parameter: its name, value type, raw default text, a one-line
    description, the default time unit (for "time" parameters), the allowed
    values (for "choice" and "list" parameters; the words an "int" one takes
    besides numbers) and whether it is only known for compatibility (never
    read by relayd)."""

    name: str
    type: str
    default: str
    doc: str
    unit: str = "s"
    choices: tuple[str, ...] = field(default=())
    compat: bool = False


class BadValue(ValueError):
    """A text that is not a valid value of its parameter's type; str() says why,
    in Postfix's words ("bad numerical value: 10M")."""


_TIME_RE = re.compile(r"(\d+)([smhdw]?)", re.IGNORECASE)
_BOOLS = {"yes": True, "true": True, "no": False, "false": False}


def convert(param: Param, text: str):
    """Convert expanded *text* to the typed value of *param* (a :class:`Param`); BadValue if
    it is not one."""
    if param.type in ("int", "size"):
        if text.isdigit():
            return int(text)
        if not param.choices:
            raise BadValue(f"bad numerical value: {text}")
        _check_choice(param, text, "a number or ")
        return text
    if param.type == "bool":
        try:
            return _BOOLS[text.lower()]
        except KeyError:
            raise BadValue(f"bad boolean value: {text}") from None
    if param.type == "time":
        match = _TIME_RE.fullmatch(text)
        if not match:
            raise BadValue(f"bad time value or unit: {text}")
        return int(match.group(1)) * TIME_UNITS[(match.group(2) or param.unit).lower()]
    if param.type == "list":
        items = split_list(text)
        for item in items if param.choices else ():
            _check_choice(param, item)
        return items
    if param.type == "choice":
        _check_choice(param, text)
    return text


def _check_choice(param: Param, text: str, also: str = "") -> None:
    if text not in param.choices:
        allowed = ", ".join(repr(c) for c in param.choices)
        raise BadValue(f"bad value: {text!r} (expected {also}one of {allowed})")


def split_list(text: str) -> list[str]:
    """Split a Postfix list on commas and whitespace; a ``{...}`` group stays one
    item, its outer braces and the blanks just inside them removed. *text* must
    be text: a list parameter's value is split already."""
    if not isinstance(text, str):
        raise TypeError(f"split_list() needs main.cf text, not {type(text).__name__}")
    items, word, depth = [], [], 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        if depth == 0 and (ch == "," or ch.isspace()):
            if word:
                items.append("".join(word))
                word = []
            continue
        word.append(ch)
    if word:
        items.append("".join(word))
    return [_unbrace(item) for item in items]


def _unbrace(item: str) -> str:
    if item.startswith("{") and item.endswith("}"):
        return item[1:-1].strip()
    return item
