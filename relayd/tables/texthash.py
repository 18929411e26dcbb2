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
        return key_value_entries(read_source(self.path), self.path, fold=self.fold)

    def without_case_folding(self) -> "TextHashTable":
        """``postmap -f``: keys kept and looked up as written (the file is re-read)."""
        super().without_case_folding()
        self._contents = self.load()
        return self

    def lookup(self, key: str) -> str | None:
        return self.contents().get(self.folded(key))

    def iterate(self):
        return iter(self.contents().items())
