"""Header address rewriting (relayd/cleanup/headers.py, and whose headers:
relayd/rewrite/headers.py): canonical maps, masquerading and smtp_generic_maps
on the primary header block, streamed in SMTP wire form through cleanup's parser."""
import os
import subprocess
import time

import pytest

from relayd.cleanup.headers import HeaderRewriter, HeaderStream, rewrite_generic_headers
from relayd.config import ConfigError
from relayd.delivery.connection import Trouble
from relayd.delivery.smtp import SmtpDeliveryAgent
from relayd.delivery.status import DeliveryRequest
from relayd.rewrite import GenericMaps
from relayd.tables.base import TemporaryLookupError

# Debian's Postfix, by its full path: relayd installs a postmap of its own.
POSTMAP = "/usr/sbin/postmap"

CANONICAL = ("alice@lan.example      Alice.Smith@example.com\n"
             "bob@lan.example        bob.jones@example.com\n"
             "@old.example           @example.com\n")

MESSAGE = (b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"From: \"Smith, Alice\" <alice@lan.example> (the boss)\r\n"
           b"To: Bob <bob@lan.example>,\r\n"
           b"\tcarol@old.example, dave@elsewhere.example\r\n"
           b"Cc: Team: bob@lan.example, eve@old.example;, undisclosed-recipients:;\r\n"
           b"Subject: alice@lan.example stays\r\n"
           b"\r\n"
           b"From: alice@lan.example\r\n"
           b"..To: bob@lan.example\r\n"
           b"Content-Type: text/plain\r\n")

EXPECTED = (b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"From: \"Smith, Alice\" <Alice.Smith@example.com> (the boss)\r\n"
            b"To: Bob <bob.jones@example.com>,\r\n"
            b"\tcarol@example.com, dave@elsewhere.example\r\n"
            b"Cc: Team: bob.jones@example.com, eve@example.com;, undisclosed-recipients:;\r\n"
            b"Subject: alice@lan.example stays\r\n"
            b"\r\n"
            b"From: alice@lan.example\r\n"
            b"..To: bob@lan.example\r\n"
            b"Content-Type: text/plain\r\n")


@pytest.fixture
def hash_table(tmp_path):
    """``hash_table(name, text)``: a texthash: table file (no build step)."""
    def make(name, text):
        path = tmp_path / name
        path.write_text(text)
        # Postfix's own texthash reader waits while the file is younger than a second.
        os.utime(path, (time.time() - 60, time.time() - 60))
        return f"texthash:{path}"
    return make


def run(rewriter, message, cut=None):
    """Feed ``message`` in pieces of ``cut`` bytes (whole when None) through
    cleanup's parser with ``rewriter`` (a HeaderStream as it is, when it is one)."""
    if not isinstance(rewriter, HeaderStream):
        rewriter = HeaderStream(rewriter)
    cut = cut or len(message)
    out = b"".join(rewriter.feed(message[i:i + cut]) for i in range(0, len(message), cut))
    return out + rewriter.finish()


def test_canonical_maps_rewrite_sender_and_recipient_headers(make_config, hash_table):
    config = make_config(canonical_maps=hash_table("canonical", CANONICAL))
    rewriter = HeaderRewriter.from_config(config, "127.0.0.1")
    assert rewriter.active
    assert run(rewriter, MESSAGE) == EXPECTED
    assert rewriter.size_delta == len(EXPECTED) - len(MESSAGE)


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64])
def test_chunk_boundaries_anywhere(make_config, hash_table, cut):
    config = make_config(canonical_maps=hash_table("canonical", CANONICAL))
    assert run(HeaderRewriter.from_config(config, "127.0.0.1"), MESSAGE, cut) == EXPECTED


def test_postmap_agrees_on_the_lookups(hash_table, tmp_path):
    """The keys the canonical test relies on, asked of Postfix's own postmap."""
    if not os.access(POSTMAP, os.X_OK):
        pytest.skip("Postfix's postmap is not installed")
    (tmp_path / "main.cf").write_text("myhostname = relayd-test.localdomain\n")
    os.utime(tmp_path / "main.cf", (time.time() - 60, time.time() - 60))
    spec = hash_table("canonical", CANONICAL)
    done = subprocess.run([POSTMAP, "-c", str(tmp_path), "-q", "-", spec], capture_output=True,
                          text=True, input="alice@lan.example\n@old.example\ncarol@old.example\n")
    assert done.stdout.splitlines() == ["alice@lan.example\tAlice.Smith@example.com",
                                        "@old.example\t@example.com"]


