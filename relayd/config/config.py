"""The loaded configuration: main.cf settings over relayd.params defaults,
the master.cf services, and ``load_config`` which reads and checks them."""
from __future__ import annotations

import logging
import os
import socket
from functools import cache
from typing import Iterable, Mapping

from relayd import params
from relayd.config.errors import ConfigError, UnusedParameter
from relayd.config.expand import ExpansionError, expand, references
from relayd.config.maincf import Setting, parse_main_cf
from relayd.config.mastercf import (DEFAULT_MASTER_CF, PIPE, Service, is_delivery_agent,
                                    is_listener, parse_master_cf)
from relayd.paramtypes import BadValue, convert, split_list

log = logging.getLogger("relayd.config")

_MISSING = object()
# Per-service parameters of a master.cf delivery service that relayd reads.
_SERVICE_SUFFIXES = ("destination_concurrency_limit", "destination_rate_delay",
                     "destination_recipient_limit")
# Transports that must name a service relayd can run (the pipe(8) check).
_TRANSPORT_PARAMS = ("default_transport", "relay_transport")


class Config:
    """An immutable configuration. ``config[name]`` is the expanded, typed
    value (see relayd.params for the types); ``raw(name)`` the text as written.
    Parameters set in main.cf that relayd does not declare are available as
    expanded strings (restriction class names); other unknown names raise
    KeyError, and a parameter declared only for compatibility raises
    UnusedParameter (``raw``, ``expand`` and ``config show`` still have it)."""

    __slots__ = ("_settings", "_defaults", "_cache", "config_directory", "services")

    def __init__(self, settings: Mapping[str, Setting], services: tuple[Service, ...],
                 config_directory: str | None, defaults: Mapping[str, str] | None = None):
        object.__setattr__(self, "_settings", dict(settings))
        object.__setattr__(self, "_defaults", dict(defaults or {}))
        object.__setattr__(self, "_cache", {})  # typed values; computing them changes nothing
        object.__setattr__(self, "config_directory", config_directory)
        object.__setattr__(self, "services", services)

    def __setattr__(self, name, value):
        raise AttributeError("Config is immutable; use with_overrides()")

    def __getitem__(self, name: str):
        value = self._cache.get(name, _MISSING)
        if value is not _MISSING:
            return value
        param = params.PARAMS.get(name)
        if param is not None and param.compat:
            raise UnusedParameter(name)
        return self._value(name, param)

    def _value(self, name: str, param: "params.Param | None"):
        """The typed value of *name* (*param* its declaration, if any); cached
        unless *param* is a compat one (whose value only _validate computes)."""
        if name in self._cache:
            return self._cache[name]
        if param is None and name not in self._settings:
            raise KeyError(name)
        setting = self._settings.get(name)
        where = {"file": setting.file, "line": setting.line} if setting else {}
        try:
            text = self._text(name, (name,))
            value = convert(param, text) if param else text
        except (ExpansionError, BadValue) as exc:
            raise ConfigError(str(exc), parameter=name, **where) from None
        if param is None or not param.compat:
            self._cache[name] = value
        return value

    def get(self, name: str, default=None):
        """``config[name]``, or *default* for an unknown name."""
        try:
            return self[name]
        except KeyError:
            return default

    def raw(self, name: str) -> str:
        """The unexpanded text of *name*: its setting, else its default."""
        if name in self._settings:
            return self._settings[name].value
        if name in self._defaults:
            return self._defaults[name]
        if name == "myhostname":
            return default_myhostname()
        if name == "mydomain":
            return self._text(name, (name,))
        if name in params.PARAMS:
            return params.PARAMS[name].default
        raise KeyError(name)

    def expand(self, text: str) -> str:
        """*text* with its ``$name`` forms expanded against this configuration."""
        try:
            return expand(text, self._text)
        except (ExpansionError, BadValue) as exc:
            raise ConfigError(str(exc)) from None

    def explicit(self) -> dict[str, str]:
        """The raw values set by main.cf and overrides (``config show -n``)."""
        return {name: setting.value for name, setting in self._settings.items()}

    def with_overrides(self, overrides: Mapping[str, object], *,
                       source: str = "override") -> "Config":
        """A checked copy with *overrides* (Postfix text or Python values) applied."""
        return self._derive([Setting(name, postfix_text(value), source)
                             for name, value in overrides.items()])

    def smtpd_listeners(self) -> list[tuple[Service, "Config"]]:
        """One (service, its configuration with -o applied) per inet smtpd
        service; a service without a host (``listen[0] == ""``) listens on
        $inet_interfaces (relayd.domains.Interfaces)."""
        return [(service, self._for_service(service))
                for service in self.services if is_listener(service)]

    def delivery_concurrency(self) -> int:
        """Parallel deliveries: maxproc of master.cf's smtp unix service (or of
        the first smtp(8) service) when it sets one, else default_process_limit."""
        agents = [s for s in self.services if is_delivery_agent(s)]
        chosen = next((s for s in agents if s.name == "smtp"), agents[0] if agents else None)
        if chosen is not None and chosen.maxproc:
            return chosen.maxproc
        return self["default_process_limit"]

    def _text(self, name: str, stack: tuple[str, ...]) -> str | None:
        """The expanded text of *name* (None if undefined); *stack* ends with name."""
        if name == "mydomain" and name not in self._settings and name not in self._defaults:
            return domain_of(expand("$myhostname", self._text, stack))
        try:
            raw = self.raw(name)
        except KeyError:
            return None
        text = expand(raw, self._text, stack)
        if name == "myorigin" and text.startswith("/"):
            return origin_from_file(text)
        return text

    def _derive(self, settings: Iterable[Setting],
                defaults: Mapping[str, str] | None = None) -> "Config":
        merged = {**self._settings, **{s.name: s for s in settings}}
        config = Config(merged, self.services, self.config_directory,
                        {**self._defaults, **(defaults or {})})
        config._validate()
        return config

    def _for_service(self, service: Service) -> "Config":
        """This configuration as *service* sees it: its -o overrides applied."""
        settings = [Setting(n, v, service.file, service.line) for n, v in service.overrides.items()]
        return self._derive(settings, {"service_name": service.name,
                                       "process_name": service.command})

    def _validate(self) -> None:
        """Compute every explicit and every typed value: the first bad one raises."""
        typed = [name for name, p in params.PARAMS.items()
                 if p.type not in ("str", "list") and name not in params.COMPUTED]
        for name in [*self._settings, *typed]:
            self._value(name, params.PARAMS.get(name))


