"""``pcre:FILE``: pcre_table(5), Perl-compatible regular expressions.

Flags after the closing delimiter toggle Postfix's defaults: ``i`` case
folding (on), ``s`` dot matches newline (on), ``m`` multi-line (off), ``x``
extended/verbose (off), ``A`` anchored at the start, ``E`` ``$`` only at the
very end; ``X`` is ignored, as Postfix built with PCRE2 ignores it. ``U``
(ungreedy) has no Python equivalent and is refused: write ``*?`` instead.
The regex module understands the PCRE syntax used in mail tables (lookaheads,
lazy and possessive quantifiers, atomic groups, ``\\d``, named groups, POSIX
classes) and bounds each match in time (relayd.tables.patterns).
"""
from __future__ import annotations

import logging

import regex

from relayd.tables.patterns import PatternTable
from relayd.tables.regex_syntax import translate

log = logging.getLogger("relayd.tables")

_TOGGLES = {"i": regex.IGNORECASE, "s": regex.DOTALL, "m": regex.MULTILINE, "x": regex.VERBOSE}


class PcreTable(PatternTable):
    """A pcre_table(5) file, reloaded when it changes."""

    kind = "pcre"

    def compile_pattern(self, text: str, flags: str) -> tuple[regex.Pattern, bool]:
        options = regex.IGNORECASE | regex.DOTALL
        anchored = dollar_end = False
        for flag in flags:
            if flag in _TOGGLES:
                options ^= _TOGGLES[flag]
            elif flag == "A":
                anchored = not anchored
            elif flag == "E":
                dollar_end = not dollar_end
            elif flag == "X":
                log.warning("%s: ignoring obsolete regexp option \"X\"", self.path)
            elif flag == "U":
                raise ValueError("regexp option \"U\" (ungreedy) is not supported: "
                                 "write lazy quantifiers (*? +? ??) instead")
            else:
                raise ValueError(f"unknown regexp option \"{flag}\"")
        # PCRE's E is ignored in multi-line mode, as in PCRE.
        python = translate(text, posix=False, dollar_end=dollar_end and not options & regex.MULTILINE)
        return regex.compile(python, options), anchored
