"""Shared helpers for the queue store tests: envelopes, content, opening stores."""
from __future__ import annotations

import os
import time

from relayd.queue.envelope import Envelope, Recipient
from relayd.queue.store import QueueStore


def envelope(n_rcpt: int = 1, sender: str = "alice@example.org", size: int = 0) -> Envelope:
    return Envelope(sender=sender,
                    recipients=[Recipient(f"user{i}@example.net") for i in range(n_rcpt)],
                    arrival_time=time.time(), client_name="mail.example.org",
                    client_addr="192.0.2.10", helo="mail.example.org", size=size,
                    params={"BODY": "8BITMIME"})


def message_bytes(tag: str, body_size: int = 200) -> bytes:
    head = f"Subject: {tag}\r\nMessage-ID: <{tag}@example.org>\r\n\r\n".encode()
    line = b"The quick brown fox jumps over the lazy dog.\r\n"
    body = (line * (body_size // len(line) + 1))[:body_size]
    # Stored content is wire form: the last line ends with CRLF, whatever the size.
    return head + body.rstrip(b"\r\n") + b"\r\n" if body else head


def random_wire(size: int) -> bytes:
    """*size* random octets as stored content is: CRLF lines without bare CR,
    LF or NUL (the queue refuses anything else), the last one CRLF-ended."""
    text = os.urandom(size).translate(bytes.maketrans(b"\r\n\0", b"xyz"))
    out = bytearray()
    while len(out) < size:
        room = size - len(out) - 2
        n = min(76, room) - (room - 76 == 1)   # never leave a single octet for the end
        out += text[len(out):len(out) + n] + b"\r\n"
    return bytes(out)


def queue(store: QueueStore, content: bytes, n_rcpt: int = 1, chunk: int = 65536) -> str:
    """Commit one message the way the session driver does; returns its queue id."""
    qid = store.new_queue_id()
    writer = store.content_writer(qid)
    for i in range(0, len(content), chunk):
        writer.write(content[i:i + chunk])
    store.commit(qid, envelope(n_rcpt, size=len(content)), writer)
    return qid


def opened(path, **kw) -> QueueStore:
    store = QueueStore(str(path), **kw)
    store.open()
    return store


def segment_files(path) -> list[str]:
    return sorted(os.listdir(os.path.join(path, "journal")))


def last_segment(path) -> str:
    return os.path.join(path, "journal", segment_files(path)[-1])
