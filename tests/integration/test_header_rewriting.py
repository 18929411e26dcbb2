"""Header address rewriting end to end: a client, a relayd process configured by
main.cf and table files, and the recording sink as the next hop."""
import smtplib

import pytest

CANONICAL = "alice@lan.example  Alice.Smith@corp.example\n@old.example  @corp.example\n"
GENERIC = "bob@localdomain.local  bob@corp.example\n"

MESSAGE = (b"From: \"Smith, Alice\" <alice@lan.example>\r\n"
           b"To: Bob <bob@localdomain.local>,\r\n"
           b"\tcarol@old.example\r\n"
           b"Cc: dave@mail.sub.corp.example\r\n"
           b"Subject: header rewriting\r\n"
           b"\r\n"
           b"From: alice@lan.example\r\n"
           b".starts with a dot\r\n")


def test_canonical_masquerade_and_generic_maps_on_headers(relayd_factory, sink, tmp_path):
    (tmp_path / "canonical").write_text(CANONICAL)
    (tmp_path / "generic").write_text(GENERIC)
    relayd = relayd_factory(
        f"canonical_maps = texthash:{tmp_path / 'canonical'}\n"
        f"smtp_generic_maps = texthash:{tmp_path / 'generic'}\n"
        "masquerade_domains = corp.example\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("alice@lan.example", ["bob@relay.example"], MESSAGE)
    (msg,) = sink.wait_for(1)
    _, _, content = msg.data.partition(b"\r\nFrom: ")
    assert b"From: " + content == (
        b"From: \"Smith, Alice\" <Alice.Smith@corp.example>\r\n"
        b"To: Bob <bob@corp.example>,\r\n"
        b"\tcarol@corp.example\r\n"
        b"Cc: dave@corp.example\r\n"
        b"Subject: header rewriting\r\n"
        b"\r\n"
        b"From: alice@lan.example\r\n"
        b".starts with a dot\r\n")
    assert b"\r\n..starts with a dot\r\n" in msg.raw   # still dot-stuffed on the wire
    assert msg.sender == "Alice.Smith@corp.example"


@pytest.mark.parametrize("message", [b'Subject: x\r\nTo: "x\r\n',
                                     b'Subject: x\r\nTo: "x\r\n\r\nbody\r\n'],
                         ids=["headers only", "with body"])
def test_unclosed_quote_in_to_is_accepted_and_delivered_intact(relayd_factory, sink, message):
    """From 127.0.0.1 headers are rewritten by default; an unclosed quote used to
    take the header's CRLF: the headers-only message was refused 451 (before the
    stored-form check it stuck in the queue), the other lost its empty line."""
    relayd = relayd_factory()
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.ehlo()
        assert client.mail("a@lan.example")[0] == 250
        assert client.rcpt("b@relay.example")[0] == 250
        code, _ = client.data(message)
    assert code == 250
    (msg,) = sink.wait_for(1, timeout=10)
    assert msg.data.endswith(b"\r\n" + message), msg.data
