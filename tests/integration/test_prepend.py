"""PREPEND from an access table, over real SMTP: a text that is not one header
line ("Name: value", printable) is logged and ignored, as smtpd_check.c does
("access table ... entry ... requires header: text"); the message is accepted."""
import smtplib

from relayd.smtp.text import printable

BAD = {
    "nocolon": "X-Bad",
    "linebreak": "X-Evil: one\u2028X-Injected: two",     # a line break to Python's email
    "control": "X-Esc: \x1b[2J",
}


def test_bad_prepend_text_from_an_access_table_is_warned_about_and_ignored(
        relayd_factory, sink, tmp_path):
    table = tmp_path / "access"
    entries = [f"{name}@relay.example PREPEND {text}" for name, text in BAD.items()]
    table.write_text("\n".join(entries + ["good@relay.example PREPEND X-Good: yes", ""]),
                     encoding="utf-8")
    relayd = relayd_factory(f"smtpd_recipient_restrictions = check_recipient_access "
                            f"texthash:{table}, permit_mynetworks, reject_unauth_destination\n")
    recipients = [f"{name}@relay.example" for name in BAD] + ["good@relay.example"]
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        refused = client.sendmail("a@example.org", recipients, b"Subject: p\r\n\r\nhi\r\n")
    assert refused == {}
    (msg,) = sink.wait_for(1)
    assert msg.recipients == recipients
    headers = msg.data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nX-Good: yes\r\n" in headers
    for word in (b"X-Bad", b"X-Evil", b"X-Injected", b"X-Esc", b"\x1b"):
        assert word not in msg.data
    log = relayd.log()
    for text in BAD.values():   # named as the log shows it: printable, "?" for the rest
        assert (f"warning: access table texthash:{table} entry \"PREPEND {printable(text)}\" "
                f"requires header: text") in log, log
