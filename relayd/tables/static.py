"""``static:value``: every key finds ``value`` (postconf(5) static table)."""
from __future__ import annotations

from relayd.tables.base import Table


class StaticTable(Table):
    """Answers every lookup with the text after ``static:``; {braces} hold blanks."""

    fixed = False

    def __init__(self, spec: str, name: str, config=None):
        super().__init__(spec, name, config)
        value = name.strip()
        if value.startswith("{") and value.endswith("}"):
            value = value[1:-1].strip()
        self.value = value

    def lookup(self, key: str) -> str | None:
        return self.value
