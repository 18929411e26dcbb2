"""The sink is itself tested against a client that is not relayd: smtplib."""
import smtplib
import socket

import pytest

from tests.support.sink import Sink


@pytest.fixture
def sink():
    sink = Sink().start()
    yield sink
    sink.stop()


def test_records_exact_transaction(sink):
    with smtplib.SMTP("127.0.0.1", sink.port) as client:
        code, text = client.ehlo("client.test")
        assert code == 250 and b"PIPELINING" in text and b"8BITMIME" in text and b"SIZE" in text
        client.sendmail("a@example.com", ["b@example.net", "c@example.net"],
                        b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n", mail_options=["BODY=8BITMIME"])
    [txn] = sink.wait_for(1)
    assert (txn.sender, txn.recipients, txn.helo) == ("a@example.com", ["b@example.net", "c@example.net"],
                                                      "client.test")
    assert txn.params == "size=35 BODY=8BITMIME"
    assert txn.data == b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"
    assert txn.raw == b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n"
    assert sink.sessions == 1


def test_programmed_failures(sink):
    sink.reply_for_rcpt = {"bad@x": "550 5.1.1 No such user"}
    sink.data_reply = "451 4.3.0 try later"
    with smtplib.SMTP("127.0.0.1", sink.port) as client:
        client.ehlo("c")
        client.mail("a@x")
        assert client.rcpt("bad@x") == (550, b"5.1.1 No such user")
        assert client.rcpt("good@x")[0] == 250
        assert client.data(b"x\r\n") == (451, b"4.3.0 try later")
    assert sink.messages == [] and sink.rejected[0].recipients == ["good@x"]


def test_refuse_and_restart_on_same_port(sink):
    sink.refuse = True
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP("127.0.0.1", sink.port, timeout=5)
    port = sink.port
    sink.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    sink.refuse = False
    sink.start()
    assert sink.port == port
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.noop()[0] == 250


def test_pipelined_commands_seen_in_one_read(sink):
    with socket.create_connection(("127.0.0.1", sink.port)) as conn:
        reader = conn.makefile("rb")
        reader.readline()
        conn.sendall(b"EHLO c\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        conn.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
        assert [reader.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
        conn.sendall(b"hi\r\n.\r\n")
        assert reader.readline()[:3] == b"250"
    [txn] = sink.wait_for(1)
    assert txn.reads[0] == b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"


def test_starttls_and_auth_are_recorded(sink, tls_certs):
    import ssl

    from tests.support.sink import sink_tls_context
    sink.tls_context = sink_tls_context(tls_certs)
    sink.auth, sink.auth_tls_only = {"joe": "secret"}, True
    client_ctx = ssl.create_default_context(cafile=tls_certs.cert("ca"))
    with smtplib.SMTP("127.0.0.1", sink.port) as client:
        client.ehlo("c")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=client_ctx)
        client.ehlo("c")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("joe", "wrong")
        client.login("joe", "secret")
        client.sendmail("a@x", ["b@y"], b"hi\r\n")
    [txn] = sink.wait_for(1)
    assert (txn.tls, txn.user, txn.tls_resumed) == ("TLSv1.3", "joe", False)
    assert sink.auth_failures == 2  # smtplib tried PLAIN, then LOGIN