def test_sender_and_recipient_classes_are_respected(make_config, hash_table):
    config = make_config(
        sender_canonical_maps=hash_table("sender", "alice@lan.example alice@example.com\n"),
        recipient_canonical_maps=hash_table("recipient", "alice@lan.example rcpt@example.com\n"),
        recipient_canonical_classes="envelope_recipient")
    message = (b"From: alice@lan.example\r\nReply-To: alice@lan.example\r\n"
               b"To: alice@lan.example\r\n\r\n")
    assert run(HeaderRewriter.from_config(config, "127.0.0.1"), message) == (
        b"From: alice@example.com\r\nReply-To: alice@example.com\r\n"
        b"To: alice@lan.example\r\n\r\n")


def test_canonical_classes_without_header_classes_leave_headers(make_config, hash_table):
    config = make_config(canonical_maps=hash_table("canonical", CANONICAL),
                         canonical_classes="envelope_sender, envelope_recipient")
    message = b"From: alice@lan.example\r\nTo: bob@lan.example\r\n\r\nbody\r\n"
    assert run(HeaderRewriter.from_config(config, "127.0.0.1"), message) == message


def test_masquerade_on_from_but_not_on_excepted_user(make_config):
    config = make_config(masquerade_domains="example.com", masquerade_exceptions="root")
    message = (b"From: Alice <alice@host.sub.example.com>\r\n"
               b"Sender: root@host.example.com\r\n"
               b"To: bob@mx.example.com\r\n\r\n")
    assert run(HeaderRewriter.from_config(config, "127.0.0.1"), message) == (
        b"From: Alice <alice@example.com>\r\n"
        b"Sender: root@host.example.com\r\n"
        b"To: bob@example.com\r\n\r\n")


def test_unqualified_addresses_get_myorigin_for_local_clients(make_config):
    message = b"From: alice\r\nTo: \"Bob\" <bob>\r\n\r\n"
    rewriter = HeaderRewriter.from_config(make_config(), "127.0.0.1")
    assert run(rewriter, message) == (
        b"From: alice@example.com\r\nTo: \"Bob\" <bob@example.com>\r\n\r\n")


def test_nothing_changes_without_maps(make_config):
    message = b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n\r\nbody\r\n"
    rewriter = HeaderRewriter.from_config(make_config(), "127.0.0.1")
    assert run(rewriter, message, 5) == message
    assert rewriter.size_delta == 0


def test_remote_clients_are_left_alone_unless_remote_header_rewrite_domain(make_config,
                                                                         hash_table):
    table = hash_table("canonical", CANONICAL)
    assert not HeaderRewriter.from_config(make_config(canonical_maps=table), "192.0.2.7").active
    rewriter = HeaderRewriter.from_config(
        make_config(canonical_maps=table, remote_header_rewrite_domain="domain.invalid"),
        "192.0.2.7")
    message = b"From: alice@lan.example\r\nTo: bob\r\n\r\n"
    assert run(rewriter, message) == (
        b"From: Alice.Smith@example.com\r\nTo: bob@domain.invalid\r\n\r\n")


def test_local_header_rewrite_clients_mynetworks_and_static_all(make_config):
    config = make_config(local_header_rewrite_clients="permit_mynetworks",
                         mynetworks="192.0.2.0/24")
    assert HeaderRewriter.from_config(config, "192.0.2.7").active
    assert not HeaderRewriter.from_config(config, "198.51.100.1").active
    everyone = make_config(local_header_rewrite_clients="static:all")
    assert HeaderRewriter.from_config(everyone, "198.51.100.1").active


def test_unsupported_local_header_rewrite_clients_item_is_a_config_error(make_config):
    config = make_config(local_header_rewrite_clients="check_address_map hash:/nonexistent")
    with pytest.raises(ConfigError) as info:
        HeaderRewriter.from_config(config, "127.0.0.1")
    assert info.value.parameter == "local_header_rewrite_clients"


def test_mime_part_headers_are_not_rewritten(make_config, hash_table):
    config = make_config(canonical_maps=hash_table("canonical", CANONICAL))
    message = (b"From: alice@lan.example\r\nContent-Type: multipart/mixed; boundary=b\r\n"
               b"\r\n--b\r\nFrom: alice@lan.example\r\n\r\npart\r\n--b--\r\n")
    out = run(HeaderRewriter.from_config(config, "127.0.0.1"), message)
    assert out == message.replace(b"From: alice@lan.example\r\nContent",
                                  b"From: Alice.Smith@example.com\r\nContent", 1)


