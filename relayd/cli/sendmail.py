"""``sendmail``, as Postfix's: local submission into the maildrop (see relayd.maildrop).

    sendmail [-t] [-i|-oi] [-f sender] [-F name] [-N dsn] [-R ret] [-V envid] rcpt...
    sendmail -bs          SMTP on stdin/stdout (relayd's SMTP core, no network)
    sendmail -bp          = mailq
    sendmail -q           = postqueue -f (-qRsite: postqueue -s site; -qInterval: ignored)
    sendmail -bi | -I     = newaliases
    mailq, newaliases     sendmail called by these names (links): -bp, -bi
    sendmail -bv rcpt...  what would happen to each recipient (printed, not mailed)

The message is written to ``$queue_directory/maildrop`` whole, then renamed
into place; the running relayd is woken through ``public/pickup`` and
queues it (relayd.pickup). With relayd down the file waits there: nothing
is lost. The submitter needs no write access to the queue, only to the
maildrop. Input is bounded: message_size_limit, and relayd_sendmail_timeout
for each read. Other options Postfix accepts are accepted and ignored as
Postfix ignores them.
"""
from __future__ import annotations

import getopt
import os
import pwd
import select
import sys
from email.utils import getaddresses

from relayd import maildrop
from relayd.cli.queue_cmd import EX_UNAVAILABLE

EX_USAGE = 64
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_SOFTWARE = 70
OPTIONS = "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q:r:tvx"
_NOTIFY = {"never", "success", "delay", "failure"}
_MODES = {"m": "deliver", "s": "smtp", "p": "mailq", "i": "newaliases", "v": "verify"}
# The mode sendmail starts in when called by these names (Postfix's sendmail.c).
_NAMED_MODES = {"mailq": ("mailq", "p"), "newaliases": ("newaliases", "i")}


class InputError(Exception):
    """The input could not be taken: too big, too slow, or unreadable."""


def main(argv: list[str] | None = None) -> int:
    """The sendmail command; the exit status. Called by the name mailq or
    newaliases (a link to it, as Debian's /usr/bin/mailq is), it starts in that
    mode, as Postfix's sendmail does; options may still change it (-bp...)."""
    invoked = "sendmail"
    if argv is None:
        argv, invoked = sys.argv[1:], os.path.basename(sys.argv[0])
    try:
        # "-q" alone takes no argument (getopt would take the next word as one).
        opts, recipients = getopt.getopt(["-q!" if a == "-q" else a for a in argv], OPTIONS)
    except getopt.GetoptError as exc:
        return _fatal(str(exc), EX_USAGE)
    o = _Options(opts, *_NAMED_MODES.get(invoked, ("deliver", "m")))
    if o.error:
        return _fatal(o.error, EX_USAGE)
    from relayd.config import ConfigError, config_directory, load_config
    try:
        config = load_config(config_directory(o.config_directory))
    except ConfigError as exc:
        return _fatal(str(exc), 78)
    queue_directory = config["queue_directory"]
    if o.mode == "mailq":
        from relayd.cli.postqueue import show
        return show(queue_directory, False, "sendmail")
    if o.mode == "flush":
        from relayd.cli.postqueue import flush
        return flush(queue_directory, [f"site={o.site}"] if o.site else [], "sendmail")
    if o.mode == "newaliases":
        from relayd.cli.postalias import newaliases_main
        return newaliases_main(["-c", o.config_directory] if o.config_directory else [])
    if o.mode == "ignore":
        return 0
    if o.mode not in ("deliver", "smtp", "verify"):
        return _fatal(f"unsupported option: -b{o.mode_letter}", EX_USAGE)
    timeout = config["relayd_sendmail_timeout"]
    limit = config["message_size_limit"]
    if o.mode == "smtp":
        from relayd.cli.sendmail_smtp import serve
        return serve(config, timeout, lambda sub: _drop(sub, queue_directory, o))
    recipients = _addresses(recipients)
    content, headers = b"", []
    try:
        if o.mode == "deliver" or o.extract:   # -bv reads a message only to extract
            content, headers = read_message(sys.stdin.fileno(), o.dot_ignore, limit, timeout,
                                            extract=o.extract)
    except InputError as exc:
        return _fatal(str(exc), EX_DATAERR)
    recipients += headers
    if not recipients:
        return _fatal("No recipient addresses found in message header" if o.extract
                      else "Recipient addresses must be specified on the command line or via the -t option",
                      EX_USAGE)
    if o.mode == "verify":
        return verify(config, recipients)
    sub = maildrop.Submission(_sender(o), recipients, content, _full_name(o), o.params)
    return _drop(sub, queue_directory, o)


