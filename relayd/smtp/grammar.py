"""SMTP command grammar: RFC 5321 ABNF as regular expressions that cannot backtrack.

Each rule sits next to the ABNF it implements (RFC 5321 section 4.1.2 unless
noted). Where Postfix is more liberal than the RFC (``strict_rfc821_envelopes
= no``, its default), the tolerance is written next to the rule, so that
relayd accepts what Postfix accepts. Everything here works on ``str``: the
session decodes a command line as UTF-8 before it gets here (RFC 6531 allows
UTF-8 in addresses, so non-ASCII characters count as ``atext``; the session
refuses them until SMTPUTF8 exists).

Linear time on client data (DESIGN.md): every repetition below is possessive
(``*+``, ``++``, ``?+``) and every alternation is atomic or starts with a
character no other branch starts with, so a failed match never goes back into
text it has already consumed; the patterns are only used with ``match`` and
``fullmatch`` (one start position). tests/smtp/test_grammar_linear.py checks
this shape on the compiled patterns. The command line itself is split
without a regex.
"""
from __future__ import annotations

import ipaddress
import re

# UTF8-non-ascii (RFC 6531 section 3.3): any non-ASCII character, except the
# C1 controls (U+0080-U+009F: NEL is a line break to some readers) and the
# line and paragraph separators U+2028/U+2029: none belongs in an address, and
# each can start a new line in a log, a DSN or a header that quotes it.
_UTF8_NON_ASCII = "\u00a0-\u2027\u202a-\U0010ffff"

# atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
#         / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"   (RFC 5322 3.2.3)
_ATEXT = rf"A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~{_UTF8_NON_ASCII}"

# Dot-string = Atom *("." Atom);  Atom = 1*atext
# Tolerance (Postfix): leading, trailing and doubled dots are accepted.
_DOT_STRING = rf"[{_ATEXT}.]++"

# Quoted-string   = DQUOTE *QcontentSMTP DQUOTE
# QcontentSMTP    = qtextSMTP / quoted-pairSMTP
# qtextSMTP       = %d32-33 / %d35-91 / %d93-126
# quoted-pairSMTP = %d92 %d32-126
_QUOTED_STRING = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8_NON_ASCII}]++|\\[\x20-\x7e])*+"'

# Local-part = Dot-string / Quoted-string   (a Dot-string never starts with DQUOTE)
_LOCAL_PART = rf"(?>{_DOT_STRING}|{_QUOTED_STRING})"

# sub-domain = Let-dig [Ldh-str];  Let-dig = ALPHA / DIGIT
# Ldh-str    = *( ALPHA / DIGIT / "-" ) Let-dig
# Tolerance: "_" inside a label (real host names have it) and U-labels.
# Written as Let-dig *( *("-" / "_") Let-dig ): the same strings, and no way
# to split a label in two.
_LET_DIG = rf"[A-Za-z0-9{_UTF8_NON_ASCII}]"
_SUB_DOMAIN = rf"{_LET_DIG}(?:[\-_]*+{_LET_DIG})*+"

# Domain = sub-domain *("." sub-domain)
# Tolerance: one trailing dot ("user@example.com."), which Postfix accepts and
# trivial-rewrite strips; relay control judges the domain without it.
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*+\.?+"

# address-literal = "[" ( IPv4-address-literal / IPv6-address-literal
#                         / General-address-literal ) "]"
# dcontent        = %d33-90 / %d94-126
# Only the brackets and the dcontent alphabet are matched here; the content
# is checked by address_literal_is_valid().
_ADDRESS_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]++\]"

# Mailbox = Local-part "@" ( Domain / address-literal )
# Tolerance: a Local-part alone ("<Postmaster>", "<user>"), which Postfix
# completes with $myorigin.
_MAILBOX = rf"{_LOCAL_PART}(?:@(?>{_DOMAIN}|{_ADDRESS_LITERAL}))?+"

# A-d-l = At-domain *( "," At-domain );  At-domain = "@" Domain
_ADL = rf"@{_DOMAIN}(?:,@{_DOMAIN})*+"

# Path         = "<" [ A-d-l ":" ] Mailbox ">"
# Reverse-path = Path / "<>"
# Tolerance (Postfix): a Mailbox without the angle brackets.
_PATH_ARGUMENT = re.compile(
    rf"(?P<null><>)|<(?P<path>(?:{_ADL}:)?+{_MAILBOX})>|(?P<bare>{_MAILBOX})")

# Snum = 1*3DIGIT;  IPv4-address-literal = Snum 3("." Snum)
_IPV4_LITERAL = re.compile(r"[0-9]{1,3}+(?:\.[0-9]{1,3}+){3}")

# General-address-literal = Standardized-tag ":" 1*dcontent
# Standardized-tag        = Ldh-str   (written as 1*( *"-" Let-dig ))
_GENERAL_LITERAL = re.compile(r"(?:-*+[A-Za-z0-9])++:[\x21-\x5a\x5e-\x7e]++")

# esmtp-param   = esmtp-keyword ["=" esmtp-value]
# esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
# esmtp-value   = 1*(%d33-60 / %d62-126)   (RFC 6531 adds UTF8-non-ascii)
_ESMTP_PARAM = re.compile(
    rf"(?P<keyword>[A-Za-z0-9][A-Za-z0-9-]*+)(?:=(?P<value>[\x21-\x3c\x3e-\x7e{_UTF8_NON_ASCII}]++))?+")

