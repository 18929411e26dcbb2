"""A recording SMTP sink: the real, independent peer of integration tests.

Plain ``socket`` + ``threading`` (no gevent, no relayd code), so it runs as a
separate peer while relayd greenlets or a relayd subprocess talk to it.
It records every completed transaction and can be told to fail::

    sink = Sink(); sink.start()
    sink.reply_for_rcpt = {"bad@x": "550 5.1.1 No such user"}
    sink.data_reply = "451 4.3.0 try later"      # None: accept
    sink.refuse = True                            # close new connections at once
    sink.data_delay = 0.3                         # a slow server: wait before the final 250
    sink.wait_for(1, timeout=5); sink.messages[0].data

The sink advertises PIPELINING, 8BITMIME and SIZE and counts sessions
(``sessions``) and the most sessions open at once (``max_concurrent``);
each transaction records when its MAIL FROM came (``mail_time``, monotonic).
Each received chunk of bytes is kept in ``Transaction.reads`` (one entry per
``recv``) so a test can see that pipelined commands arrived together.

STARTTLS and AUTH, for the delivery side's TLS and SASL tests::

    sink.tls_context = sink_tls_context(certs)   # offer STARTTLS (stdlib ssl)
    sink.auth = {"user": "secret"}                # offer AUTH PLAIN LOGIN
    sink.auth_tls_only = True                     # ... only after STARTTLS
    sink.starttls_reply = "454 4.7.0 TLS not available"   # refuse STARTTLS
    sink.wrapper = True                           # implicit TLS: handshake, then greeting

Each transaction records ``tls`` (the protocol, e.g. "TLSv1.3", or None
in plaintext), ``tls_resumed`` (the handshake resumed an earlier session)
and ``user`` (who authenticated, or None); ``auth_failures`` counts
refused AUTH attempts and ``verbs`` lists every command verb received.
"""
from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

__all__ = ["Sink", "Transaction", "sink_tls_context"]

_EHLO_KEYWORDS = ("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES")


@dataclass
class Transaction:
    """One mail transaction the sink took (DATA ended with a 250)."""
    sender: str
    recipients: list[str]
    params: str
    helo: str
    data: bytes = b""        # the content after un-dot-stuffing, CRLF lines
    raw: bytes = b""         # the DATA bytes exactly as received, end mark included
    reads: list[bytes] = field(default_factory=list)
    session: int = 0
    tls: str | None = None   # TLS protocol of the session, None in plaintext
    tls_resumed: bool = False
    user: str | None = None  # the AUTH user of the session
    mail_time: float = 0.0   # time.monotonic() when MAIL FROM came


def sink_tls_context(certs, **versions) -> ssl.SSLContext:
    """A server context with the test server certificate (tests/support/certs.py);
    ``minimum_version``/``maximum_version`` (ssl.TLSVersion) as given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert("server"), certs.key("server"))
    for name, version in versions.items():
        setattr(ctx, name, version)
    return ctx


class Sink:
    """An SMTP server on ``host:port`` (0: an ephemeral port) that records."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.messages: list[Transaction] = []
        self.rejected: list[Transaction] = []   # transactions whose DATA was refused
        self.reply_for_rcpt: dict[str, str] = {}
        self.mail_reply: str | None = None
        self.data_reply: str | None = None
        self.refuse = False
        self.data_delay = 0.0       # seconds to wait before answering the final dot
        self.tls_context: ssl.SSLContext | None = None
        self.auth: dict[str, str] | None = None
        self.auth_tls_only = False
        self.starttls_reply: str | None = None   # say this to STARTTLS, and no handshake
        self.wrapper = False        # implicit TLS (port 465 style): tls_context before the greeting
        self.auth_failures = 0
        self.verbs: list[str] = []   # every command verb received, in order
        self.sessions = 0
        self.max_concurrent = 0
        self._open = 0
        self._cond = threading.Condition()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()

    def start(self) -> "Sink":
        """Bind (SO_REUSEADDR, so a restart keeps its port) and serve."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._listener is not None:
            _shutdown(self._listener)  # shutdown wakes the thread blocked in accept()
            self._listener = None
        with self._cond:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            _shutdown(conn)

    @property
    def open_sessions(self) -> int:
        """Sessions whose connection is still open."""
        with self._cond:
            return self._open

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Transaction]:
        """Block until at least ``n`` messages were recorded; AssertionError if not."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"sink got {len(self.messages)} messages, wanted {n}")
                self._cond.wait(left)
            return list(self.messages)

    # --- serving ---------------------------------------------------------------
    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if self.refuse:
                _shutdown(conn)
                continue
            # Replies to pipelined commands are separate writes here; without
            # NODELAY, Nagle + delayed ACK would stall each by ~40 ms.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                self.sessions += 1
                self._open += 1
                self.max_concurrent = max(self.max_concurrent, self._open)
                self._conns.add(conn)
                number = self.sessions
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conversation = _Conversation(self, conn, number)
        try:
            conversation.run()
        except OSError:
            pass
        finally:
            with self._cond:
                self._open -= 1
                self._conns.discard(conn)
                self._conns.discard(conversation.conn)
            _shutdown(conversation.conn)

    def _record(self, transaction: Transaction, accepted: bool) -> None:
        with self._cond:
            (self.messages if accepted else self.rejected).append(transaction)
            self._cond.notify_all()


