"""The content-check settings of one configuration, with their tables opened once.

main.cf names up to four table lists (header_checks, mime_header_checks,
nested_header_checks, body_checks; the middle two default to
$header_checks) and the limits that go with them. :class:`ContentChecks`
reads them once per configuration; each message then gets a cheap
:class:`relayd.cleanup.checker.ContentChecker` built on it.
"""
from __future__ import annotations

from dataclasses import dataclass

from relayd.config import ConfigError
from relayd.tables.base import open_table
from relayd.tables.maps import Maps

HEADER_CHECKS = "header_checks"
MIME_HEADER_CHECKS = "mime_header_checks"
NESTED_HEADER_CHECKS = "nested_header_checks"
BODY_CHECKS = "body_checks"

# The limits: (ContentChecks field, parameter).
_LIMITS = (("body_size_limit", "body_checks_size_limit"),
           ("header_size_limit", "header_size_limit"),
           ("line_length_limit", "line_length_limit"),
           ("nesting_limit", "mime_nesting_limit"),
           ("boundary_limit", "mime_boundary_length_limit"))


class CheckMaps(Maps):
    """One parameter's list of tables, searched in order (Postfix's maps_find).

    Empty keys never match (header_checks(5) BUGS). A table that cannot
    answer raises :class:`relayd.tables.base.TemporaryLookupError`."""

    __slots__ = ()


@dataclass(frozen=True)
class ContentChecks:
    """The four table lists (None = off) and the limits of the content checks."""

    header: CheckMaps | None = None
    mime: CheckMaps | None = None
    nested: CheckMaps | None = None
    body: CheckMaps | None = None
    body_size_limit: int = 51200       # body_checks_size_limit (0: no limit)
    header_size_limit: int = 102400
    line_length_limit: int = 2048
    nesting_limit: int = 100
    boundary_limit: int = 2048
    mime_disabled: bool = False         # disable_mime_input_processing

    @property
    def active(self) -> bool:
        """False when no table list is configured: then nothing needs to look at content."""
        return any((self.header, self.mime, self.nested, self.body))

    @classmethod
    def from_config(cls, config, opener=open_table) -> "ContentChecks":
        """Read the checks of *config*, opening each table with ``opener(spec, config)``.

        ``receive_override_options = no_header_body_checks`` turns them all off,
        as it does in Postfix (set with -o on a content filter's re-injection
        service). A bad table spec or limit is a ConfigError naming the parameter.
        """
        mime_disabled = config["disable_mime_input_processing"]
        if "no_header_body_checks" in config["receive_override_options"]:
            return cls(**_limits(config), mime_disabled=mime_disabled)
        maps = {name: _open_maps(config, name, opener)
                for name in (HEADER_CHECKS, MIME_HEADER_CHECKS, NESTED_HEADER_CHECKS, BODY_CHECKS)}
        return cls(header=maps[HEADER_CHECKS], mime=maps[MIME_HEADER_CHECKS],
                   nested=maps[NESTED_HEADER_CHECKS], body=maps[BODY_CHECKS],
                   mime_disabled=mime_disabled, **_limits(config))


def _open_maps(config, name: str, opener) -> CheckMaps | None:
    specs = config[name]     # mime_ and nested_header_checks default to $header_checks
    if not specs:
        return None
    tables = []
    for spec in specs:
        try:
            tables.append(opener(spec, config))
        except ConfigError as exc:
            if exc.parameter or exc.file:
                raise
            raise ConfigError(exc.message, parameter=name) from None
    return CheckMaps(name, tables)


def _limits(config) -> dict[str, int]:
    out = {}
    for field_name, param in _LIMITS:
        value = out[field_name] = config[param]
        if value == 0 and param != "body_checks_size_limit":   # as Postfix's minimum of 1
            raise ConfigError(f"bad numerical value: {value}", parameter=param)
    return out
