"""Fixtures for delivery tests: a real queue store and a config (the recording
``sink`` fixture comes from tests/conftest.py)."""
import time

import gevent
import pytest

from relayd.config import load_config
from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.store import QueueStore

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
