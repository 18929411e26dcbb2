"""``cidr:FILE``: cidr_table(5), network blocks tried in file order.

    192.168.1.1         OK          one address (the whole mask)
    192.168.0.0/16      REJECT      a network; host bits must be zero
    [2001:db8::]/32     REJECT      IPv6, brackets optional
    !192.168.0.0/16     DUNNO       matches every address not in it
    if 10.0.0.0/8 ... endif         rules tried only inside the block

The first matching rule wins. A key that is not an IP address finds
nothing; an IPv4 rule never matches an IPv6 key (and the reverse).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from relayd.config import ConfigError
from relayd.tables.filetable import FileTable
from relayd.tables.textfile import logical_lines, read_source


@dataclass(frozen=True)
class CidrRule:
    """A network match (value set), an ``if`` (end_index set) or an ``endif``."""
    version: int
    network: int
    mask: int
    negate: bool
    value: str | None = None
    end_index: int = -1

    def holds(self, version: int, address: int) -> bool:
        inside = version == self.version and address & self.mask == self.network
        return inside != self.negate


_ENDIF = CidrRule(0, 0, 0, False)


def parse_network(text: str, negate: bool) -> CidrRule:
    """``addr``, ``addr/len``, ``[addr]/len``; ValueError with Postfix's wording."""
    if text.startswith("["):
        inside, sep, after = text[1:].partition("]")
        if not sep:
            raise ValueError(f"missing ']' character after \"{text}\"")
        if after and not after.startswith("/"):
            raise ValueError(f"garbage after \"[{inside}]\"")
        text = inside + after
    address, sep, length = text.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        what = "bad network value in" if sep else "bad address pattern:"
        raise ValueError(f"{what} \"{text}\"") from None
    bits = ip.max_prefixlen
    if sep and (not length.isdigit() or int(length) > bits):
        raise ValueError(f"bad mask {'length' if length.isdigit() else 'value'} in \"{text}\"")
    prefix = int(length) if sep else bits
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
    if int(ip) & ~mask:
        network = ipaddress.ip_address(int(ip) & mask)
        raise ValueError(f"non-null host address bits in \"{text}\", "
                         f"perhaps you should use \"{network}/{prefix}\" instead")
    return CidrRule(ip.version, int(ip), mask, negate)


def _negation(text: str) -> tuple[bool, str]:
    negate, i = False, 0
    while i < len(text) and (text[i] == "!" or text[i].isspace()):
        negate ^= text[i] == "!"
        i += 1
    return negate, text[i:]


def parse_rule(line: str, nested: bool) -> CidrRule:
    """One logical line of a cidr table; ValueError when it is bad."""
    word = line[:5].lower()
    if word.startswith("if") and not line[2:3].isalnum():
        negate, pattern = _negation(line[2:])
        if not pattern:
            raise ValueError("no address pattern")
        return replace(parse_network(pattern.strip(), negate), end_index=0)
    if word == "endif" and not line[5:6].isalnum():
        if line[5:].strip():
            raise ValueError("garbage after ENDIF")
        if not nested:
            raise ValueError("ENDIF without IF")
        return _ENDIF
    negate, rest = _negation(line)
    fields = rest.split(None, 1)
    if not fields:
        raise ValueError("no address pattern")
    rule = parse_network(fields[0], negate)
    if len(fields) < 2:
        raise ValueError("no lookup result")
    return replace(rule, value=fields[1])


class CidrTable(FileTable):
    """A cidr_table(5) file, reloaded when it changes."""

    fixed = False

    def load(self) -> tuple[CidrRule, ...]:
        rules: list[CidrRule] = []
        open_ifs: list[tuple[int, int]] = []  # (index, line) of each open "if"
        for number, line in logical_lines(read_source(self.path), self.path):
            try:
                rule = parse_rule(line, bool(open_ifs))
            except ValueError as exc:
                raise ConfigError(f"cidr map: {exc}", file=self.path, line=number) from None
            if rule is _ENDIF:
                opened, _ = open_ifs.pop()
                rules[opened] = replace(rules[opened], end_index=len(rules) + 1)
            elif rule.end_index == 0:
                open_ifs.append((len(rules), number))
            rules.append(rule)
        if open_ifs:
            raise ConfigError("cidr map: IF has no matching ENDIF", file=self.path,
                              line=open_ifs[-1][1])
        return tuple(rules)

    def lookup(self, key: str) -> str | None:
        rules = self.contents()
        try:
            ip = ipaddress.ip_address(key)
        except ValueError:
            return None
        version, address = ip.version, int(ip)
        i = 0
        while i < len(rules):
            rule = rules[i]
            if rule.value is not None:
                if rule.holds(version, address):
                    return rule.value
            elif rule.end_index > 0 and not rule.holds(version, address):
                i = rule.end_index
                continue
            i += 1
        return None
