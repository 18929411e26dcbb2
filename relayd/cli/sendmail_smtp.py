"""``sendmail -bs``: an SMTP dialogue on stdin/stdout, through relayd's SMTP core
(relayd.smtp.server), each message dropped into the maildrop as sendmail's.

Like Postfix's sendmail -bs (smtpd in stand-alone mode), it makes no
network connection and needs no running relayd: the replies are relayd's
catalogue, "250 2.0.0 Ok: queued as NAME" names the maildrop file, and the
running relayd (or its next start) queues the message. Every read has the
relayd_sendmail_timeout deadline; a message over message_size_limit gets
552, as relayd's smtpd answers it.
"""
from __future__ import annotations

import os
import select
import sys

from relayd import maildrop
from relayd.smtp import events as ev
from relayd.smtp.replies import (
    R214_HELP, R221_BYE, R250_HELO, R250_OK, R250_QUEUED, R250_RECIPIENT_OK, R250_SENDER_OK,
    R252_VRFY, R354_START_DATA, R421_TIMEOUT, R451_QUEUE_WRITE_ERROR, R502_NOT_IMPLEMENTED)
from relayd.smtp.server import ProtocolError, ServerSession

_SIMPLE = {ev.Rset: R250_OK, ev.Noop: R250_OK, ev.Quit: R221_BYE, ev.Help: R214_HELP,
           ev.Data: R354_START_DATA, ev.Expn: R502_NOT_IMPLEMENTED,
           ev.StartTLS: R502_NOT_IMPLEMENTED, ev.Auth: R502_NOT_IMPLEMENTED}


def serve(config, timeout: float, deliver, fd_in: int | None = None,
          fd_out: int | None = None) -> int:
    """Run the dialogue until QUIT or end of input; ``deliver(Submission)`` returns
    the maildrop file name, or an exit status when the file could not be written."""
    fd_in = sys.stdin.fileno() if fd_in is None else fd_in
    fd_out = sys.stdout.fileno() if fd_out is None else fd_out
    hostname = config["myhostname"]
    session = ServerSession(hostname=hostname, message_size_limit=config["message_size_limit"],
                            line_length_limit=config["line_length_limit"])
    _write(fd_out, session.greeting(config.expand(config.raw("smtpd_banner"))))
    content: list[bytes] = []
    while True:
        try:
            event = session.next_event()
        except ProtocolError as exc:
            _write(fd_out, session.send(exc.reply))
            return 0
        if event is ev.NEED_DATA:
            ready, _, _ = select.select([fd_in], [], [], timeout)
            if not ready:
                _write(fd_out, session.send(R421_TIMEOUT.format(hostname)))
                return 0
            session.receive_data(os.read(fd_in, 65536))
            continue
        if isinstance(event, ev.ConnectionClosed):
            return 0
        if isinstance(event, ev.DataChunk):
            content.append(event.data)
            continue
        reply = _reply(session, event, content, deliver, hostname)
        _write(fd_out, session.send(reply))
        if isinstance(event, ev.Quit):
            return 0


def _reply(session, event, content: list[bytes], deliver, hostname: str):
    if isinstance(event, ev.Helo):
        return session.ehlo_reply() if event.extended else R250_HELO.format(hostname)
    if isinstance(event, ev.Mail):
        content.clear()
        return R250_SENDER_OK
    if isinstance(event, ev.Rcpt):
        return R250_RECIPIENT_OK
    if isinstance(event, ev.Vrfy):
        return R252_VRFY.format(event.argument)
    if isinstance(event, ev.BadCommand):
        return event.reply
    if isinstance(event, ev.DataEnd):
        data, content[:] = b"".join(content), []
        if event.error is not None:
            return event.error
        name = deliver(maildrop.Submission(session.sender or "", list(session.recipients), data))
        return R250_QUEUED.format(name) if isinstance(name, str) else R451_QUEUE_WRITE_ERROR
    return _SIMPLE.get(type(event), R502_NOT_IMPLEMENTED)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
