"""The lookup tables a parameter names, opened the way relayd's rewriting wants.

``proxy:`` prefixes are removed (relayd has no proxymap(8): every process
opens its tables itself); ``nis:`` items, which Postfix's default
alias_maps names, are left out with a warning, since relayd will not do NIS.
"""
from __future__ import annotations

import logging

from relayd.config import ConfigError
from relayd.tables.base import Table, open_table_or_surrogate
from relayd.tables.hashdb import rebuilt_by

log = logging.getLogger("relayd.cleanup")

_NEVER_SUPPORTED = ("nis:",)
_warned: set[tuple[str, str]] = set()


def table_specs(config, parameter: str) -> list[str]:
    """The items of ``parameter`` with ``proxy:`` removed and ``nis:`` left out."""
    specs = []
    for item in map(_without_proxy, config[parameter]):
        if item.startswith(_NEVER_SUPPORTED):
            if (parameter, item) not in _warned:
                _warned.add((parameter, item))
                log.warning("%s: %s tables are not supported; ignoring %s",
                            parameter, item.partition(":")[0], item)
            continue
        specs.append(item)
    return specs


def _without_proxy(item: str) -> str:
    while item.startswith("proxy:"):
        item = item[len("proxy:"):]
    return item


def open_tables(config, parameter: str, specs: list[str] | None = None) -> list[Table]:
    """Open the tables of ``parameter`` (or ``specs``); a ConfigError names the parameter.
    A table alias_maps or alias_database names (wherever else it is named, e.g. in
    local_recipient_maps) is an aliases(5) source: its errors say relayd-postalias."""
    aliases = {_without_proxy(s) for s in [*config["alias_maps"], *config["alias_database"]]}
    tables = []
    for spec in table_specs(config, parameter) if specs is None else specs:
        try:
            with rebuilt_by("relayd-postalias" if spec in aliases else "relayd-postmap"):
                tables.append(open_table_or_surrogate(spec, config, log=log))
        except ConfigError as exc:
            if exc.parameter:
                raise
            raise ConfigError(exc.message, file=exc.file, line=exc.line,
                              parameter=parameter) from None
    return tables


def warn_virtual_maps(config) -> None:
    """Warn (once) when the legacy ``virtual_maps`` is set: its value reaches
    virtual_alias_maps through that parameter's default ``$virtual_maps``."""
    if config["virtual_maps"]:
        key = ("virtual_maps", "")
        if key not in _warned:
            _warned.add(key)
            log.warning('support for parameter "virtual_maps" will be removed; '
                        'instead, specify "virtual_alias_maps"')
