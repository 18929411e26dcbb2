"""Every handler of the session driver under every verdict, over real sockets.

A table of dialogues (issue 7 item 10a: an EHLO rejected in the middle of a
transaction with smtpd_delay_reject = no crashed the session): a transaction
whose HELO name, sender, recipient, DATA or end of data draws each verdict,
and the same transaction with a rejected or accepted command slipped in at
every step, with and without smtpd_delay_reject, with and without a
connect-time rejection. Oracle: every command is answered, the session ends
only with 221 or 421, and relayd logs no crash and no lost connection.
"""
import socket

import pytest

VERDICTS = {"reject": "REJECT", "defer": "DEFER", "hold": "HOLD", "discard": "DISCARD",
            "drop": "{421 4.7.0 go away}"}


def _table(fmt: str) -> str:
    return "inline:{ " + ", ".join(f"{{{fmt.format(name)} = {action}}}"
                                   for name, action in VERDICTS.items()) + " }"


RESTRICTIONS = (
    f"smtpd_helo_restrictions = check_helo_access {_table('{}.helo')}\n"
    f"smtpd_sender_restrictions = check_sender_access {_table('{}@sender.example')}\n"
    f"smtpd_recipient_restrictions = check_recipient_access {_table('{}@relay.example')}, "
    "permit_mynetworks, reject_unauth_destination\n"
    f"smtpd_data_restrictions = check_sender_access {_table('data-{}@sender.example')}\n"
    f"smtpd_end_of_data_restrictions = check_sender_access {_table('eod-{}@sender.example')}\n"
    "smtpd_hard_error_limit = 1000\nsmtpd_junk_command_limit = 1000\n")
# The rejected client connects from 127.0.0.2 (relayd's own start-up probe uses 127.0.0.1).
CLIENT_REJECTED = "smtpd_client_restrictions = check_client_access inline:{127.0.0.2=REJECT}\n"

BODY = b"Subject: dialogue\r\n\r\nx\r\n.\r\n"
BASE = ["EHLO good.helo", "MAIL FROM:<ok@sender.example>", "RCPT TO:<ok@relay.example>", "DATA"]
SLIPPED_IN = ["EHLO reject.helo", "HELO reject.helo", "EHLO good.helo", "HELO defer.helo", "RSET",
              "NOOP", "VRFY ok", "HELP", "MAIL FROM:<ok@sender.example>",
              "MAIL FROM:<reject@sender.example>", "RCPT TO:<reject@relay.example>",
              "RCPT TO:<drop@relay.example>", "DATA", "FOO"]


def _with_verdict(stage: str, verdict: str) -> list[str]:
    commands = list(BASE)
    if stage == "helo":
        commands[0] = f"EHLO {verdict}.helo"
    elif stage == "mail":
        commands[1] = f"MAIL FROM:<{verdict}@sender.example>"
    elif stage == "rcpt":
        commands[2] = f"RCPT TO:<{verdict}@relay.example>"
    else:  # data, eod: sender keys of the DATA and end-of-data lists
        commands[1] = f"MAIL FROM:<{stage}-{verdict}@sender.example>"
    return commands


def dialogues():
    stages = ("helo", "mail", "rcpt", "data", "eod")
    for stage in stages:
        for verdict in VERDICTS:
            yield _with_verdict(stage, verdict) + BASE + ["QUIT"]
    for stage in ("none",) + stages:
        commands = list(BASE) if stage == "none" else _with_verdict(stage, "reject")
        for at in range(1, len(commands) + 1):
            for extra in SLIPPED_IN:
                yield commands[:at] + [extra] + commands[at:] + BASE + ["QUIT"]


class Client:
    """One command at a time; ``reply()`` is the last line of the next reply."""

    def __init__(self, port: int, source: str = "127.0.0.1"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(source, 0))
        self.buf = b""
        self.greeting = self.reply()

    def reply(self) -> bytes | None:
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                if line[3:4] != b"-":
                    return line
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def say(self, data: bytes) -> bytes | None:
        self.sock.sendall(data)
        return self.reply()


def run_dialogue(port: int, commands: list[str], source: str = "127.0.0.1") -> list[bytes]:
    client = Client(port, source)
    replies = [client.greeting]
    try:
        for command in commands:
            if replies[-1][:3] in (b"221", b"421"):
                break
            reply = client.say(command.encode() + b"\r\n")
            assert reply is not None, f"no reply to {command!r} after {replies}"
            replies.append(reply)
            if command == "DATA" and reply.startswith(b"354"):
                replies.append(client.say(BODY))
                assert replies[-1] is not None, f"no reply to the message after {replies}"
        assert replies[-1][:3] in (b"221", b"421"), f"the dialogue did not end: {replies}"
        assert client.reply() is None, "the session goes on after 221/421"
    finally:
        client.sock.close()
    return replies


@pytest.mark.parametrize("delay_reject", ["yes", "no"])
@pytest.mark.parametrize("client_rejected", [False, True], ids=["client-ok", "client-rejected"])
def test_every_dialogue_is_answered_to_the_end(relayd_factory, delay_reject, client_rejected):
    relayd = relayd_factory(f"smtpd_delay_reject = {delay_reject}\n" + RESTRICTIONS
                            + (CLIENT_REJECTED if client_rejected else ""))
    count = 0
    for commands in dialogues():
        run_dialogue(relayd.port, commands, "127.0.0.2" if client_rejected else "127.0.0.1")
        count += 1
    assert count == 361
    log = relayd.log()
    assert "Traceback" not in log and "lost connection" not in log, log[-3000:]


@pytest.mark.parametrize("delay_reject", ["yes", "no"])
def test_a_rejected_ehlo_keeps_the_transaction_as_postfix_does(relayd_factory, sink,
                                                               delay_reject):
    relayd = relayd_factory(f"smtpd_delay_reject = {delay_reject}\n" + RESTRICTIONS)
    replies = run_dialogue(relayd.port, [
        "EHLO good.helo", "MAIL FROM:<ok@sender.example>", "EHLO reject.helo",
        "RCPT TO:<ok@relay.example>", "DATA", "QUIT"])
    codes = [reply[:3] for reply in replies]
    if delay_reject == "no":
        # smtpd.c helo_cmd: the reject returns before mail_reset(): MAIL still stands.
        assert codes == [b"220", b"250", b"250", b"554", b"250", b"354", b"250", b"221"]
        (msg,) = sink.wait_for(1)
        assert msg.sender == "ok@sender.example"
    else:
        # The HELO check waits for RCPT; the accepted EHLO ends the transaction.
        assert codes == [b"220", b"250", b"250", b"250", b"503", b"503", b"221"]