def postfix_text(value: object) -> str:
    """A Python value as main.cf text: True -> yes, 5 -> 5, [a, b] -> "a, b"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def config_directory(option: str | None = None) -> str | None:
    """The configuration directory a program reads, chosen as Postfix's programs
    choose it: ``-c DIR`` (*option*), else $MAIL_CONFIG, else the compiled-in
    default (config_directory's, /etc/relayd: what the systemd unit and the docs
    use) when it exists. None when none applies: relayd's built-in defaults,
    which the tests and tools/demo run on."""
    if option:
        return option
    if os.environ.get("MAIL_CONFIG"):
        return os.environ["MAIL_CONFIG"]
    default = params.PARAMS["config_directory"].default
    return default if os.path.isdir(default) else None


def load_config(config_directory: str | None = None, *, main_cf: str | None = None,
                master_cf: str | None = None, **overrides) -> Config:
    """Read and check a configuration.

    *config_directory*: read DIR/main.cf and DIR/master.cf (each may be absent).
    *main_cf*, *master_cf*: the file contents as text (taking precedence over
    the directory's files). *overrides*: parameters, as Postfix text or Python
    values. Without a master.cf there is one service, "smtp inet n - n - - smtpd".
    Raises ConfigError for the first bad value or line.
    """
    main_file = _path(config_directory, "main.cf")
    master_file = _path(config_directory, "master.cf")
    if main_cf is None:
        main_cf = _read(config_directory, main_file) or ""
    if master_cf is None:
        master_cf = _read(config_directory, master_file)
    if master_cf is None:
        master_cf, master_file = DEFAULT_MASTER_CF, "(built-in master.cf)"
    settings = parse_main_cf(main_cf, main_file)
    if config_directory:
        # As postconf -c DIR does, the directory counts as set explicitly.
        settings.insert(0, Setting("config_directory", config_directory))
    settings += [Setting(n, postfix_text(v)) for n, v in overrides.items()]
    services = parse_master_cf(master_cf, master_file)
    _warn_unused(settings, services)
    config = Config({s.name: s for s in settings}, services, config_directory)
    config._validate()
    _check_transports(config)
    for service in services:
        config._for_service(service)
    return config


def _path(directory: str | None, name: str) -> str:
    return os.path.join(directory, name) if directory else name


def _read(directory: str | None, path: str) -> str | None:
    if not directory:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None


def _warn_unused(settings: list[Setting], services: tuple[Service, ...]) -> None:
    """Warn about settings of names no parameter has and nothing refers to."""
    texts = [s.value for s in settings]
    for service in services:
        texts += [*service.overrides.values(), *service.args]
    used = set().union(*(references(t) for t in texts))
    classes = [s.value for s in settings if s.name == "smtpd_restriction_classes"]
    used.update(split_list(classes[-1]) if classes else ())
    # The qmgr knobs of a delivery service (<transport>_destination_*, relayd.delivery.limits).
    used.update(f"{service.name}_{suffix}" for service in services if service.type == "unix"
                for suffix in _SERVICE_SUFFIXES)
    overrides = [Setting(n, v, s.file, s.line) for s in services for n, v in s.overrides.items()]
    for setting in [*settings, *overrides]:
        if setting.file and setting.name not in params.PARAMS and setting.name not in used:
            log.warning("%s, line %d: unused parameter: %s=%s",
                        setting.file, setting.line, setting.name, setting.value)


def _check_transports(config: Config) -> None:
    """Refuse a default or relay transport that is a pipe(8) service."""
    for param in _TRANSPORT_PARAMS:
        transport = config[param].partition(":")[0]
        for service in config.services:
            if service.name == transport and service.type == "unix" and service.command == PIPE:
                raise ConfigError(f"pipe(8) transport {transport} is not supported yet",
                                  file=service.file, line=service.line, parameter=param)


def origin_from_file(path: str) -> str:
    """The first line of *path*: Debian patches Postfix so that a myorigin starting
    with "/" names a file (its stock main.cf has ``myorigin = /etc/mailname``).
    BadValue in Debian's Postfix's words when it cannot be read or is empty."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError as exc:
        raise BadValue(f"{path}: cannot open file: {exc.strerror}") from None
    if not first:
        raise BadValue(f"myorigin file {path} is empty")
    return first


@cache
def default_myhostname() -> str:
    """socket.getfqdn(), computed once: the only name lookup relayd's defaults make."""
    return socket.getfqdn()


def domain_of(hostname: str) -> str:
    """The default mydomain for a myhostname: what follows the first dot, else 'localdomain'."""
    _, dot, rest = hostname.partition(".")
    return rest if dot and rest else "localdomain"
