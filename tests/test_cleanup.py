"""What relayd adds to a message before it is queued."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayd.cleanup import HeaderScan, StoredForm, received_header, sanitize
from tests.fuzz.harness import fuzz_settings
from tests.fuzz.oracles import wire_form_violation


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


def test_header_scan_counts_hops_and_finds_the_message_id_across_chunks():
    scan = HeaderScan()
    data = b"Received: a\r\nreceived: b\r\nMessage-ID: <m@x>\r\n\r\nReceived: in body\r\n"
    for i in range(0, len(data), 7):
        scan.feed(data[i:i + 7])
    assert scan.done and scan.hop_count == 2 and scan.message_id == "<m@x>"


@pytest.mark.parametrize("tail", [b"\r\nbody\r\n", b""], ids=["with body", "headers only"])
def test_header_scan_past_its_limit_does_not_depend_on_the_cuts(tail):
    """Fuzzing found the hop count past the limit depending on the reads: a read
    that ended at the limit stopped the scan there, one read of it all did not."""
    data = (b"Received: a\r\nX-Pad: " + b"p" * 40 + b"\r\nReceived: b\r\n"
            b"Message-ID: <m@x>\r\nReceived: c\r\n" + tail)
    for limit in range(1, len(data) + 2):
        results = set()
        for cut in range(len(data) + 1):
            scan = HeaderScan(limit)
            scan.feed(data[:cut])
            scan.feed(data[cut:])
            results.add((scan.hop_count, scan.message_id))
        assert len(results) == 1, (limit, results)
    whole = HeaderScan(len(b"Received: a\r\n"))
    whole.feed(data)
    assert whole.hop_count == 1 and whole.message_id == ""


# Bytes that make wire-form trouble, and short lines around them.
_WIRE_BYTES = st.lists(st.one_of(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"\0", b"a"]),
                                 st.binary(max_size=4)), max_size=24).map(b"".join)


@fuzz_settings(500)
@given(data=_WIRE_BYTES, cuts=st.lists(st.integers(0, 100), max_size=6))
def test_stored_form_and_the_fuzz_oracle_agree(data, cuts):
    """One invariant: the queue's check (StoredForm, fed in random pieces) refuses
    exactly what the fuzz harnesses' oracle calls a broken wire form."""
    form = StoredForm()
    previous = 0
    for cut in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        form.feed(data[previous:cut])
        previous = cut
    assert (form.finish() is None) == (wire_form_violation(data) is None), data
