"""What regexp_table(5) and pcre_table(5) share: rules, if/endif, ``$n``.

A table is a list of rules tried in order on the whole search string; the
first match wins:

    /pattern/flags result        matches when pattern matches
    !/pattern/flags result       matches when it does not (no $n in result)
    if /pattern/flags            the rules up to the matching endif are
    if !/pattern/flags           tried only when pattern matches (or not)
    endif

Any non-alphanumeric character may delimit a pattern. The result may use
``$1``..``$9``, ``${n}`` and ``$(n)`` for the text of a group and ``$$`` for
a dollar. relayd also accepts ``$0`` as the whole match (Postfix removed it
in 2002 and skips such a rule). Every rule Postfix would warn about and
skip is a ConfigError naming file and line here.

Patterns run on the ``regex`` module (mrab-regex: Python's re syntax plus
PCRE's atomic groups, possessive quantifiers and POSIX classes), because it
bounds each match: a key is cut to header_size_limit characters before it is
matched, and a match that runs longer than MATCH_TIME_LIMIT seconds is
treated as Postfix's dict_pcre treats a match-limit error: a warning naming
the map and line, and the rule does not match (an ``if`` skips its block);
the lookup goes on with the next rule. A table author's pattern can then
never hold the event loop on a client's header for longer than that.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable

import regex

from relayd.config import ConfigError
from relayd.params import typed_default
from relayd.tables.filetable import FileTable
from relayd.tables.regex_syntax import PatternSyntaxError
from relayd.tables.textfile import logical_lines, read_source

log = logging.getLogger("relayd.tables")

# A result template: literal texts and group numbers.
Template = tuple["str | int", ...]

# Longest a pattern may run on one key, in seconds (see the module docstring).
MATCH_TIME_LIMIT = 0.1
_LIMITED = object()   # what a match that hit MATCH_TIME_LIMIT returns


@dataclass(frozen=True)
class Condition:
    """One pattern with its negation: holds when (it matches) != negate.
    ``find`` is the pattern's search, or its match when it is anchored."""
    regex: regex.Pattern
    find: Callable[..., "regex.Match | None"]
    negate: bool


@dataclass(frozen=True)
class Rule:
    """A match rule (result set), an ``if`` (end_index set) or an ``endif``."""
    line: int
    conditions: tuple[Condition, ...] = ()
    result: Template | None = None
    end_index: int = -1


