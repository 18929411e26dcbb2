"""aliases(5) expansion for local recipients, as local(8) does it.

``alias_maps`` is searched with the local part (folded to lower case):
``user+ext`` first, then ``user`` when ``recipient_delimiter`` splits one.
A value is a comma-separated list; each item is

- a local name (or an address in a local domain): expanded again; a name
  that appears in its own expansion, or has no alias, is a mailbox;
- a remote address: forwarded (queued again for that address);
- ``:include:/file``: the addresses listed in that file (aliases(5)), when
  ``relayd_allow_alias_include = yes``; refused otherwise (the default: an
  include file lets whoever can write it redirect mail);
- ``|command``, ``/file``: refused. relayd runs no commands and writes no
  files for mail; such an item is logged and the recipient bounces with
  5.7.1 (Postfix's "mail to command/file is restricted" wording);
- ``error:text``, ``owner-`` lists: not supported (refused the same way).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gevent

from relayd.addresses import split_address
from relayd.domains import LocalDomains
from relayd.paramtypes import split_list
from relayd.rewrite.maps import AddressMaps, strip_extension
from relayd.tables.base import TemporaryLookupError

log = logging.getLogger("relayd.local")


@dataclass
class Expansion:
    """Where one local recipient's mail goes: ``mailboxes`` (local user
    names), ``forwards`` (remote addresses) and ``refused`` (alias items
    relayd will not deliver to, each with the reason)."""

    mailboxes: list[str] = field(default_factory=list)
    forwards: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


class LocalAliases:
    """The alias_maps of one configuration."""

    def __init__(self, config):
        self.maps = AddressMaps(config, "alias_maps")
        self.local = LocalDomains.of(config)
        self.allow_include = config["relayd_allow_alias_include"]

    def lookup(self, name: str) -> str | None:
        """The alias value of local name ``name`` (with, then without its extension)."""
        if not self.maps:
            return None
        value = self.maps.find_key(name.lower(), partial=False)
        bare, extension = strip_extension(name, self.maps.delimiters)
        if value is None and extension:
            value = self.maps.find_key(bare.lower(), partial=True)
        return value

    def expand(self, name: str) -> Expansion:
        """Expand local name ``name`` recursively (TemporaryLookupError passes)."""
        out = Expansion()
        self._expand(name, out, set())
        return out

    def _expand(self, name: str, out: Expansion, seen: set[str]) -> None:
        key = name.lower()
        value = None if key in seen else self.lookup(name)
        if value is None:
            if key not in (m.lower() for m in out.mailboxes):
                out.mailboxes.append(name)
            return
        seen.add(key)
        for item in split_list(value):
            self._item(item.strip('"'), name, out, seen)

    def _item(self, item: str, alias: str, out: Expansion, seen: set[str]) -> None:
        if item.lower().startswith(":include:") and self.allow_include:
            self._include(item[len(":include:"):].strip(), alias, out, seen)
            return
        refused = _refusal(item)
        if refused:
            log.warning("alias %s: %s: %s; not delivered", alias, item, refused)
            out.refused.append((item, refused))
            return
        localpart, domain = split_address(item)
        if domain and domain not in self.local:
            if item.lower() not in (f.lower() for f in out.forwards):
                out.forwards.append(item)
            return
        self._expand(localpart, out, seen)


    def _include(self, path: str, alias: str, out: Expansion, seen: set[str]) -> None:
        """The items of an :include: file, each expanded like an alias item."""
        if not path.startswith("/") or path in seen:
            reason = "include file must be an absolute path" if not path.startswith("/") \
                else "include loop"
            log.warning("alias %s: :include:%s: %s; not delivered", alias, path, reason)
            out.refused.append((f":include:{path}", reason))
            return
        seen.add(path)
        try:
            text = gevent.get_hub().threadpool.apply(_read_include, (path,))
        except OSError as exc:
            raise TemporaryLookupError(f":include:{path}: {exc.strerror}") from None
        for item in split_list(text):
            self._item(item.strip('"'), alias, out, seen)


def _read_include(path: str) -> str:
    """An include file's items: comment and blank lines dropped (aliases(5))."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return "\n".join(line for line in f.read().splitlines()
                         if line.strip() and not line.lstrip().startswith("#"))


def _refusal(item: str) -> str:
    """Why relayd will not deliver to alias item ``item`` ("" when it will)."""
    if item.startswith("|"):
        return "mail to command is restricted (relayd runs no commands)"
    if item.lower().startswith(":include:"):
        return ":include: files are not supported by relayd"
    if item.startswith("/"):
        return "mail to file is restricted (relayd writes no files for mail)"
    if item.lower().startswith("error:"):
        return "error: aliases are not supported by relayd"
    return ""
