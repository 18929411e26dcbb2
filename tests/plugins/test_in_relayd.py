"""Plugins inside a real relayd process, over real SMTP on 127.0.0.1."""
import re
import smtplib
import socket

import pytest

from relayd.config.errors import EX_CONFIG
from relayd.smtp import replies as R
from relayd.testing import PluginHarness

FAULTY_PLUGIN = """
    import gevent
    from relayd.plugin import DUNNO

    def raising_check(ctx):
        if ctx.recipient.startswith("raise@"):
            raise RuntimeError("plugin bug for " + ctx.recipient)
        return DUNNO

    def slow_check(ctx):
        if ctx.recipient.startswith("slow@"):
            gevent.sleep(60)
        return DUNNO

    def register(registry):
        registry.add("raising_check", raising_check)
        registry.add("slow_check", slow_check, timeout=0.5)
"""

# 127.0.0.1 (the test client) is outside these networks: no permit_mynetworks shortcut.
OUTSIDE = "mynetworks = 192.0.2.0/24\nsmtpd_hard_error_limit = 100\n"


def transcript(port: int, script: bytes) -> bytes:
    """Everything the server says to ``script`` sent in one write, up to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(script)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def rcpt(port: int, sender: str, recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.example")
        client.mail(sender)
        return client.rcpt(recipient)


@pytest.fixture
def tld_file(tmp_path):
    path = tmp_path / "sender_tlds"
    path.write_text("zip\nmov\n")
    return path


def test_the_example_plugin_rejects_over_real_smtp(example_plugin, relayd_factory, sink,
                                                    tld_file):
    relayd = relayd_factory(OUTSIDE + f"smtpd_sender_restrictions = reject_sender_tld {tld_file}\n")
    code, text = rcpt(relayd.port, "alice@shop.zip", "bob@relay.example")
    expected = example_plugin.R554_SENDER_TLD.format("alice@shop.zip", "zip")
    assert (code, text.decode()) == (expected.code, f"{expected.status} {expected.text}")
    relayd.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: " + str(expected))
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("alice@example.org", ["bob@relay.example"], b"Subject: ok\r\n\r\nhi\r\n")
    [delivered] = sink.wait_for(1)
    assert delivered.sender == "alice@example.org"


def test_the_harness_answers_as_the_real_relayd(example_plugin, relayd_factory, tld_file):
    main_cf = OUTSIDE + f"smtpd_sender_restrictions = reject_sender_tld {tld_file}\n"
    script = (b"EHLO client.example\r\nMAIL FROM:<alice@shop.zip>\r\nRCPT TO:<b@relay.example>\r\n"
              b"RSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<b@relay.example>\r\n"
              b"RCPT TO:<c@foreign.example>\r\nDATA\r\nSubject: x\r\n\r\n..hi\r\n.\r\n"
              b"VRFY b\r\nNOOP\r\nBOGUS\r\nQUIT\r\n")
    real = transcript(relayd_factory(main_cf).port, script)
    harnessed = PluginHarness(main_cf, client_addr="127.0.0.1").dialogue(script)
    same_ids = re.compile(rb"queued as [0-9A-F]+")
    assert same_ids.sub(b"queued as QID", harnessed) == same_ids.sub(b"queued as QID", real)
    assert b"554 5.7.1 <alice@shop.zip>: Sender address rejected" in real


def test_a_restriction_no_plugin_provides_stops_startup(relayd_factory):
    with pytest.raises(RuntimeError) as info:
        relayd_factory("smtpd_sender_restrictions = reject_sender_tlds /etc/relayd/tlds\n")
    message = str(info.value)
    assert f"relayd exited with {EX_CONFIG}" in message
    assert "smtpd_sender_restrictions" in message and "reject_sender_tlds" in message


def test_a_bad_argument_file_stops_startup_naming_file_and_line(example_plugin, relayd_factory,
                                                                 tmp_path):
    path = tmp_path / "bad_tlds"
    path.write_text("zip\nmov biz\n")
    with pytest.raises(RuntimeError) as info:
        relayd_factory(f"smtpd_sender_restrictions = reject_sender_tld {path}\n")
    assert f"relayd exited with {EX_CONFIG}" in str(info.value)
    assert f"{path}, line 2" in str(info.value)


def test_a_check_that_raises_or_passes_its_timeout_gives_451(plugin_site, relayd_factory):
    plugin_site("faulty_checks", FAULTY_PLUGIN)
    relayd = relayd_factory(OUTSIDE + "smtpd_recipient_restrictions = raising_check, slow_check, "
                            "reject_unauth_destination\n")
    temporary = (R.R451_TEMPORARY_FAILURE.code,
                 f"{R.R451_TEMPORARY_FAILURE.status} {R.R451_TEMPORARY_FAILURE.text}".encode())
    assert rcpt(relayd.port, "a@example.org", "raise@relay.example") == temporary
    log = relayd.wait_log("RuntimeError: plugin bug for raise@relay.example")
    assert "Traceback (most recent call last)" in log
    assert rcpt(relayd.port, "a@example.org", "slow@relay.example") == temporary
    relayd.wait_log("slow_check: timeout after 0.5s")
    assert rcpt(relayd.port, "a@example.org", "fine@relay.example") == (250, b"2.1.5 Ok")


def test_the_queued_hook_logs_in_the_real_mail_log(example_plugin, relayd_factory, sink):
    relayd = relayd_factory("relayd_plugins = example\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("alice@example.org", ["bob@relay.example"], b"Subject: ok\r\n\r\nhi\r\n")
    sink.wait_for(1)
    assert re.search(r"relayd/example\[\d+\]: [0-9A-F]+: queued from=<alice@example.org>, "
                     r"nrcpt=1, count=1", relayd.wait_log("count=1", timeout=3))


def test_an_installed_plugin_no_one_configured_stays_inert(example_plugin, relayd_factory, sink):
    relayd = relayd_factory()
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        client.sendmail("alice@example.org", ["bob@relay.example"], b"Subject: ok\r\n\r\nhi\r\n")
    sink.wait_for(1)
    assert "queued from=" not in relayd.wait_log(": removed")


PREPENDING_PLUGIN = """
    from relayd.plugin import DUNNO
    from relayd.pipeline.verdicts import Prepend

    TEXTS = {"crlf": "X-Plugin: one\\r\\nX-Injected: two", "name": "no header here",
             "good": "X-Plugin: fine"}

    def prepend_check(ctx):
        text = TEXTS.get(ctx.recipient.split("@")[0])
        return Prepend(text) if text else DUNNO

    def register(registry):
        registry.add("prepend_check", prepend_check)
"""


def test_a_plugin_prepend_that_is_not_one_header_line_is_warned_about_and_ignored(
        plugin_site, relayd_factory, sink):
    plugin_site("prepending", PREPENDING_PLUGIN)
    relayd = relayd_factory("smtpd_recipient_restrictions = prepend_check, permit_mynetworks, "
                            "reject_unauth_destination\n")
    recipients = ["crlf@relay.example", "name@relay.example", "good@relay.example"]
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as client:
        assert client.sendmail("a@example.org", recipients, b"Subject: p\r\n\r\nhi\r\n") == {}
    (msg,) = sink.wait_for(1)
    assert b"\r\nX-Plugin: fine\r\n" in msg.data
    assert b"X-Injected" not in msg.data and b"no header here" not in msg.data
    log = relayd.log()
    assert 'warning: prepend_check: PREPEND "X-Plugin: one??X-Injected: two" requires header: ' \
           'text' in log, log
    assert 'warning: prepend_check: PREPEND "no header here" requires header: text' in log
