"""Header address rewriting end to end: a client, a relayd process configured by
main.cf and table files, and the recording sink as the next hop."""
import smtplib

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
