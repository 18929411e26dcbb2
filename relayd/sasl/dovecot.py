"""``smtpd_sasl_type = dovecot``: passwords checked by Dovecot's auth server.

The client side of Dovecot's authentication protocol (version 1) as
Postfix's src/xsasl/xsasl_dovecot_server.c speaks it::

    -> VERSION 1 0 / CPID pid
    <- VERSION 1 x, MECH name [flags]..., SPID, CUID, COOKIE, DONE
    -> AUTH id PLAIN service=smtp nologin lip=.. rip=.. [secured] resp=base64
    <- OK id user=.. | FAIL id [user=..] [reason=..] [temp]

(fields separated by TAB, lines by LF). The SASL mechanisms stay relayd's
(relayd/sasl/mechanisms.py decodes PLAIN and LOGIN): Dovecot always gets the
user name and password as one PLAIN message. Each check opens its own
connection on a gevent socket, so a session waits and the event loop does
not; relayd_sasl_auth_timeout bounds the whole exchange. Anything but a
clear OK or FAIL (no socket, a timeout, a protocol error) is TEMP (454),
never an accept.
"""
from __future__ import annotations

import logging
import os
from base64 import b64encode

import gevent
from gevent import socket

from relayd.config.errors import ConfigError
from relayd.sasl.backend import (BAD_CREDENTIALS, FAIL, OK, TEMP, AuthClient,
                                 AuthResult)
from relayd.smtp.text import printable

log = logging.getLogger("relayd.smtpd")

__all__ = ["DovecotBackend", "socket_address"]

# Longer lines from the auth server are a protocol error, not something to buffer.
_MAX_LINE = 16384
_CONNECT_FAILED = "Can't connect to authentication server"
_LOST = "Connection lost to authentication server"
_REQUEST = "1"   # one request per connection: its id is always 1


class _AuthServerError(Exception):
    """The auth server could not be reached or spoke out of protocol; args[0] is the reply."""


def socket_address(path: str, queue_directory: str) -> tuple[int, object]:
    """(address family, address) of smtpd_sasl_path: ``inet:host:port``, or a UNIX
    socket path (``unix:`` optional), relative ones under queue_directory as Postfix
    resolves them (it runs in the queue directory)."""
    if path.startswith("inet:"):
        host, _, port = path[5:].rpartition(":")
        return socket.AF_INET6 if ":" in host else socket.AF_INET, (host.strip("[]"), int(port))
    if path.startswith("unix:"):
        path = path[5:]
    return socket.AF_UNIX, os.path.join(queue_directory, path)


class DovecotBackend:
    """Check passwords with Dovecot's auth server at smtpd_sasl_path."""

    def __init__(self, config):
        self.path = config["smtpd_sasl_path"]
        try:
            self.family, self.address = socket_address(self.path, config["queue_directory"])
        except ValueError:
            raise ConfigError(f"bad smtpd_sasl_path: {self.path!r} (a socket path or "
                              "inet:host:port)", parameter="smtpd_sasl_path") from None
        self.service = config["smtpd_sasl_service"]
        self.timeout = config["relayd_sasl_auth_timeout"]

    def mechanisms(self) -> tuple[str, ...]:
        return ("PLAIN", "LOGIN")

    def verify(self, username: str, password: bytes, client: AuthClient | None = None
               ) -> AuthResult:
        client = client or AuthClient("")
        try:
            with gevent.Timeout(self.timeout, _AuthServerError(_LOST)):
                return self._exchange(username, password, client)
        except _AuthServerError as exc:
            return AuthResult(TEMP, exc.args[0])

    def _exchange(self, username: str, password: bytes, client: AuthClient) -> AuthResult:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            try:
                sock.connect(self.address)
            except OSError as exc:
                log.warning("SASL: Connect to Dovecot auth socket '%s' failed: %s",
                            self.path, exc.strerror or exc)
                raise _AuthServerError(_CONNECT_FAILED) from None
            lines = _Lines(sock)
            try:
                sock.sendall(f"VERSION\t1\t0\nCPID\t{os.getpid()}\n".encode())
                if "PLAIN" not in _handshake(lines):
                    log.warning("SASL: Dovecot auth server at '%s' offers no PLAIN mechanism",
                                self.path)
                    raise _AuthServerError("Authentication backend error")
                sock.sendall(self._auth_line(username, password, client))
                return _reply(lines)
            except OSError:
                raise _AuthServerError(_LOST) from None
        finally:
            sock.close()

    def _auth_line(self, username: str, password: bytes, client: AuthClient) -> bytes:
        response = b64encode(b"\0" + username.encode() + b"\0" + password).decode()
        fields = ["AUTH", _REQUEST, "PLAIN", f"service={self.service}", "nologin"]
        if client.local_addr:
            fields.append(f"lip={client.local_addr}")
        if client.addr:
            fields.append(f"rip={client.addr}")
        if client.secured:
            fields.append("secured")
        fields.append(f"resp={response}")
        return ("\t".join(fields) + "\n").encode()


class _Lines:
    """LF-terminated lines from the auth server, at most _MAX_LINE bytes each."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()

    def next(self) -> list[str]:
        """The next line's TAB-separated fields; _AuthServerError at EOF or on a long line."""
        buf = self.buffer
        while (end := buf.find(b"\n")) < 0:
            if len(buf) > _MAX_LINE:
                raise _AuthServerError("Authentication backend error")
            data = self.sock.recv(4096)
            if not data:
                raise _AuthServerError(_LOST)
            buf += data
        line = bytes(buf[:end])
        del buf[:end + 1]
        return line.decode("utf-8", "replace").split("\t")


def _handshake(lines: _Lines) -> set[str]:
    """Read the server's handshake up to DONE; the names of its mechanisms."""
    mechanisms = set()
    while True:
        fields = lines.next()
        command = fields[0]
        if command == "VERSION" and fields[1:2] != ["1"]:
            log.warning("SASL: Protocol version mismatch (%s vs. 1)",
                        printable(fields[1] if len(fields) > 1 else "?"))
            raise _AuthServerError("Authentication backend error")
        if command == "MECH" and len(fields) > 1:
            if "private" not in fields[2:]:
                mechanisms.add(fields[1].upper())
        elif command == "SPID" and not mechanisms:
            log.warning("SASL: Connected to wrong auth socket "
                        "(auth-master instead of auth-client)")
            raise _AuthServerError("Authentication backend error")
        elif command == "DONE":
            return mechanisms


def _reply(lines: _Lines) -> AuthResult:
    """The answer to our AUTH: OK, or FAIL with Dovecot's reason."""
    while True:
        command, *fields = lines.next()
        if not fields or fields[0] != _REQUEST:
            continue   # not ours: ignored, as xsasl_dovecot_handle_reply does
        args = dict(field.partition("=")[::2] for field in fields[1:])
        if command == "OK":   # Postfix logs and checks Dovecot's user= as the login name
            if args.get("user"):
                return AuthResult(OK, username=printable(args["user"]))
            log.warning("missing Dovecot server OK username field")
            return AuthResult(FAIL, "Authentication backend error")
        if command == "FAIL":
            if "temp" in args:   # Dovecot could not check (its passdb failed)
                return AuthResult(TEMP, printable(args.get("reason", "")) or
                                  "Authentication backend error")
            reason = printable(args.get("reason", ""))
            return AuthResult(FAIL, reason) if reason else BAD_CREDENTIALS
        if command == "CONT":   # PLAIN needs no more steps: Dovecot is out of protocol
            raise _AuthServerError("Authentication backend error")
