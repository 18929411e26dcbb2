"""reject_sender_tld and the queued counter, run through relayd's plugin harness."""
import logging

import pytest

from relayd.config import ConfigError
from relayd.smtp import replies as R
from relayd.testing import PluginHarness, parse_replies

from relayd_plugin_example import R554_SENDER_TLD, read_tld_file, register

TLDS = "# top-level domains we take no mail from\nzip\n.MOV   # with its dot, any case\n\n"


@pytest.fixture
def tld_file(tmp_path):
    path = tmp_path / "sender_tlds"
    path.write_text(TLDS)
    return path


@pytest.fixture
def harness(tld_file):
    return PluginHarness(f"smtpd_sender_restrictions = reject_sender_tld {tld_file}\n",
                         client_addr="198.51.100.7", plugins=[register])


def rcpt_reply(harness, sender: str) -> R.Reply:
    out = harness.dialogue(b"EHLO client.example\r\nMAIL FROM:<" + sender.encode() + b">\r\n"
                           b"RCPT TO:<bob@relay.example>\r\nQUIT\r\n")
    greeting, ehlo, mail, rcpt, quit_ = parse_replies(out)
    assert mail == R.R250_SENDER_OK  # smtpd_delay_reject = yes: refused at RCPT, as Postfix does
    return rcpt


def test_sender_under_a_listed_tld_is_rejected_with_the_exact_reply(harness):
    reply = rcpt_reply(harness, "alice@shop.zip")
    assert reply == R554_SENDER_TLD.format("alice@shop.zip", "zip")
    assert reply.to_bytes() == (b"554 5.7.1 <alice@shop.zip>: Sender address rejected: "
                                b"Mail from .zip domains is not accepted\r\n")


def test_case_and_a_trailing_dot_do_not_help(harness):
    assert rcpt_reply(harness, "Alice@Video.MOV.") == \
        R554_SENDER_TLD.format("Alice@Video.MOV.", "mov")


@pytest.mark.parametrize("sender", ["alice@example.org", "alice@zip.example.org",
                                    "alice@[192.0.2.1]", "postmaster", ""])
def test_other_senders_pass(harness, sender):
    assert rcpt_reply(harness, sender) == R.R250_RECIPIENT_OK


def test_accepted_mail_is_queued_and_counted_in_the_log(harness, caplog):
    caplog.set_level(logging.INFO, logger="relayd.example")
    message = b"Subject: hi\r\n\r\n..dotted\r\n.\r\n"
    out = harness.dialogue(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
                           b"RCPT TO:<b@relay.example>\r\nRCPT TO:<c@relay.example>\r\nDATA\r\n"
                           + message + b"MAIL FROM:<d@example.org>\r\nRCPT TO:<b@relay.example>\r\n"
                           b"DATA\r\n" + message + b"QUIT\r\n")
    first, second = harness.queued
    assert parse_replies(out)[6] == R.R250_QUEUED.format(first.queue_id)
    assert first.recipients == ("b@relay.example", "c@relay.example")
    assert first.content == b"Subject: hi\r\n\r\n.dotted\r\n"
    lines = [r.getMessage() for r in caplog.records if r.name == "relayd.example"]
    assert lines == [f"{first.queue_id}: queued from=<a@example.org>, nrcpt=2, count=1",
                     f"{second.queue_id}: queued from=<d@example.org>, nrcpt=1, count=2"]


def test_a_rejected_sender_queues_nothing(harness):
    out = harness.dialogue(b"HELO client.example\r\nMAIL FROM:<a@shop.zip>\r\n"
                           b"RCPT TO:<b@relay.example>\r\nDATA\r\n")
    assert parse_replies(out)[-1] == R.R554_NO_VALID_RECIPIENTS
    assert harness.queued == []


def test_the_check_needs_its_file_argument():
    with pytest.raises(ConfigError, match="reject_sender_tld needs 1 argument"):
        PluginHarness("smtpd_sender_restrictions = reject_sender_tld\n", plugins=[register])


def test_a_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "sender_tlds"
    path.write_text("zip\n\nmov biz\n")
    with pytest.raises(ConfigError) as info:
        read_tld_file(str(path))
    assert (info.value.file, info.value.line) == (str(path), 3)
    assert "'mov biz'" in str(info.value)


def test_a_bad_file_stops_startup_instead_of_skipping_the_rule(tmp_path):
    path = tmp_path / "sender_tlds"
    path.write_text("zip\n.example.zip\n")
    with pytest.raises(ConfigError) as info:
        PluginHarness(f"smtpd_sender_restrictions = reject_sender_tld {path}\n",
                      plugins=[register])
    assert f"{path}, line 2" in str(info.value)
