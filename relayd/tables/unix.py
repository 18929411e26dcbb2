"""``unix:passwd.byname``: the system's user accounts (getpwnam(3)).

The key is a user name, the value the passwd(5) line, as Postfix's unix:
table returns it (``local_recipient_maps = unix:passwd.byname $alias_maps``).
Postfix's other unix: map, group.byname, has no use in a relay and is refused.
"""
from __future__ import annotations

import pwd

from relayd import chroot
from relayd.config import ConfigError
from relayd.tables.base import Table


class UnixTable(Table):
    """The passwd database; keys are folded to lower case (``fold``), as Postfix's dict_unix."""

    def __init__(self, spec: str, name: str, config=None):
        super().__init__(spec, name, config)
        if name != "passwd.byname":
            raise ConfigError(f"{spec}: unknown unix: map (only unix:passwd.byname exists)")
        self._snapshot: dict[str, pwd.struct_passwd] | None = None
        chroot.before_entering(self._take_snapshot)

    def _take_snapshot(self) -> None:
        """The accounts as they are before a chroot, where /etc/passwd is out of
        reach (Postfix reads them through proxymap, outside its chroot)."""
        self._snapshot = {pw.pw_name: pw for pw in pwd.getpwall()}

    def lookup(self, key: str) -> str | None:
        if self._snapshot is not None:
            pw = self._snapshot.get(self.folded(key))
            if pw is None:
                return None
        else:
            try:
                pw = pwd.getpwnam(self.folded(key))
            except KeyError:
                return None
        return ":".join((pw.pw_name, pw.pw_passwd, str(pw.pw_uid), str(pw.pw_gid),
                         pw.pw_gecos, pw.pw_dir, pw.pw_shell))

    def iterate(self):
        return iter([(pw.pw_name, self.lookup(pw.pw_name)) for pw in pwd.getpwall()])
