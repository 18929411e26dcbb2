"""SMTP smuggling through body_checks edits (issue 7, item 4), end to end.

A client, a relayd process with body_checks, and the recording sink as the
smart host. Lines longer than line_length_limit (2048) are checked in pieces;
an edit of one piece must never leave the next one at the start of a stored
line without its dot-stuffing, or the stored form would hold CRLF.CRLF and the
smart host would end the message there and run the rest as commands from
relayd's (trusted) address.
"""
import logging
import os
import smtplib
import socket

import pytest

SMUGGLED = (b"MAIL FROM:<ceo@victim.example>\r\n"
            b"RCPT TO:<cfo@relay.example>\r\n"
            b"DATA\r\n"
            b"Subject: wire the money\r\n"
            b"\r\n"
            b"smuggled\r\n")


def _send_raw(port: int, content: bytes) -> bytes:
    """One transaction whose DATA content is *content* exactly as given
    (already dot-stuffed by the caller); the reply to the final dot."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        for command in (b"EHLO client.example", b"MAIL FROM:<alice@example.org>",
                        b"RCPT TO:<bob@relay.example>", b"DATA"):
            s.sendall(command + b"\r\n")
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    break
        assert line.startswith(b"354")
        s.sendall(content + b".\r\n")
        reply = f.readline()
        s.sendall(b"QUIT\r\n")
        return reply


@pytest.mark.parametrize("rule, piece, stored", [
    # IGNORE or STRIP drops the first piece: the "." piece then starts a line of its own.
    ("/^A{20}/ IGNORE", b"A" * 2048, b"line1\r\n..\r\n"),
    ("/^A{20}/ STRIP", b"A" * 2048, b"line1\r\n..\r\n"),
    # PREPEND before the later piece: the prepended line, then the piece on a line.
    ("/^\\.$/ PREPEND X-Tag", b"A" * 2048, b"line1\r\n" + b"A" * 2048 + b"\r\nX-Tag\r\n..\r\n"),
])
def test_piece_edits_cannot_smuggle_a_second_transaction(relayd_factory, sink, tmp_path,
                                                         rule, piece, stored):
    (tmp_path / "body_checks").write_text(rule + "\n")
    # smtp_line_length_limit = 0: the sink sees the stored form itself, unbroken.
    relayd = relayd_factory(f"body_checks = regexp:{tmp_path / 'body_checks'}\n"
                            "smtp_line_length_limit = 0\n")
    content = b"Subject: hello\r\n\r\nline1\r\n" + piece + b".\r\n" + SMUGGLED
    assert _send_raw(relayd.port, content).startswith(b"250")
    # One more, ordinary message: once it arrives, anything smuggled would have too.
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("alice@example.org", ["carol@relay.example"], b"Subject: after\r\n\r\nx\r\n")
    messages = sink.wait_for(2, timeout=15)
    assert [m.sender for m in messages] == ["alice@example.org", "alice@example.org"]
    (first,) = [m for m in messages if m.recipients == ["bob@relay.example"]]
    # The would-be commands are content of the one message, after a stuffed dot line.
    assert first.raw.endswith(b"\r\n\r\n" + stored + SMUGGLED + b".\r\n")


def test_content_that_fails_the_stored_form_check_is_refused_with_451(tmp_path, sink,
                                                                      monkeypatch, caplog):
    """The last line of defence: whatever produced it, content whose stored form
    would end the DATA early is refused with 451 and never stored. No real
    input produces such content any more, so the fault is injected: the checker
    is made to emit an unstuffed "." line, as the old piece edits did."""
    import gevent

    import relayd
    from relayd.cleanup.checker import ContentChecker

    real_feed = ContentChecker.feed
    monkeypatch.setattr(ContentChecker, "feed",
                        lambda self, chunk: real_feed(self, chunk).replace(b"..\r\n", b".\r\n"))
    (tmp_path / "body_checks").write_text("/^never matches$/ WARN\n")
    relay = relayd.Relay(listen=[("127.0.0.1", 0)], myhostname="relayd.test",
                         queue_directory=str(tmp_path / "queue"), mynetworks="127.0.0.0/8",
                         relayhost=f"[127.0.0.1]:{sink.port}", relay_domains="relay.example",
                         body_checks=f"regexp:{tmp_path / 'body_checks'}")
    relay.start()
    try:
        port = relay.addresses[0][1]
        with caplog.at_level(logging.WARNING):
            reply = gevent.get_hub().threadpool.spawn(
                _send_raw, port, b"Subject: x\r\n\r\n..\r\n" + SMUGGLED).get(timeout=20)
        assert reply.startswith(b"451 4.3.0 Error: queue file write error")
        assert "message refused: its stored form is not one DATA transmission" in caplog.text
        assert os.listdir(tmp_path / "queue" / "data") == []
    finally:
        relay.stop(timeout=5)
    assert sink.messages == []
