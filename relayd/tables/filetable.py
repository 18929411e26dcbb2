"""Tables read from a file, re-read when the file changes.

The file is stat()ed at most once a second (on a lookup, never per lookup),
so an admin who edits a regexp: table or runs postmap sees the change within
a second, and sessions keep running on the old contents meanwhile. A reload
that fails (a bad line, a half-written file) keeps the previous contents and
logs why on the "relayd.master" logger; opening a table that cannot be read
is a ConfigError.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from relayd import chroot
from relayd.config import ConfigError
from relayd.tables.base import Table

log = logging.getLogger("relayd.master")

# How often, at most, a table looks at its file's status.
CHECK_INTERVAL = 1.0


def file_identity(path: str) -> tuple | None:
    """What tells a changed file apart: inode, size, mtime (None if absent)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FileTable(Table):
    """A table whose contents come from ``watched_path()``.

    Subclasses implement :meth:`load`, which reads the file and returns the
    contents object their :meth:`lookup` uses through :meth:`contents`.
    """

    def __init__(self, spec: str, name: str, config=None, *, load: bool = True):
        super().__init__(spec, name, config)
        if not name:
            raise ConfigError(f"{spec}: missing file name")
        self.path = name
        # Not loaded (a table opened to be changed): the first lookup loads it.
        self._identity = file_identity(self.watched_path()) if load else None
        self._contents = self.load() if load else None
        self._checked = time.monotonic() if load else -CHECK_INTERVAL

    def watched_path(self) -> str:
        """The file whose change triggers a reload (the source, or FILE.db)."""
        return self.path

    def load(self) -> Any:
        """Read the file; ConfigError (with file and line) when it is bad."""
        raise NotImplementedError

    def contents(self) -> Any:
        """The current contents, re-read first if the file changed."""
        now = time.monotonic()
        # In a chroot the file is out of reach: relayd reload re-reads it in new workers.
        if now - self._checked >= CHECK_INTERVAL and not chroot.jailed():
            self._checked = now
            self._reload_if_changed()
        return self._contents

    def _reload_if_changed(self) -> None:
        identity = file_identity(self.watched_path())
        if identity == self._identity:
            return
        try:
            contents = self.load()
        except ConfigError as exc:
            # Remember the bad version so it is reported once, not every second.
            self._identity = identity
            log.error("%s: reload failed, keeping the previous contents: %s",
                      self.spec, exc)
            return
        self._identity, self._contents = identity, contents
        log.info("%s: reloaded", self.spec)