def verify(config, recipients: list[str]) -> int:
    """sendmail -bv: what relayd would do with each recipient, one line each on
    stdout (Postfix mails this report to the sender; relayd prints it)."""
    from relayd.delivery.route import DISCARD, ERROR, Router
    from relayd.tables.base import TemporaryLookupError
    router = Router(config)
    for rcpt in recipients:
        try:
            transport = router.resolve(rcpt)
        except TemporaryLookupError as exc:
            print(f"<{rcpt}>: deferred: {exc}")
            continue
        if transport.kind == ERROR:
            print(f"<{rcpt}>: undeliverable: {transport.nexthop}")
        elif transport.kind == DISCARD:
            print(f"<{rcpt}>: discarded: {transport.nexthop}")
        elif transport.kind is None:
            print(f"<{rcpt}>: undeliverable: mail transport unavailable: {transport.name}")
        else:
            via = f"{transport.name}:{transport.nexthop}" if transport.nexthop else transport.name
            print(f"<{rcpt}>: deliverable via {via}")
    return 0


class _Options:
    """sendmail's options, as Postfix's sendmail.c reads them."""

    def __init__(self, opts, mode: str, mode_letter: str):
        self.config_directory = None
        self.mode, self.mode_letter, self.site = mode, mode_letter, ""
        self.extract = self.dot_ignore = False
        self.sender = self.full_name = None
        self.params: dict[str, str] = {}
        self.error = ""
        for flag, value in opts:
            self._take(flag, value)

    def _take(self, flag: str, value: str) -> None:
        if flag == "-C":   # Postfix: a main.cf file or its directory
            self.config_directory = os.path.dirname(value) if value.endswith(".cf") else value
        elif flag in ("-f", "-r"):
            self.sender = value
        elif flag == "-F":
            self.full_name = value
        elif flag == "-t":
            self.extract = True
        elif flag == "-i" or (flag == "-o" and value == "i"):
            self.dot_ignore = True
        elif flag == "-I":
            self.mode = "newaliases"
        elif flag == "-b":
            self.mode_letter = value[:1]
            self.mode = _MODES.get(value[:1], value)
        elif flag == "-q":
            self._queue_option(value)
        elif flag == "-N":
            self._notify(value)
        elif flag == "-R":
            if value.lower() not in ("full", "hdrs"):
                self.error = f"-R option requires full or hdrs: {value}"
            self.params["RET"] = value.upper()
        elif flag == "-V":
            self.params["ENVID"] = value
        # Everything else (-B -G -L -O -U -X -c -e -h -m -n -o... -p -v -x -A) is
        # accepted and ignored, as Postfix's sendmail ignores it.

    def _queue_option(self, value: str) -> None:
        if value == "!":
            self.mode = "flush"
        elif value.startswith("R"):
            self.mode, self.site = "flush", value[1:]
        else:   # -qInterval: a daemon option Postfix ignores
            self.mode = "ignore"

    def _notify(self, value: str) -> None:
        words = {w.strip().lower() for w in value.split(",") if w.strip()}
        if not words or words - _NOTIFY or ("never" in words and len(words) > 1):
            self.error = f"bad -N option value: {value}"
        self.params["NOTIFY"] = ",".join(sorted(w.upper() for w in words))


