"""``texthash:FILE``: the postmap(1) source text read straight into memory.

Same format as ``hash:`` without the ``postmap`` step; keys are folded to
lower case at load and at lookup, as Postfix folds indexed-table keys.
"""
from __future__ import annotations

from relayd.tables.filetable import FileTable
from relayd.tables.textfile import key_value_entries, read_source


class TextHashTable(FileTable):
    """An access(5)/virtual(5) source file, held as a dict, reloaded on change."""

    def load(self) -> dict[str, str]:
        return key_value_entries(read_source(self.path), self.path)

    def lookup(self, key: str) -> str | None:
        return self.contents().get(key.lower())

    def iterate(self):
        return iter(self.contents().items())
