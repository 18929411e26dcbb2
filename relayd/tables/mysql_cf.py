"""mysql_table(5) files and the '%' templates of SQL tables (sans-I/O).

A ``mysql:/etc/relayd/x.cf`` file has main.cf's format (``name = value``,
continuation lines, ``#`` comments); values are taken as written, with no
``$name`` expansion, as Postfix's cfg_parser reads them. :func:`read_settings`
checks every name and value and names file and line of a bad one: a setting
Postfix does not know is an error here (Postfix ignores it), because a
misspelt ``domain`` or ``additional_conditions`` would quietly change what
the table answers.

:class:`Templates` is Postfix's db_common.c: the ``query`` template
(``%%``, ``%s``, ``%u``, ``%d``, ``%S``, ``%U``, ``%D``, ``%1``..``%9``,
every value SQL-quoted) and the ``result_format`` template applied to each
column of each row, the results joined with commas.
"""
from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass, field

from relayd.config import ConfigError
from relayd.config.maincf import parse_main_cf

# Every setting of mysql_table(5) (Postfix 3.12), with its default; None: unset.
SETTINGS: dict[str, str | None] = {
    "hosts": "", "user": "", "password": "", "dbname": None, "charset": "utf8mb4",
    "idle_interval": "60", "retry_interval": "60", "query": None, "result_format": "%s",
    "domain": "", "expansion_limit": "0", "option_file": None, "option_group": "client",
    "require_result_set": "yes", "tls_cert_file": None, "tls_key_file": None,
    "tls_CAfile": None, "tls_CApath": None, "tls_ciphers": None, "tls_verify_cert": None,
    # The query before Postfix 2.2, used when "query" is not set.
    "table": None, "select_field": None, "where_field": None, "additional_conditions": "",
}
_LEGACY = ("table", "select_field", "where_field")
_TRUE, _FALSE = ("yes", "true", "1"), ("no", "false", "0")
# Template flags (db_common.c): which parts of the key or of a result value a template uses.
KEY_DOMAIN, KEY_USER, VALUE_DOMAIN, VALUE_USER = 1, 2, 4, 8


@dataclass(frozen=True)
class Host:
    """One ``hosts`` item: ``unix:/path``, ``[inet:]host[:port]``; ``localhost`` is
    the server's default UNIX socket, as the MySQL client library takes it."""

    text: str
    host: str | None = None
    port: int = 3306
    unix_socket: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.unix_socket is not None


# Debian's mariadb-server socket: what "localhost" means to its client library.
DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"


def parse_host(text: str) -> Host:
    """A ``hosts`` item as dict_mysql.c's host_init() reads it; ValueError when bad."""
    if text.startswith("unix:"):
        return Host(text, unix_socket=text[5:] or DEFAULT_SOCKET)
    name = text[5:] if text.startswith("inet:") else text
    port = 3306
    if name.startswith("["):          # relayd: [IPv6]:port; the C client has no brackets
        name, _, rest = name[1:].partition("]")
        service = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, service = name.rpartition(":") if ":" in name else (name, "", "")
    if service:
        try:
            port = int(service) if service.isdigit() else socket.getservbyname(service, "tcp")
        except OSError:
            raise ValueError(f"unknown service: {service}/tcp") from None
    if not name:
        raise ValueError(f"no host name in {text!r}")
    if name.lower() == "localhost":
        return Host(text, unix_socket=DEFAULT_SOCKET)
    return Host(text, host=name, port=port)


