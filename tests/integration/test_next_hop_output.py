"""What relayd writes to a next hop, over real sockets: client -> relayd
process -> recording sink. No line over RFC 5321's 1,000 octets
(smtp_line_length_limit), and nothing a next hop says can add a header
line to the DSN relayd sends back (the reply is made printable first)."""
import email
import email.policy
import smtplib

from tests.queue.dsn_oracle import check_dsn, check_wire_form

LONG_VALUE = "v" * 2990
MESSAGE = (f"From: alice@example.org\r\nSubject: long lines\r\nX-Long: {LONG_VALUE}\r\n\r\n"
           + "b" * 5000 + "\r\n." + "d" * 1500 + "\r\n.\r\nshort\r\n").encode()


def send(relayd, recipients, data):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        return client.sendmail("alice@example.org", recipients, data)


def raw_lines(txn):
    """The DATA lines as they arrived, dot-stuffed, end mark excluded."""
    assert txn.raw.endswith(b"\r\n.\r\n")
    return txn.raw[:-5].split(b"\r\n")


def test_long_lines_reach_the_next_hop_broken_into_lines_of_998(relayd, sink):
    send(relayd, ["bob@relay.example"], MESSAGE)
    (txn,) = sink.wait_for(1, timeout=15)
    lines = raw_lines(txn)
    assert max(len(line) + 2 for line in lines) <= 1000      # octets, CRLF included
    assert lines[0].startswith(b"Received: from ")               # relayd's own header too
    check_wire_form(txn.raw[:-3])
    message = email.message_from_bytes(txn.data, policy=email.policy.compat32)
    # One header still, folded where CRLF SPACE went in; without them it is the original.
    assert message.get_all("X-Long") is not None and len(message.get_all("X-Long")) == 1
    assert message["X-Long"].replace("\r\n ", "") == LONG_VALUE
    assert message["Subject"] == "long lines"
    # Body lines broken the same way; the dot line still stuffed, the lone "." too.
    body = txn.data.split(b"\r\n\r\n", 1)[1]
    assert body.replace(b"\r\n ", b"") == b"b" * 5000 + b"\r\n." + b"d" * 1500 + b"\r\n.\r\nshort\r\n"
    assert b".." + b"d" * 996 in lines and b".." in lines


def test_limit_zero_passes_long_lines_on_unchanged(relayd_factory, sink):
    relayd = relayd_factory("smtp_line_length_limit = 0\n")
    send(relayd, ["bob@relay.example"], MESSAGE)
    (txn,) = sink.wait_for(1, timeout=15)
    assert txn.data.endswith(MESSAGE)
    assert max(len(line) for line in raw_lines(txn)) == 5000


def test_next_hop_reply_cannot_add_a_header_to_the_dsn(relayd, sink):
    """The smart host answers RCPT with a bare CR and a header after it. Two
    recipients, one accepted: the transaction goes on without RSET (which
    another fix of this issue repairs)."""
    sink.reply_for_rcpt = {"gone@relay.example": "550 5.1.1 no\rBcc: victim@x"}
    send(relayd, ["gone@relay.example", "bob@relay.example"], MESSAGE)
    first, dsn = sink.wait_for(2, timeout=15)
    assert first.recipients == ["bob@relay.example"]
    assert (dsn.sender, dsn.recipients) == ("", ["alice@example.org"])
    assert b"\rBcc" not in dsn.raw and b"\nBcc" not in dsn.raw
    report = check_dsn(dsn.raw[:-3], 1)      # CRLF lines only, none over 998, 3 parts, known fields
    status = report.get_payload()[1].get_payload()[1]
    assert status["Diagnostic-Code"] == "smtp; 550 5.1.1 no?Bcc: victim@x"
    # The returned headers carry the long header, broken for SMTP but one header.
    returned = report.get_payload()[2].get_content().replace("\r\n", "\n")
    assert returned.count("X-Long: ") == 1 and LONG_VALUE in returned.replace("\n ", "")
    log = relayd.wait_log("sender non-delivery notification")
    assert "said: 550 5.1.1 no?Bcc: victim@x (in reply to RCPT TO command)" in log
    assert not any(line.startswith("Bcc:") for line in log.splitlines())
