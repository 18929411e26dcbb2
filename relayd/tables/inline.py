"""``inline:{ key=value, { key = text with blanks } }``: a table written in main.cf."""
from __future__ import annotations

from relayd.config import ConfigError
from relayd.tables.base import Table


def _items(text: str, spec: str) -> list[str]:
    """Split the inside of the braces at commas/blanks, keeping {grouped} items whole."""
    items, depth, current = [], 0, []
    for c in text:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                items.append("".join(current).strip())
                current = []
                continue
            if depth < 0:
                raise ConfigError(f"{spec}: unbalanced }}")
        if depth == 0 and (c in ", \t\n"):
            if current:
                items.append("".join(current).strip())
                current = []
            continue
        current.append(c)
    if depth:
        raise ConfigError(f"{spec}: missing }}")
    if current:
        items.append("".join(current).strip())
    return [i for i in items if i]


class InlineTable(Table):
    """Keys are folded to lower case, as in Postfix's inline: (an indexed table)."""

    def __init__(self, spec: str, name: str, config=None):
        super().__init__(spec, name, config)
        body = name.strip()
        if not (body.startswith("{") and body.endswith("}")):
            raise ConfigError(f"{spec}: expected inline:{{ key=value ... }}")
        self.items: list[tuple[str, str]] = []
        for item in _items(body[1:-1], spec):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{spec}: expected key=value, got {item!r}")
            self.items.append((key.strip(), value.strip()))
        self.entries = self._entries()

    def _entries(self) -> dict[str, str]:
        return {self.folded(key): value for key, value in self.items}

    def without_case_folding(self) -> "InlineTable":
        """``postmap -f``: keys kept and looked up as written."""
        super().without_case_folding()
        self.entries = self._entries()
        return self

    def lookup(self, key: str) -> str | None:
        return self.entries.get(self.folded(key))

    def iterate(self):
        return iter(self.entries.items())
