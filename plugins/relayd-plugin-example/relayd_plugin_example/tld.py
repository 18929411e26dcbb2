"""reject_sender_tld FILE: refuse senders under the top-level domains FILE lists.

FILE holds one top-level domain per line, with or without its leading dot
(``zip`` or ``.zip``), case-insensitive; blank lines and ``#`` comments are
ignored. Anything else on a line is an error naming the file and line: a
rule is never skipped. The file is read once, when relayd compiles the
restriction list at startup (so a bad file stops startup); restart or
reload relayd after editing it.
"""
from __future__ import annotations

import re

from relayd.plugin import DUNNO, CheckContext, ConfigError, Reject, Reply

# Sender-address rejections read like Postfix's: "<address>: Sender address rejected: ...".
R554_SENDER_TLD = Reply(554, "5.7.1",
                        "<{}>: Sender address rejected: Mail from .{} domains is not accepted")

# A DNS label (LDH, IDNA "xn--" form included), as a TLD must be.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def read_tld_file(path: str) -> frozenset[str]:
    """The TLDs listed in ``path``, lower case, without dots."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"reject_sender_tld: cannot read: {exc}", file=path) from None
    tlds = set()
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        tld = words[0].lower().removeprefix(".")
        if len(words) > 1 or not _LABEL.match(tld):
            raise ConfigError(f"reject_sender_tld: expected one top-level domain, got {line.strip()!r}",
                              file=path, line=number)
        tlds.add(tld)
    return frozenset(tlds)


def sender_tld(sender: str) -> str:
    """The top-level domain of ``sender``'s domain, lower case; "" when there is none
    (null sender, no domain, an address literal such as ``[192.0.2.1]``)."""
    domain = sender.rpartition("@")[2].rstrip(".").lower() if "@" in sender else ""
    if not domain or domain.startswith("["):
        return ""
    return domain.rpartition(".")[2]


class RejectSenderTld:
    """The check; one instance per registry, holding the files it has read."""

    def __init__(self) -> None:
        self._files: dict[str, frozenset[str]] = {}

    def setup(self, args: tuple[str, ...], config) -> None:
        """Read the file named in main.cf when the list is compiled (startup)."""
        self._files[args[0]] = read_tld_file(args[0])

    def __call__(self, ctx: CheckContext):
        if not ctx.sender:  # not yet known (client/helo stage without delay) or <>
            return DUNNO
        path = ctx.args[0]
        tlds = self._files.get(path)
        if tlds is None:  # a list compiled without setup (a unit test of the bare check)
            tlds = self._files[path] = read_tld_file(path)
        tld = sender_tld(ctx.sender)
        if tld and tld in tlds:
            return Reject(R554_SENDER_TLD.format(ctx.sender, tld))
        return DUNNO
