"""The SMTP delivery agent against a real SMTP sink over loopback."""
import logging
import re
import socket

import gevent
import gevent.socket
import pytest

from relayd.delivery.route import parse_nexthop
from relayd.delivery.smtp import SmtpDeliveryAgent
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT
from tests.delivery.conftest import CONTENT, log_lines, request, wait_until

LOG_SENT = re.compile(r"^QID1: to=<bob@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, "
                      r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, "
                      r"status=sent \(250 2\.0\.0 Ok: queued as SINK1\)$")


@pytest.fixture
def agent(config):
    agent = SmtpDeliveryAgent(config, clock=lambda: 1001.0)
    yield agent
    agent.close()


@pytest.fixture
def dest(config):
    return parse_nexthop(config["relayhost"])


def test_one_message_arrives_byte_exact_and_is_logged(agent, dest, sink, caplog):
    caplog.set_level(logging.INFO)
    result = agent.deliver(dest, request(params={"BODY": "8BITMIME"}))
    assert result.indexes(SENT) == [0]
    [txn] = sink.wait_for(1)
    assert (txn.sender, txn.recipients, txn.helo) == ("alice@example.com", ["bob@example.net"],
                                                      "relay.example.com")
    assert txn.params == f"SIZE={len(CONTENT)} BODY=8BITMIME"
    assert txn.raw == CONTENT + b".\r\n"
    assert txn.data == CONTENT.replace(b"\r\n..a", b"\r\n.a")
    [line] = log_lines(caplog, "relayd.smtp")
    assert LOG_SENT.match(line), line
    assert ", delay=1, delays=0.5/0.5/0/0," in line


def test_pipelining_sends_envelope_in_one_write(agent, dest, sink):
    agent.deliver(dest, request("a@example.net", "b@example.net"))
    [txn] = sink.wait_for(1)
    assert txn.reads[0] == (f"MAIL FROM:<alice@example.com> SIZE={len(CONTENT)}\r\n"
                            "RCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n").encode()


def test_connection_reused_for_ten_messages(agent, dest, sink, caplog):
    caplog.set_level(logging.INFO)
    for n in range(10):
        assert agent.deliver(dest, request(qid=f"Q{n}")).indexes(SENT) == [0]
    assert len(sink.wait_for(10)) == 10
    assert sink.sessions == 1
    assert "conn_use=10" in log_lines(caplog, "relayd.smtp")[-1]


def test_idle_connection_closed_after_cache_time_limit(make_agent, sink):
    agent, dest = make_agent(relayhost=f"[127.0.0.1]:{sink.port}",
                             smtp_connection_cache_time_limit="1s")
    assert agent.deliver(dest, request(qid="Q1")).indexes(SENT) == [0]
    assert agent.deliver(dest, request(qid="Q2")).indexes(SENT) == [0]
    assert sink.sessions == 1 and sum(agent.cache.idle().values()) == 1
    wait_until(lambda: not agent.cache.idle() and sink.open_sessions == 0, timeout=5,
               what="the idle connection closed")
    assert agent.deliver(dest, request(qid="Q3")).indexes(SENT) == [0]
    assert sink.sessions == 2


def test_per_recipient_failures(agent, dest, sink):
    sink.reply_for_rcpt = {"gone@example.net": "550 5.1.1 <gone@example.net>: User unknown",
                           "busy@example.net": "450 4.2.1 Mailbox busy"}
    result = agent.deliver(dest, request("ok@example.net", "gone@example.net", "busy@example.net"))
    assert (result.indexes(SENT), result.indexes(BOUNCED), result.indexes(DEFERRED)) == ([0], [1], [2])
    bounced = result.outcomes[1]
    assert bounced.dsn == "5.1.1"
    assert bounced.reason == (f"host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <gone@example.net>: "
                              "User unknown (in reply to RCPT TO command)")
    assert result.outcomes[2].dsn == "4.2.1"
    assert sink.wait_for(1)[0].recipients == ["ok@example.net"]


def test_all_recipients_refused_leaves_connection_reusable(agent, dest, sink):
    sink.reply_for_rcpt = {"gone@example.net": "550 5.1.1 User unknown"}
    assert agent.deliver(dest, request("gone@example.net")).indexes(BOUNCED) == [0]
    assert agent.deliver(dest, request("bob@example.net")).indexes(SENT) == [0]
    assert sink.sessions == 1 and len(sink.messages) == 1