# A verb that looks like a message header ("Subject:"): Postfix's is_header().
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]++:")

#: Every pattern above that client data meets (the linearity test walks them).
PATTERNS = (_PATH_ARGUMENT, _IPV4_LITERAL, _GENERAL_LITERAL, _ESMTP_PARAM, _HEADER_NAME)

# smtpd_forbid_cmds default "CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}":
# HTTP proxy probes and anything that does not start with a letter.
_FORBIDDEN_VERBS = frozenset({"CONNECT", "GET", "POST"})


class GrammarError(ValueError):
    """The text does not match the grammar rule that was applied."""


class AddressSyntaxError(GrammarError):
    """A Path / Reverse-path that does not parse."""


class MissingKeyword(GrammarError):
    """MAIL without "FROM:", RCPT without "TO:", or nothing after it."""


class ParameterSyntaxError(GrammarError):
    """A malformed or repeated esmtp-param; ``keyword`` names it."""

    def __init__(self, keyword: str) -> None:
        super().__init__(keyword)
        self.keyword = keyword


def split_command(line: str) -> tuple[str, str]:
    """Split a command line into (VERB upper-cased, argument without outer blanks).

    Postfix tokenises on blanks, so leading blanks and tabs are tolerated.
    Linear: C-speed scans only (a regex here was quadratic on runs of blanks).
    """
    if "\t" not in line:  # the common case: one partition
        verb, _, argument = line.lstrip(" ").partition(" ")
        return verb.upper(), argument.strip(" ")
    line = line.lstrip(" \t")
    end = len(line)
    for blank in " \t":
        found = line.find(blank, 0, end)
        if found >= 0:
            end = found
    return line[:end].upper(), line[end:].strip(" \t")


def is_forbidden_command(verb: str) -> bool:
    """True for verbs Postfix answers with "221 2.7.0 Error: I can break
    rules, too. Goodbye.": a header name, CONNECT/GET/POST, or a verb that
    does not start with a letter (smtpd_forbid_cmds' default)."""
    return (verb in _FORBIDDEN_VERBS or not ("A" <= verb[:1] <= "Z")
            or _HEADER_NAME.match(verb) is not None)


def split_path_argument(argument: str, keyword: str) -> tuple[str, str]:
    """Split "FROM:<path> params" into (path text, parameter text).

    ``keyword`` is "FROM:" or "TO:" (matched case-insensitively). Postfix also
    accepts blanks after the colon. The path text ends where the Path rule
    ends; raises :class:`MissingKeyword` when the keyword or the path is
    missing, :class:`AddressSyntaxError` when the path does not parse.
    """
    if argument[:len(keyword)].upper() != keyword:
        raise MissingKeyword(argument)
    rest = argument[len(keyword):].lstrip(" \t")
    if not rest:
        raise MissingKeyword(argument)
    match = _PATH_ARGUMENT.match(rest)
    if match is None or match.end() < len(rest) and rest[match.end()] not in " \t":
        raise AddressSyntaxError(rest)
    return rest[:match.end()], rest[match.end():].strip(" \t")


def parse_reverse_path(path: str) -> str:
    """The sender of a MAIL Reverse-path, without <>: "" for "<>"."""
    return _parse_path(path, null_allowed=True)


def parse_forward_path(path: str) -> str:
    """The recipient of a RCPT Forward-path, without <>; "<>" is refused."""
    return _parse_path(path, null_allowed=False)


def _parse_path(path: str, *, null_allowed: bool) -> str:
    match = _PATH_ARGUMENT.fullmatch(path)
    if match is None or (match["null"] and not null_allowed):
        raise AddressSyntaxError(path)
    if match["null"]:
        return ""
    address = match["path"] or match["bare"]
    _, at, domain = address.rpartition("@")
    if at and domain.startswith("[") and not address_literal_is_valid(domain[1:-1]):
        raise AddressSyntaxError(path)
    return address


def address_literal_is_valid(literal: str) -> bool:
    """Check the inside of an address-literal ("1.2.3.4", "IPv6:::1", "tag:x")."""
    if _IPV4_LITERAL.fullmatch(literal):
        return all(int(part) <= 255 for part in literal.split("."))
    if literal[:5].upper() == "IPV6:":
        # IPv6-address-literal = "IPv6:" IPv6-addr
        try:
            ipaddress.IPv6Address(literal[5:])
        except ValueError:
            return False
        return True
    return _GENERAL_LITERAL.fullmatch(literal) is not None


def parse_esmtp_params(text: str) -> dict[str, str | None]:
    """Parse "KEY=value KEY2 ..." into {KEYWORD: value or None}.

    Keywords are case-insensitive and stored upper-case. Raises
    :class:`ParameterSyntaxError` for a malformed or repeated parameter.
    """
    params: dict[str, str | None] = {}
    for word in text.split():
        match = _ESMTP_PARAM.fullmatch(word)
        if match is None:
            raise ParameterSyntaxError(word.partition("=")[0] or word)
        keyword = match["keyword"].upper()
        if keyword in params:
            raise ParameterSyntaxError(keyword)
        params[keyword] = match["value"]
    return params
