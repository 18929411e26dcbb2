"""Reading master.cf: one service per logical line (master(5)).

Fields: service name, type, private, unpriv, chroot, wakeup, maxproc,
command, then arguments. ``-o name=value`` and ``-o { name = value }`` set
parameters for that service only. An argument may be written ``{ text }``
to hold blanks. relayd runs two kinds of service: ``smtpd`` inet services
(its listeners) and ``smtp`` unix services (its delivery agent, e.g. "smtp"
and "relay"); Postfix's other daemons are recognised and not run.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field, replace

from relayd.config.errors import ConfigError
from relayd.config.maincf import logical_lines

log = logging.getLogger("relayd.config")

TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")
SMTPD = "smtpd"
DELIVERY_AGENT = "smtp"
PIPE = "pipe"
# When /etc/services lacks an entry: the mail ports of RFC 5321, 6409, 8314.
WELL_KNOWN_PORTS = {"smtp": 25, "submission": 587, "smtps": 465, "submissions": 465}
DEFAULT_MASTER_CF = "smtp inet n - n - - smtpd\n"


@dataclass(frozen=True)
class Service:
    """One master.cf service. ``listen`` is (host, port) for inet services,
    host "" when the service listens on $inet_interfaces; None otherwise.
    ``maxproc`` is None for "-" (the default_process_limit)."""

    name: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: int | None
    command: str
    args: tuple[str, ...] = ()
    overrides: dict[str, str] = field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    listen: tuple[str, int] | None = None


def parse_master_cf(text: str, file: str) -> tuple[Service, ...]:
    """The services of a master.cf text, in file order."""
    services = tuple(_service(tokens(line), file, number)
                     for number, line in logical_lines(text, file))
    ignored = sorted({s.name for s in services if not (is_listener(s) or is_delivery_agent(s))})
    if ignored:
        log.info("%s: not running Postfix services relayd does not need: %s",
                 file, ", ".join(ignored))
    return services


def is_listener(service: Service) -> bool:
    """True for the inet smtpd services, which become relayd's listeners."""
    return service.type == "inet" and service.command == SMTPD


def is_delivery_agent(service: Service) -> bool:
    """True for the smtp(8) client services ("smtp", "relay", ...)."""
    return service.type == "unix" and service.command == DELIVERY_AGENT


def tokens(line: str) -> list[str]:
    """Split on whitespace; a ``{ ... }`` token (with its braces) may hold blanks."""
    out, i = [], 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        start, depth = i, 0
        while i < len(line) and (depth or not line[i].isspace()):
            depth += {"{": 1, "}": -1}.get(line[i], 0)
            i += 1
        out.append(line[start:i])
    return out


def _service(fields: list[str], file: str, number: int) -> Service:
    def error(message: str) -> ConfigError:
        return ConfigError(message, file=file, line=number)

    if len(fields) < 8:
        raise error(f"missing fields: \"{' '.join(fields)}\"")
    name, type_, private, unpriv, chroot, wakeup, maxproc, command = fields[:8]
    if type_ not in TYPES:
        raise error(f"bad transport type: {type_}")
    for label, value in (("private", private), ("unpriv", unpriv), ("chroot", chroot)):
        if value not in ("y", "n", "-"):
            raise error(f"bad {label} field: {value}")
    if wakeup != "-" and not wakeup.rstrip("?").isdigit():
        raise error(f"bad wakeup time: {wakeup}")
    if maxproc != "-" and not maxproc.isdigit():
        raise error(f"bad maximal process limit: {maxproc}")
    args, overrides = _arguments(fields[8:], error)
    service = Service(name, type_, private, unpriv, chroot, wakeup,
                      None if maxproc == "-" else int(maxproc), command, args, overrides,
                      file, number)
    if type_ == "inet":
        if command != SMTPD:
            raise error(f"inet service {name}: command {command} is not supported")
        return _with_listen(service, error)
    return service


def _arguments(fields: list[str], error) -> tuple[tuple[str, ...], dict[str, str]]:
    """Split command arguments into plain arguments and ``-o`` overrides."""
    args, overrides, rest = [], {}, iter(fields)
    for arg in rest:
        if arg == "-o":
            arg = next(rest, None)
            if arg is None:
                raise error("option -o requires a name=value argument")
        elif arg.startswith("-o"):
            arg = arg[2:]
        else:
            args.append(_unbrace(arg))
            continue
        name, eq, value = _unbrace(arg).partition("=")
        if not eq or not name.strip():
            raise error(f"bad -o argument, expected name=value: {arg}")
        overrides[name.strip()] = value.strip()
    return tuple(args), overrides


def _unbrace(arg: str) -> str:
    return arg[1:-1].strip() if arg.startswith("{") and arg.endswith("}") else arg


def _with_listen(service: Service, error) -> Service:
    """The service with ``listen`` set from its name."""
    return replace(service, listen=listen_address(service.name, error, "inet service name"))


def listen_address(text: str, error, what: str) -> tuple[str, int]:
    """(host, port) of ``port``, ``host:port`` or ``[ip6]:port`` (host "" for a
    port alone); ``error(message)`` makes the exception for bad text."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = ""
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise error(f"bad {what}, write an IPv6 address as [addr]:port: {text}")
    if not port:
        raise error(f"missing port in {what}: {text}")
    return host, _port(port, error)


def _port(port: str, error) -> int:
    if port.isdigit():
        return int(port)
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        if port in WELL_KNOWN_PORTS:
            return WELL_KNOWN_PORTS[port]
    raise error(f"unknown service: {port}/tcp")

