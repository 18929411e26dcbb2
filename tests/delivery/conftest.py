"""Fixtures for delivery tests: a real queue store and a config (the recording
``sink`` fixture comes from tests/conftest.py), and the TLS sinks and agents of
the client TLS and AUTH tests."""
import ssl
import time

import gevent
import pytest

from relayd.config import load_config
from relayd.delivery.route import parse_nexthop
from relayd.delivery.smtp import SmtpDeliveryAgent
from relayd.delivery.status import DeliveryRequest, RecipientRef
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.store import QueueStore
from tests.support.sink import sink_tls_context

CONTENT = (b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: test\r\n"
           b"Message-ID: <m1@example.com>\r\n\r\nHello Bob,\r\n..a dot-stuffed line\r\nbye\r\n")


@pytest.fixture
def config(sink, tmp_path):
    """A checked configuration: Postfix's defaults, the sink as relayhost, short timeouts."""
    timeouts = ("connect", "helo", "mail", "rcpt", "data_init", "data_xfer", "data_done", "quit",
                "rset")
    return load_config(myhostname="relay.example.com", relayhost=f"[127.0.0.1]:{sink.port}",
                       queue_directory=str(tmp_path / "queue"), mail_name="Postfix",
                       **{f"smtp_{name}_timeout": "5s" for name in timeouts})


@pytest.fixture
def store(tmp_path):
    store = QueueStore(str(tmp_path / "queue"), fsync=False)
    store.open()
    yield store
    store.close()


def queue_message(store, sender, recipients, content=CONTENT, *, params=None, arrival=None):
    """Commit one message to the store the way the SMTP server would; its queue id."""
    qid = store.new_queue_id()
    writer = store.content_writer(qid)
    writer.write(content)
    envelope = Envelope(sender, [Recipient(r) for r in recipients],
                        time.time() if arrival is None else arrival, client_name="client.example",
                        client_addr="192.0.2.7", helo="client.example", size=len(content),
                        params=dict(params or {}))
    store.commit(qid, envelope, writer)
    return qid


def wait_until(predicate, timeout=5.0, what="condition"):
    """Let greenlets run until ``predicate()`` holds (the sink runs in threads)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        gevent.sleep(0.01)


def log_lines(caplog, logger):
    return [r.getMessage() for r in caplog.records if r.name == logger]

def request(*rcpts, qid="QID1", sender="alice@example.com", params=None, content=CONTENT):
    """A delivery request as the queue manager makes it (queued 0.5 s before)."""
    refs = [RecipientRef(i, r) for i, r in enumerate(rcpts or ["bob@example.net"])]
    return DeliveryRequest(qid, sender, refs, content, 1000.0, 1000.5, params or {})


def old_request(**kw):
    """A request for a message that has waited longer than minimal_backoff_time."""
    req = request(**kw)
    req.active_time = req.arrival_time + 400
    return req


def deliver(agent_dest, **kw):
    """Deliver ``request(**kw)`` with a ``make_agent`` result; the first outcome."""
    agent, dest = agent_dest
    return agent.deliver(dest, request(**kw)).outcomes[0]


@pytest.fixture
def tls_sink(sink, tls_certs):
    sink.tls_context = sink_tls_context(tls_certs)
    return sink


@pytest.fixture
def make_agent(config, sink):
    """``make_agent(**main_cf)``: an agent whose relayhost is [localhost]:PORT (the
    name the test server certificate carries); each one is closed at the end."""
    agents = []

    def make(**params):
        params.setdefault("relayhost", f"[localhost]:{sink.port}")
        agent = SmtpDeliveryAgent(config.with_overrides(params))
        agents.append(agent)
        return agent, parse_nexthop(params["relayhost"])

    yield make
    for agent in agents:
        agent.close()


@pytest.fixture
def old_tls_sink(sink, tls_certs):
    """A sink whose STARTTLS handshake fails: TLS 1.2 with a CBC cipher only, which
    relayd's clients never offer (AEAD with forward secrecy only)."""
    sink.tls_context = sink_tls_context(tls_certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    sink.tls_context.set_ciphers("AES128-SHA")
    return sink