def test_data_4xx_defers_every_recipient(agent, dest, sink):
    sink.data_reply = "451 4.3.0 try later"
    result = agent.deliver(dest, request("a@example.net", "b@example.net"))
    assert result.indexes(DEFERRED) == [0, 1]
    assert result.outcomes[0].reason.endswith("451 4.3.0 try later (in reply to end of DATA command)")
    assert sink.messages == []


def test_connection_refused_is_deferred(agent, dest, sink, caplog):
    caplog.set_level(logging.INFO)
    sink.stop()
    result = agent.deliver(dest, request())
    outcome = result.outcomes[0]
    assert (outcome.status, outcome.dsn, outcome.relay) == (DEFERRED, "4.4.1", "none")
    assert outcome.reason == f"connect to 127.0.0.1[127.0.0.1]:{sink.port}: Connection refused"
    # smtp_connect_addr()'s info line, then the recipient's.
    info, line = log_lines(caplog, "relayd.smtp")
    assert info == f"connect to 127.0.0.1[127.0.0.1]:{sink.port}: Connection refused"
    assert ", relay=none, " in line and line.endswith(
        f"dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:{sink.port}: Connection refused)")


def test_silent_server_times_out(config):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        config = config.with_overrides({"smtp_helo_timeout": "1s"})
        agent = SmtpDeliveryAgent(config)
        outcome = agent.deliver(parse_nexthop(f"[127.0.0.1]:{silent.getsockname()[1]}"),
                                request()).outcomes[0]
    assert outcome.status == DEFERRED and outcome.dsn == "4.4.2"
    assert outcome.reason == "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting"


def test_a_server_silent_after_mail_times_out_at_rcpt(config):
    """Every step has its own deadline, also when one timer serves several steps of
    a connection (the greeting, EHLO, MAIL and RCPT timeouts are all 1s here)."""
    def server(listener):
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 silent.example ESMTP\r\n")
            assert lines.readline().startswith(b"EHLO ")
            conn.sendall(b"250 silent.example\r\n")   # no PIPELINING: one command at a time
            assert lines.readline().startswith(b"MAIL FROM:")
            conn.sendall(b"250 2.1.0 Ok\r\n")
            assert lines.readline().startswith(b"RCPT TO:")
            lines.readline()   # nothing more is said: the client must give up on its own

    with gevent.socket.socket() as listener:   # the agent's gevent loop runs it
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        talker = gevent.spawn(server, listener)
        config = config.with_overrides({f"smtp_{step}_timeout": "1s"
                                        for step in ("connect", "helo", "mail", "rcpt")})
        agent = SmtpDeliveryAgent(config)
        outcome = agent.deliver(parse_nexthop(f"[127.0.0.1]:{listener.getsockname()[1]}"),
                                request()).outcomes[0]
        talker.join(5)
    assert talker.successful()
    assert outcome.status == DEFERRED and outcome.dsn == "4.4.2"
    assert outcome.reason == "conversation with 127.0.0.1[127.0.0.1] timed out while sending RCPT TO"


def test_server_closing_at_once_is_deferred(agent, dest, sink):
    sink.refuse = True
    outcome = agent.deliver(dest, request()).outcomes[0]
    assert outcome.status == DEFERRED
    assert outcome.reason == "lost connection with 127.0.0.1[127.0.0.1] while receiving the initial server greeting"


def test_stale_cached_connection_is_not_used(agent, dest, sink):
    agent.deliver(dest, request())
    sink.stop()            # drops the idle connection
    sink.start()
    assert agent.deliver(dest, request()).indexes(SENT) == [0]
    assert sink.sessions == 2


def test_smtp_line_length_limit_from_the_config(config, dest, sink):
    config = config.with_overrides({"smtp_line_length_limit": 78})
    content = b"Subject: x\r\nX-Long: " + b"h" * 200 + b"\r\n\r\n" + b"b" * 300 + b"\r\n"
    agent = SmtpDeliveryAgent(config)
    try:
        assert agent.deliver(dest, request(content=content)).indexes(SENT) == [0]
    finally:
        agent.close()
    [txn] = sink.wait_for(1)
    assert max(map(len, txn.raw.split(b"\r\n"))) == 78
    assert txn.data.replace(b"\r\n ", b"") == content