class _Conversation:
    """The server side of one SMTP session."""

    def __init__(self, sink: Sink, conn: socket.socket, number: int) -> None:
        self.sink, self.conn, self.number = sink, conn, number
        self.buffer = b""
        self.reads: list[bytes] = []
        self.helo = ""
        self.txn: Transaction | None = None
        self.tls: str | None = None
        self.tls_resumed = False
        self.user: str | None = None

    def run(self) -> None:
        if self.sink.wrapper and not self.start_tls():
            return
        self.send("220 sink.test ESMTP")
        while True:
            line = self.read_line()
            if line is None:
                return
            verb, _, arg = line.decode("utf-8", "replace").partition(" ")
            self.sink.verbs.append(verb.upper())
            handler = getattr(self, "do_" + verb.upper(), None)
            if handler is None:
                self.send("502 5.5.2 Error: command not recognized")
            elif handler(arg) is False:
                return

    def do_EHLO(self, arg: str) -> None:
        self.helo, self.txn = arg, None
        lines = ["sink.test", *_EHLO_KEYWORDS]
        if self.sink.tls_context is not None and self.tls is None:
            lines.append("STARTTLS")  # (never after TLS, so never in wrapper mode)
        if self.sink.auth is not None and (self.tls or not self.sink.auth_tls_only):
            lines.append("AUTH PLAIN LOGIN")
        self.send("\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}")

    def do_HELO(self, arg: str) -> None:
        self.helo, self.txn = arg, None
        self.send("250 sink.test")

    def do_MAIL(self, arg: str) -> None:
        if self.sink.mail_reply:
            return self.send(self.sink.mail_reply)
        self.reads = self.reads[-1:]  # this transaction's reads start with MAIL's
        address, _, params = arg[len("FROM:"):].partition(" ")
        self.txn = Transaction(address.strip("<>"), [], params, self.helo, session=self.number,
                               tls=self.tls, tls_resumed=self.tls_resumed, user=self.user,
                               mail_time=time.monotonic())
        self.send("250 2.1.0 Ok")

    def do_RCPT(self, arg: str) -> None:
        if self.txn is None:
            return self.send("503 5.5.1 Error: need MAIL command")
        address = arg[len("TO:"):].split(" ")[0].strip("<>")
        reply = self.sink.reply_for_rcpt.get(address)
        if reply:
            return self.send(reply)
        self.txn.recipients.append(address)
        self.send("250 2.1.5 Ok")

    def do_DATA(self, arg: str) -> bool | None:
        if self.txn is None or not self.txn.recipients:
            return self.send("554 5.5.1 Error: no valid recipients")
        self.send("354 End data with <CR><LF>.<CR><LF>")
        raw = self.read_data()
        if raw is None:
            return False
        txn, self.txn = self.txn, None
        txn.raw, txn.reads = raw, list(self.reads)
        txn.data = b"".join(line[1:] if line.startswith(b".") else line
                            for line in raw[:-3].splitlines(keepends=True))
        accepted = self.sink.data_reply is None
        if self.sink.data_delay:
            time.sleep(self.sink.data_delay)   # the slow server itself, not a wait in a test
        self.sink._record(txn, accepted)
        self.send("250 2.0.0 Ok: queued as SINK%d" % len(self.sink.messages)
                  if accepted else self.sink.data_reply)
        return None

    def do_STARTTLS(self, arg: str) -> bool | None:
        if self.sink.tls_context is None or self.tls is not None:
            return self.send("502 5.5.1 Error: command not implemented")
        if self.sink.starttls_reply is not None:
            return self.send(self.sink.starttls_reply)
        self.send("220 2.0.0 Ready to start TLS")
        self.buffer = b""  # nothing sent before the handshake counts (CVE-2011-0411)
        self.helo, self.txn = "", None
        return None if self.start_tls() else False

    def start_tls(self) -> bool:
        """The server's handshake; False when it failed."""
        try:
            self.conn = self.sink.tls_context.wrap_socket(self.conn, server_side=True)
        except (ssl.SSLError, OSError):
            return False
        with self.sink._cond:  # the plain socket is detached now: stop() must reach this one
            self.sink._conns.add(self.conn)
        self.tls, self.tls_resumed = self.conn.version(), self.conn.session_reused
        return True

    def do_AUTH(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        if self.sink.auth is None or self.user is not None:
            return self.send("503 5.5.1 Error: authentication not enabled")
        if mechanism.upper() == "PLAIN":
            decoded = _b64(initial or self.challenge(""))
            parts = decoded.split(b"\0") if decoded else []
            user, password = (parts[1], parts[2]) if len(parts) == 3 else (None, None)
        elif mechanism.upper() == "LOGIN":
            user = self.challenge("VXNlcm5hbWU6")
            password = self.challenge("UGFzc3dvcmQ6") if user is not None else None
            user, password = _b64(user), _b64(password)
        else:
            return self.send("504 5.5.4 Unsupported authentication mechanism")
        name = user.decode("utf-8", "replace") if user is not None else None
        if name is not None and password is not None and \
                self.sink.auth.get(name) == password.decode("utf-8", "replace"):
            self.user = name
            return self.send("235 2.7.0 Authentication successful")
        self.sink.auth_failures += 1
        self.send("535 5.7.8 Error: authentication failed: authentication failure")

    def challenge(self, text: str) -> str | None:
        """Send a 334 challenge; the client's answer (None when it cancels)."""
        self.send(f"334 {text}")
        line = self.read_line()
        return None if line is None or line == b"*" else line.decode("ascii", "replace")

    def do_RSET(self, arg: str) -> None:
        self.txn = None
        self.send("250 2.0.0 Ok")

    def do_NOOP(self, arg: str) -> None:
        self.send("250 2.0.0 Ok")

    def do_QUIT(self, arg: str) -> bool:
        self.send("221 2.0.0 Bye")
        return False

    # --- bytes -----------------------------------------------------------------
    def send(self, text: str) -> None:
        self.conn.sendall(text.encode() + b"\r\n")

    def fill(self) -> bool:
        chunk = self.conn.recv(65536)
        if not chunk:
            return False
        self.reads.append(chunk)
        self.buffer += chunk
        return True

    def read_line(self) -> bytes | None:
        while b"\r\n" not in self.buffer:
            if not self.fill():
                return None
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_data(self) -> bytes | None:
        start = 0
        while True:
            if self.buffer.startswith(b".\r\n"):
                end = 3
                break
            end = self.buffer.find(b"\r\n.\r\n", start)
            if end >= 0:
                end += 5
                break
            start = max(0, len(self.buffer) - 4)
            if not self.fill():
                return None
        raw, self.buffer = self.buffer[:end], self.buffer[end:]
        return raw


def _b64(text: str | None) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) if text is not None else None
    except ValueError:
        return None


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
