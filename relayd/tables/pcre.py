"""``pcre:FILE``: pcre_table(5), Perl-compatible regular expressions.

Flags after the closing delimiter toggle Postfix's defaults: ``i`` case
folding (on), ``s`` dot matches newline (on), ``m`` multi-line (off), ``x``
extended/verbose (off), ``A`` anchored at the start, ``E`` ``$`` only at the
very end; ``X`` is ignored, as Postfix built with PCRE2 ignores it. ``U``
(ungreedy) has no Python equivalent and is refused: write ``*?`` instead.
Python's re understands the PCRE syntax used in mail tables (lookaheads,
lazy and possessive quantifiers, ``\\d``, named groups, POSIX classes).
"""
from __future__ import annotations

import logging
import re

from relayd.tables.patterns import PatternTable
from relayd.tables.regex_syntax import translate

log = logging.getLogger("relayd.tables")

_TOGGLES = {"i": re.IGNORECASE, "s": re.DOTALL, "m": re.MULTILINE, "x": re.VERBOSE}


class PcreTable(PatternTable):
    """A pcre_table(5) file, reloaded when it changes."""

    kind = "pcre"

    def compile_pattern(self, text: str, flags: str) -> tuple[re.Pattern, bool]:
        options = re.IGNORECASE | re.DOTALL
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
        python = translate(text, posix=False, dollar_end=dollar_end and not options & re.MULTILINE)
        return re.compile(python, options), anchored