def test_quoted_local_part_is_looked_up_unquoted_and_requoted():
    seen = []

    def rewrite(address, address_class):
        seen.append((address, address_class))
        return address.replace("@lan.example", "@example.com")

    message = b"From: \"john doe\"@lan.example\r\nTo: \"x\" <plain@lan.example>\r\n\r\n"
    assert run(HeaderStream(rewrite), message) == (
        b"From: \"john doe\"@example.com\r\nTo: \"x\" <plain@example.com>\r\n\r\n")
    assert seen == [("john doe@lan.example", "header_sender"),
                    ("plain@lan.example", "header_recipient")]


def test_lookup_failure_surfaces_at_finish():
    def broken(address, address_class):
        raise TemporaryLookupError("mysql:/etc/postfix/canonical.cf: connection refused")

    stream = HeaderStream(broken)
    message = b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n"
    assert stream.feed(message) == message   # passes on untouched; the message is refused
    with pytest.raises(TemporaryLookupError):
        stream.finish()


def test_oversized_header_goes_out_unrewritten():
    stream = HeaderStream(lambda address, _class: "changed@example.com", size_limit=40)
    message = b"To: a@b.example,\r\n" + b"\tc@d.example,\r\n" * 5 + b"\r\nbody\r\n"
    assert run(stream, message, 9) == message


def test_generic_maps_on_the_way_out(make_config, hash_table):
    config = make_config(smtp_generic_maps=hash_table(
        "generic", "bob@localdomain.local bob@example.com\n"))
    content = (b"From: Bob <bob@localdomain.local>\r\nTo: bob@localdomain.local\r\n"
               b"X-Note: bob@localdomain.local\r\n\r\nbob@localdomain.local\r\n")
    assert rewrite_generic_headers(content, GenericMaps(config)) == (
        b"From: Bob <bob@example.com>\r\nTo: bob@example.com\r\n"
        b"X-Note: bob@localdomain.local\r\n\r\nbob@localdomain.local\r\n")


def test_no_generic_maps_returns_the_content_itself(make_config):
    content = b"From: bob@localdomain.local\r\n\r\nbody\r\n"
    assert rewrite_generic_headers(content, GenericMaps(make_config())) is content


def test_generic_lookup_failure_defers_before_connecting(make_config, monkeypatch):
    agent = SmtpDeliveryAgent(make_config())

    def broken(address):
        raise TemporaryLookupError("table down")

    monkeypatch.setattr(agent.generic, "rewrite", broken)
    monkeypatch.setattr(type(agent.generic), "__bool__", lambda self: True)
    request = DeliveryRequest("4ABC", "a@example.com", [], b"From: a@b.example\r\n\r\n", 0, 0)
    with pytest.raises(Trouble) as info:
        agent._generic_headers(request)
    assert info.value.dsn == "4.3.0"


# Malformed address headers (fuzzing found the first): a fragment with an unclosed
# quote, "<", literal or comment, or a stray backslash, is never taken for an address,
# so the header passes byte for byte; the header's own line ending never goes into
# an address ('To: "x' CRLF used to lose its CRLF, and with it the end of the header block).
MALFORMED = [b'To: "x', b'To: "x\\"', b'To: "x\\', b"To: Bob <bob", b"To: <bob", b"To: <",
             b"Cc: (comment", b"Cc: (a (b) c", b"To: x\\", b"To: a@[1.2.3.4", b'From: "a" <b',
             b'To: "x\r\n\tfold', b"To: <bob\r\n\t", b"Reply-To: g: \"a"]


@pytest.mark.parametrize("rest", [b"", b"\r\nbody\r\n"], ids=["headers only", "with body"])
@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_address_headers_pass_unchanged(make_config, header, rest):
    message = b"Subject: x\r\n" + header + b"\r\n" + rest
    for cut in (None, 1, 7):
        rewriter = HeaderRewriter.from_config(make_config(), "127.0.0.1")
        assert run(rewriter, message, cut) == message


@pytest.mark.parametrize("rest", [b"", b"\r\nbody\r\n"], ids=["headers only", "with body"])
def test_group_members_are_qualified_and_the_block_stays(make_config, rest):
    message = b"To: a: b;\r\nCc: g: \"q u\", c;\r\n" + rest
    rewriter = HeaderRewriter.from_config(make_config(), "127.0.0.1")
    assert run(rewriter, message, 3) == (
        b"To: a: b@example.com;\r\nCc: g: \"q u\"@example.com, c@example.com;\r\n" + rest)


def test_a_rewrite_that_would_break_the_header_lines_leaves_the_header_alone():
    """A map value cannot hold CR or LF today; if one ever did, the header stays whole."""
    stream = HeaderStream(lambda address, _class: "x\r\nBcc: victim@example.com")
    message = b"To: a@b.example\r\n\r\nbody\r\n"
    assert stream.feed(message) + stream.finish() == message