class Templates:
    """The query and result templates of one table, parsed together: they share
    the flags that decide which keys are never sent (db_common_parse)."""

    def __init__(self, query: str, result_format: str):
        self.flags = 0
        self.nparts = 0
        self.query = self._parse(query, True)
        self.result = self._parse(result_format, False)

    @classmethod
    def checked(cls, settings_path: str, query: str, result_format: str,
                lines: dict[str, int]) -> "Templates":
        """The templates, or a ConfigError at the line of the bad one."""
        for name, template in (("query", query), ("result_format", result_format)):
            try:
                cls(template if name == "query" else "", template if name != "query" else "")
            except ValueError as exc:
                line = lines.get(name, lines.get("where_field"))
                raise ConfigError(str(exc), file=settings_path, line=line) from None
        return cls(query, result_format)

    def _parse(self, template: str, query: bool) -> list[str]:
        """The template as a list of literal texts and two-character "%x" codes."""
        parts, i, start = [], 0, 0
        while True:
            i = template.find("%", start)
            if i < 0:
                break
            code = template[i + 1:i + 2]
            if code not in "%sSuUdD123456789" or not code:
                raise ValueError(f"invalid {'query' if query else 'result'} template: {template}")
            parts += [template[start:i], "%" + code]
            start = i + 2
            if code == "u":
                self.flags |= KEY_USER if query else VALUE_USER
            elif code == "d":
                self.flags |= KEY_DOMAIN if query else VALUE_DOMAIN
            elif code == "U":
                self.flags |= KEY_USER
            elif code in "D123456789":
                self.flags |= KEY_DOMAIN
                if code != "D":
                    self.nparts = max(self.nparts, int(code))
        parts.append(template[start:])
        return [p for p in parts if p]

    def expand_query(self, key: str, quote) -> str | None:
        """The query for *key*, each value through ``quote``; None when the key
        lacks a part a template needs (no query is sent: "not found")."""
        split = _split(key, self.flags & (KEY_DOMAIN | KEY_USER))
        if not _complete(split, self.flags & KEY_DOMAIN, self.flags & KEY_USER):
            return None
        labels = self._labels(split[1])
        if labels is None:
            return None
        return self._expand(self.query, key, split, key, split, labels, quote)

    def expand_result(self, value: str, key: str) -> str | None:
        """One column value through result_format; None when it is skipped."""
        vsplit = _split(value, self.flags & (VALUE_DOMAIN | VALUE_USER))
        if not _complete(vsplit, self.flags & VALUE_DOMAIN, self.flags & VALUE_USER):
            return None
        ksplit = _split(key, self.flags & (KEY_DOMAIN | KEY_USER))
        labels = self._labels(ksplit[1])
        if not _complete(ksplit, self.flags & KEY_DOMAIN, self.flags & KEY_USER) or labels is None:
            return None    # the query was not sent for such a key
        return self._expand(self.result, value, vsplit, key, ksplit, labels, None)

    def _labels(self, domain: str | None) -> list[str] | None:
        """The domain's labels when %1..%9 need them (argv_split drops empty ones)."""
        if not self.nparts:
            return []
        labels = [label for label in (domain or "").split(".") if label]
        return labels if len(labels) >= self.nparts else None

    @staticmethod
    def _expand(parts, value, vsplit, key, ksplit, labels, quote) -> str:
        out = []
        for part in parts:
            if part[0] != "%" or len(part) != 2:
                out.append(part)
                continue
            code = part[1]
            if code == "%":
                out.append("%")
                continue
            if code == "s":
                text = value
            elif code == "S":
                text = key
            elif code == "u":
                text = vsplit[0] if vsplit[1] is not None else value
            elif code == "U":
                text = ksplit[0] if ksplit[1] is not None else key
            elif code == "d":
                text = vsplit[1]
            elif code == "D":
                text = ksplit[1]
            else:
                text = labels[-int(code)]
            out.append(quote(text) if quote else text)
        return "".join(out)


def _split(text: str, wanted: int) -> tuple[str, str | None]:
    """(local part, domain) at the last "@"; domain None without one (or not wanted)."""
    if not wanted:
        return text, None
    local, at, domain = text.rpartition("@")
    return (local, domain) if at else (text, None)


def _complete(split: tuple[str, str | None], needs_domain: int, needs_user: int) -> bool:
    local, domain = split
    if needs_domain and not domain:
        return False
    return not (needs_user and domain is not None and not local)


