"""The error a configuration raises, the exit status it maps to, and the
programming error of reading a parameter relayd does not declare with a type."""
from __future__ import annotations

# sysexits(3) EX_CONFIG: what relayd exits with when its configuration is bad.
EX_CONFIG = 78


class ConfigError(Exception):
    """A configuration problem, located as precisely as it can be.

    ``str(e)`` is "FILE, line N: parameter P: message", each part left out
    when it is unknown, so an admin can go straight to the line.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 parameter: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.parameter = parameter
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}, line {self.line}")
        if self.parameter:
            parts.append(f"parameter {self.parameter}")
        parts.append(self.message)
        return ": ".join(parts)


class UnusedParameter(LookupError):
    """Code read a parameter that relayd.params declares only for compatibility
    (as text, never used). A bug in relayd, not in the configuration: the
    parameter must be declared with its type before code reads it. Not a
    KeyError, so that no ``except KeyError`` fallback can hide it."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"parameter {name} is declared for compatibility only; declare it "
                         f"with its type in relayd/params.py before reading it")
