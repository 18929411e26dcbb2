"""hosts(5), read as the C library's "files" name service reads it.

Postfix names its clients through the C library (getnameinfo, getaddrinfo),
which with the usual ``hosts: files dns`` in nsswitch.conf answers from
/etc/hosts before it asks DNS. relayd asks DNS itself (relayd.dns), so it
reads the hosts file itself first, the same way:

* address -> name: the canonical name (first name) of the first line that
  lists the address (gethostbyaddr);
* name -> addresses: every address of the asked family on the lines that
  give the name as canonical name or alias, any case (getaddrinfo).

Lines are ``address name [alias...]``; ``#`` starts a comment; a line whose
address is not an IPv4 or IPv6 address is skipped. The file is read again
when it changes (its size, mtime or inode), checked at most once a second,
so editing /etc/hosts takes effect without a restart; a missing or
unreadable file is an empty one (the lookup goes on to DNS).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import time

from relayd import chroot

log = logging.getLogger("relayd.smtpd")

#: How often (seconds) the file is checked for changes.
RECHECK_INTERVAL = 1.0
#: The most of the file read (ad-blocking hosts files run to a few MB).
MAX_SIZE = 32 * 1024 * 1024


class HostsFile:
    """The hosts(5) file at ``path``, loaded on first use."""

    def __init__(self, path: str, *, clock=time.monotonic):
        self.path = path
        self._clock = clock
        self._checked = float("-inf")
        self._stamp: tuple | None = None
        self._names: dict[str, str] = {}               # address -> canonical name
        self._addresses: dict[str, list[str]] = {}     # lower-case name -> addresses
        self._version = 0                              # one more at each reading
        chroot.before_entering(self._refresh)   # read now: the file is outside a chroot

    def name_of(self, address: str) -> str | None:
        """The canonical name of the first line listing ``address`` (IPv6 in
        any spelling), or None."""
        self._refresh()
        name = self._names.get(address)   # a socket's address is in normal form already
        if name is None and ":" in address:
            try:
                name = self._names.get(_normal(address))
            except ValueError:
                return None
        return name

    def version(self) -> int:
        """A number that changes whenever the file is read again (answers
        derived from it hold while it stays the same)."""
        self._refresh()
        return self._version

    def addresses_of(self, name: str, version: int) -> list[str]:
        """The IPv``version`` addresses (4 or 6) of ``name``, in file order."""
        self._refresh()
        found = self._addresses.get(name.lower(), ())
        return [a for a in found if (":" in a) == (version == 6)]

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked < RECHECK_INTERVAL or chroot.jailed():
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_SIZE + 1)
        except OSError:
            data = b""
        if len(data) > MAX_SIZE:
            log.warning("%s: larger than %d bytes: the rest is ignored", self.path, MAX_SIZE)
            data = data[:MAX_SIZE]
        self._names, self._addresses = parse(data.decode("utf-8", "replace"))
        self._version += 1


def parse(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The tables of a hosts(5) text: address -> canonical name (first line
    wins), lower-case name -> addresses (all lines)."""
    names: dict[str, str] = {}
    addresses: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        try:
            address = _normal(fields[0])
        except ValueError:
            continue
        names.setdefault(address, fields[1])
        for name in fields[1:]:
            listed = addresses.setdefault(name.lower(), [])
            if address not in listed:
                listed.append(address)
    return names, addresses


def _normal(address: str) -> str:
    """An address in one spelling (IPv6 compressed, lower case); ValueError if none."""
    return str(ipaddress.ip_address(address))