def read_message(fd: int, dot_ignore: bool, limit: int, timeout: float, *,
                 extract: bool = False) -> tuple[bytes, list[str]]:
    """The message on file descriptor ``fd`` in SMTP wire form (CRLF, dot-stuffed) and, with
    ``extract`` (-t), the To:/Cc:/Bcc: recipients (Bcc: headers removed). A
    line "." alone ends it unless ``dot_ignore`` (-i); a leading mbox "From "
    line is dropped. InputError beyond ``limit`` bytes or ``timeout`` seconds a read."""
    out, recipients, header, in_headers, bcc = [], [], [], True, False
    size = 0
    for n, line in enumerate(read_lines(fd, limit, timeout)):
        line = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
        if n == 0 and line.startswith(b"From "):
            continue
        if not dot_ignore and line == b".":
            break
        if in_headers:
            if not line:
                in_headers = False
            elif line[:1] in (b" ", b"\t") and header:
                header.append(line)
                if bcc and extract:
                    continue
            else:
                recipients += _header_recipients(header) if extract else []
                header = [line]
                bcc = line.split(b":", 1)[0].strip().lower() == b"bcc"
                if bcc and extract:
                    continue
        wire = (b"." + line if line.startswith(b".") else line) + b"\r\n"
        size += len(line) + 2
        if limit and size > limit:
            raise InputError("message file too big")
        out.append(wire)
    if in_headers or header:
        recipients += _header_recipients(header) if extract else []
    return b"".join(out), recipients


def _header_recipients(lines: list[bytes]) -> list[str]:
    if not lines:
        return []
    name, _, value = b" ".join(lines).partition(b":")
    if name.strip().lower() not in (b"to", b"cc", b"bcc"):
        return []
    return _addresses([value.decode("utf-8", "replace")])


def read_lines(fd: int, limit: int, timeout: float):
    """Lines of ``fd``, each read within ``timeout`` seconds, at most about twice
    ``limit`` bytes in all (CRLF input counts its CRs; 0: no limit)."""
    pending, total = b"", 0
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise InputError(f"timeout after {timeout:g}s reading the message")
        chunk = os.read(fd, 65536)
        total += len(chunk)
        if limit and total > 2 * limit + 65536:
            raise InputError("message file too big")
        if not chunk:
            if pending:
                yield pending
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"


def _addresses(values: list[str]) -> list[str]:
    """Addresses in command-line arguments or header values ("a@b, Name <c@d>")."""
    return [addr for _, addr in getaddresses(values) if addr]


def _login() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(os.getuid())
    except KeyError:
        return None


def _sender(o: _Options) -> str:
    if o.sender is not None:
        return o.sender.strip().strip("<>")
    who = _login()
    return who.pw_name if who else f"uid{os.getuid()}"


def _full_name(o: _Options) -> str:
    if o.full_name is not None:
        return o.full_name
    who = _login()
    return os.environ.get("NAME") or (who.pw_gecos.split(",")[0] if who else "")


def _drop(sub: maildrop.Submission, queue_directory: str, o) -> int | str:
    """Into the maildrop, then wake pickup; the exit status (the file name for -bs)."""
    from relayd.pickup import wake
    try:
        path = maildrop.write(maildrop.directory(queue_directory), sub)
    except OSError as exc:
        return _fatal(f"cannot write to the maildrop {maildrop.directory(queue_directory)}: "
                      f"{exc.strerror}", EX_TEMPFAIL if o.mode == "deliver" else EX_UNAVAILABLE)
    wake(queue_directory)   # relayd down: the file waits for its next start
    return os.path.basename(path) if o.mode == "smtp" else 0


def _fatal(text: str, status: int) -> int:
    print(f"sendmail: fatal: {text}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