class PatternTable(FileTable):
    """Base of regexp: and pcre:; subclasses say how a pattern compiles."""

    fixed = False
    kind = "pattern"
    # Characters that end the flags after a pattern (regexp also allows '!').
    flag_stop = " \t"

    def __init__(self, spec: str, name: str, config=None):
        # header_size_limit: the most of a key that is matched.
        default = typed_default("header_size_limit")
        self.key_limit = (config["header_size_limit"] if config is not None else default) or default
        super().__init__(spec, name, config)

    def compile_pattern(self, text: str, flags: str) -> tuple[regex.Pattern, bool]:
        """*text* compiled with *flags*, and whether it is anchored at the
        start; ValueError, PatternSyntaxError or regex.error when bad."""
        raise NotImplementedError

    def load(self) -> tuple[Rule, ...]:
        rules: list[Rule] = []
        open_ifs: list[int] = []
        for number, line in logical_lines(read_source(self.path), self.path):
            try:
                rule = self._parse_line(line, number, bool(open_ifs))
            except (ValueError, regex.error) as exc:
                raise ConfigError(f"{self.kind} map: {exc}", file=self.path, line=number) from None
            if rule.end_index == 0:  # an "if": its end is known at its endif
                open_ifs.append(len(rules))
            elif not rule.conditions:  # an "endif"
                opened = open_ifs.pop()
                rules[opened] = Rule(rules[opened].line, rules[opened].conditions,
                                     end_index=len(rules) + 1)
            rules.append(rule)
        if open_ifs:
            raise ConfigError(f"{self.kind} map: IF has no matching ENDIF",
                              file=self.path, line=rules[open_ifs[-1]].line)
        return tuple(rules)

    def _parse_line(self, line: str, number: int, nested: bool) -> Rule:
        if not line[0].isalnum():
            conditions, rest = self._conditions(line, allow_second=True)
            result = rest.strip()
            if not result:
                raise ValueError("no replacement text")
            template = parse_template(result)
            groups = max((p for p in template if isinstance(p, int)), default=0)
            if groups and conditions[0].negate:
                raise ValueError("$number found in negative match replacement text")
            if groups > conditions[0].regex.groups:
                raise ValueError(f"out of range replacement index \"{groups}\"")
            return Rule(number, conditions, template)
        word = re.match(r"[A-Za-z0-9]*", line).group().lower()
        if word == "if":
            conditions, rest = self._conditions(line[2:], allow_second=False)
            if rest.strip():
                raise ValueError(f"extra text after IF statement: \"{rest.strip()}\" "
                                 "(do not prepend whitespace to statements between IF and ENDIF)")
            return Rule(number, conditions, end_index=0)
        if word == "endif":
            if not nested:
                raise ValueError("ENDIF without matching IF")
            if line[5:].strip():
                raise ValueError("extra text after ENDIF")
            return Rule(number)
        raise ValueError(f"unrecognized request: \"{line[:30]}\"")

    def _conditions(self, text: str, allow_second: bool) -> tuple[tuple[Condition, ...], str]:
        first, rest = self._pattern(text)
        if allow_second and rest.startswith("!"):
            second, rest = self._pattern(rest)
            return (first, second), rest
        return (first,), rest

    def _pattern(self, text: str) -> tuple[Condition, str]:
        """Parse ``[!...]/pattern/flags``; return the condition and what follows."""
        negate, i = False, 0
        while i < len(text) and (text[i] == "!" or text[i].isspace()):
            negate ^= text[i] == "!"
            i += 1
        if i == len(text):
            raise ValueError("no regexp")
        delimiter, start = text[i], i + 1
        i = start
        while i < len(text) and text[i] != delimiter:
            i += 2 if text[i] == "\\" else 1
        if i >= len(text):
            raise ValueError(f"no closing regexp delimiter \"{delimiter}\"")
        flags_end = i + 1
        while flags_end < len(text) and text[flags_end] not in self.flag_stop:
            flags_end += 1
        try:
            compiled, anchored = self.compile_pattern(text[start:i], text[i + 1:flags_end])
        except PatternSyntaxError as exc:
            raise ValueError(f"{exc} in /{text[start:i]}/") from None
        except regex.error as exc:
            raise ValueError(f"regexp error: {exc} in /{text[start:i]}/") from None
        find = compiled.match if anchored else compiled.search
        return Condition(compiled, find, negate), text[flags_end:]

    def lookup(self, key: str) -> str | None:
        rules = self.contents()
        key = key[:self.key_limit]
        i = 0
        while i < len(rules):
            rule = rules[i]
            if rule.result is None:  # if / endif
                if rule.conditions and not self._holds(rule, rule.conditions[0], key):
                    i = rule.end_index
                    continue
            else:
                first = rule.conditions[0]
                match = self._match(rule, first, key)
                if match is not _LIMITED and (match is not None) != first.negate and all(
                        self._holds(rule, c, key) for c in rule.conditions[1:]):
                    return expand_template(rule.result, match)
            i += 1
        return None

    def _match(self, rule: Rule, condition: Condition, key: str):
        """The pattern's match on *key*, None, or _LIMITED (warned) past the time limit."""
        try:
            return condition.find(key, timeout=MATCH_TIME_LIMIT)
        except TimeoutError:
            log.warning("%s map %s, line %d: match limit exceeded", self.kind, self.path, rule.line)
            return _LIMITED

    def _holds(self, rule: Rule, condition: Condition, key: str) -> bool:
        """Whether *condition* holds; never when its match hit the time limit."""
        match = self._match(rule, condition, key)
        return match is not _LIMITED and (match is not None) != condition.negate


def parse_template(text: str) -> Template:
    """``"550 $1 said $$5"`` -> ("550 ", 1, " said $5"); ValueError when bad."""
    parts: list[str | int] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            literal.append(text[i])
            i += 1
            continue
        if text.startswith("$$", i):
            literal.append("$")
            i += 2
            continue
        name, i = _reference(text, i + 1)
        if not name.isdigit():
            raise ValueError(f"non-numeric replacement index \"{name}\"" if name
                             else f"empty macro name: \"{text}\"")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(int(name))
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _reference(text: str, i: int) -> tuple[str, int]:
    """The name after a ``$`` at text[i:]: ``n``, ``{n}`` or ``(n)``; and the end."""
    if i < len(text) and text[i] in "{(":
        close = "}" if text[i] == "{" else ")"
        end = text.find(close, i + 1)
        if end < 0:
            raise ValueError(f"truncated macro reference: \"{text}\"")
        return text[i + 1:end], end + 1
    end = i
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return text[i:end], end


def expand_template(template: Template, match: "regex.Match | None") -> str:
    """The result text: group n's text (empty if it did not take part) for n."""
    if match is None:
        return "".join(template)  # a negative rule: no $n, checked at load
    return "".join(part if isinstance(part, str) else (match.group(part) or "")
                   for part in template)
