"""``regexp:FILE``: regexp_table(5), POSIX extended regular expressions.

Flags after the closing delimiter toggle Postfix's defaults: ``i`` case
folding (on), ``m`` multi-line mode (off), ``x`` extended syntax (on: off
means POSIX basic syntax). ``/pattern1/!/pattern2/ result`` matches when
pattern1 matches and pattern2 does not. Patterns are rewritten for the
regex module (see relayd.tables.regex_syntax) and matched with a time bound
(relayd.tables.patterns).
"""
from __future__ import annotations

import regex

from relayd.tables.patterns import PatternTable
from relayd.tables.regex_syntax import translate


class RegexpTable(PatternTable):
    """A regexp_table(5) file, reloaded when it changes."""

    kind = "regexp"
    flag_stop = " \t!"

    def compile_pattern(self, text: str, flags: str) -> tuple[regex.Pattern, bool]:
        icase, multiline, extended = True, False, True
        for flag in flags:
            if flag == "i":
                icase = not icase
            elif flag == "m":
                multiline = not multiline
            elif flag == "x":
                extended = not extended
            else:
                raise ValueError(f"unknown regexp option \"{flag}\"")
        # POSIX: without REG_NEWLINE "." matches a newline and "$" only the end.
        options = (regex.IGNORECASE if icase else 0) | (regex.MULTILINE if multiline else regex.DOTALL)
        python = translate(text, posix=True, dollar_end=not multiline, basic=not extended)
        return regex.compile(python, options), False