@dataclass(frozen=True)
class Settings:
    """A mysql_table(5) file, checked. ``lines`` maps each setting to its line."""

    path: str
    values: dict[str, str | None]
    hosts: tuple[Host, ...]
    query: str
    templates: Templates
    lines: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str):
        return self.values[name]

    def number(self, name: str, minimum: int) -> int:
        return _number(self.values[name], minimum, self.path, self.lines.get(name), name)

    def flag(self, name: str) -> bool | None:
        """A boolean setting; None when unset (tls_verify_cert: the library's default)."""
        value = self.values[name]
        if value is None:
            return None
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{name}: bad boolean value: {value}", file=self.path,
                          line=self.lines.get(name))


def _number(text, minimum: int, path, line, name) -> int:
    if text is None or not text.strip().isdigit() or int(text) < minimum:
        raise ConfigError(f"{name}: bad numerical value: {text} (expected a number >= {minimum})",
                          file=path, line=line)
    return int(text)


def read_settings(path: str) -> Settings:
    """The checked settings of the mysql_table(5) file *path*.

    ConfigError names file and line of an unknown setting or a bad value, and
    the file of a missing one; OSError when the file cannot be read."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    values, lines = dict(SETTINGS), {}
    for setting in parse_main_cf(text, path):
        if setting.name not in SETTINGS:
            raise ConfigError(f"unknown mysql_table(5) setting: {setting.name}",
                              file=path, line=setting.line)
        values[setting.name], lines[setting.name] = setting.value, setting.line
    return _checked(path, values, lines)


def _checked(path: str, values: dict, lines: dict) -> Settings:
    def missing(name: str) -> ConfigError:
        return ConfigError(f"missing mysql_table(5) setting: {name}", file=path,
                           line=lines.get(name))
    if not values["dbname"]:
        raise missing("dbname")
    for name in ("charset", "result_format"):
        if not values[name]:
            raise missing(name)
    query = values["query"]
    if query is None:
        for name in _LEGACY:
            if not values[name]:
                raise missing(name)
        query = (f"SELECT {values['select_field']} FROM {values['table']} "
                 f"WHERE {values['where_field']}='%s' {values['additional_conditions']}")
    hosts = []
    for item in values["hosts"].replace(",", " ").split() or ["localhost"]:
        try:
            hosts.append(parse_host(item))
        except ValueError as exc:
            raise ConfigError(f"hosts: {exc}", file=path, line=lines.get("hosts")) from None
    templates = Templates.checked(path, query, values["result_format"], lines)
    settings = Settings(path, values, tuple(hosts), query, templates, lines)
    for name in ("idle_interval", "retry_interval"):
        settings.number(name, 1)
    settings.number("expansion_limit", 0)
    settings.flag("require_result_set")
    settings.flag("tls_verify_cert")
    for name in ("option_file", "tls_cert_file", "tls_key_file", "tls_CAfile"):
        if values[name] and not os.path.isfile(values[name]):
            raise ConfigError(f"{name}: no such file: {values[name]}", file=path,
                              line=lines.get(name))
    return settings


_NAMED = re.compile(r"(?<![\w:])(?:proxy:)*mysql:([^\s,{}]+)")


def check_named_files(config) -> None:
    """``relayd config check``: read every mysql: file the configuration names
    (main.cf values, master.cf -o overrides); ConfigError for the first bad
    one, a warning for one that cannot be read (its lookups would get 4xx)."""
    texts = [*config.explicit().values()]
    for service in config.services:
        texts += service.overrides.values()
    paths = dict.fromkeys(m.group(1) for t in texts for m in _NAMED.finditer(config.expand(t)))
    for path in paths:
        try:
            read_settings(path)
        except OSError as exc:
            logging.getLogger("relayd.config").warning("mysql:%s: open %s: %s", path, path,
                                                       exc.strerror)
