"""What cleanup adds to a message (Received:) and what it reads from its primary
header block (hop count, Message-ID)."""
import pytest

from relayd.cleanup import ContentChecker, ContentChecks
from relayd.cleanup.headers import PrimaryHeaders
from relayd.cleanup.received import received_header, sanitize


def test_received_header_as_postfix_writes_it():
    header = received_header(helo="client.example", client_name="unknown", client_addr="192.0.2.1",
                             myhostname="relay.example", mail_name="relayd", protocol="ESMTP",
                             queue_id="ABC123", recipients=["bob@example.net"], now=0)
    lines = header.split(b"\r\n")
    assert lines[0] == b"Received: from client.example (unknown [192.0.2.1])"
    assert lines[1] == b"\tby relay.example (relayd) with ESMTP id ABC123"
    assert lines[2].startswith(b"\tfor <bob@example.net>; Thu, 01 Jan 1970 ")
    assert lines[3] == b""


def test_client_supplied_names_cannot_inject_headers_or_break_the_comment():
    assert sanitize("evil)\r\nX-Injected: yes") == "evil???X-Injected:?yes"
    name = sanitize("a(b)c\x0b\xe9 d")
    assert all(c not in name for c in "()\r\n\x0b \xe9")
    header = received_header(helo="x)\nInjected: 1", client_name="unknown", client_addr="::1",
                             myhostname="r", mail_name="relayd", protocol="SMTP", queue_id="Q",
                             recipients=["a@b", "c@d"], now=0)
    assert header.count(b"\r\n") == 3 and b"\nInjected" not in header
    assert b"[IPv6:::1]" in header


def test_authenticated_sender_comment_follows_the_tls_lines():
    header = received_header(helo="c", client_name="unknown", client_addr="192.0.2.1",
                             myhostname="r", mail_name="relayd", protocol="ESMTPSA",
                             queue_id="Q", recipients=["a@b"], now=0,
                             tls_comment=("\t(using TLSv1.3)",), sasl_username="al)ice\r\nX: 1")
    lines = header.split(b"\r\n")
    assert lines[1:3] == [b"\t(using TLSv1.3)", b"\t(Authenticated sender: al?ice??X:?1)"]
    assert lines[3].startswith(b"\tby r (relayd) with ESMTPSA id Q")


def primary_headers(pieces, header_size_limit: int = 102400) -> tuple[int, str | None]:
    """(hop count, Message-ID) of the message fed in ``pieces`` through cleanup's parser."""
    primary = PrimaryHeaders()
    checker = ContentChecker(ContentChecks(header_size_limit=header_size_limit), primary=primary)
    for piece in pieces:
        checker.feed(piece)
    checker.finish()
    return primary.hop_count, primary.message_id


def test_primary_headers_count_hops_and_find_the_message_id_across_chunks():
    data = b"Received: a\r\nreceived: b\r\nMessage-ID: <m@x>\r\n\r\nReceived: in body\r\n"
    assert primary_headers(data[i:i + 7] for i in range(0, len(data), 7)) == (2, "<m@x>")


def test_only_the_primary_header_block_counts():
    """The block ends at the first line that is not a header, as in Postfix's
    mime_state: a Received: after it is body text."""
    data = b"Received: a\r\nnot a header\r\nReceived: b\r\nMessage-ID: <m@x>\r\n\r\n"
    assert primary_headers([data]) == (1, None)


@pytest.mark.parametrize("tail", [b"\r\nbody\r\n", b""], ids=["with body", "headers only"])
def test_primary_headers_do_not_depend_on_the_cuts_whatever_the_size_limit(tail):
    """Fuzzing found the hop count past the limit depending on the reads: a read
    that ended at the limit stopped the scan there, one read of it all did not.
    Now header_size_limit bounds one header, as in Postfix, and a header over it
    hides none of the headers after it."""
    data = (b"Received: a\r\nX-Pad: " + b"p" * 40 + b"\r\nReceived: b\r\n"
            b"Message-ID: <m@x>\r\nReceived: c\r\n" + tail)
    for limit in range(1, len(data) + 2, 5):
        results = {primary_headers([data[:cut], data[cut:]], limit)
                   for cut in range(len(data) + 1)}
        assert results == {(3, "<m@x>")}, (limit, results)
