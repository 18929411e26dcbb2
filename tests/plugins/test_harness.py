"""relayd.testing: plugins against scripted dialogues, answered as relayd answers."""
import logging

import pytest

from relayd.config import ConfigError
from relayd.plugin import DUNNO, HOOK_CONNECT, HOOK_DATA_END, HOOK_QUEUED, Reject, Reply
from relayd.smtp import replies as R
from relayd.testing import PluginHarness, parse_replies

R554_NO_BOB = Reply(554, "5.7.1", "<{}>: Recipient address rejected: Bob is away")


def no_bob(ctx):
    return Reject(R554_NO_BOB.format(ctx.recipient)) if ctx.recipient.startswith("bob@") else DUNNO


def register_no_bob(registry):
    registry.add("reject_bob", no_bob)


def test_a_plugin_check_runs_in_its_place_in_the_restriction_list():
    harness = PluginHarness("smtpd_recipient_restrictions = permit_mynetworks, reject_bob, "
                            "reject_unauth_destination\n", client_addr="198.51.100.7",
                            plugins=[register_no_bob])
    out = harness.dialogue(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
                           b"RCPT TO:<bob@relay.example>\r\nRCPT TO:<carol@relay.example>\r\n"
                           b"RCPT TO:<carol@foreign.example>\r\nQUIT\r\n")
    assert parse_replies(out)[3:] == [R554_NO_BOB.format("bob@relay.example"),
                                      R.R250_RECIPIENT_OK,
                                      R.R454_RELAY_DEFERRED.format("carol@foreign.example"),
                                      R.R221_BYE]
    assert out.startswith(b"220 relayd.test ESMTP relayd\r\n250-relayd.test\r\n250-PIPELINING\r\n")


def test_mynetworks_comes_first_as_the_operator_wrote_it():
    harness = PluginHarness("smtpd_recipient_restrictions = permit_mynetworks, reject_bob, "
                            "reject_unauth_destination\n", client_addr="127.0.0.1",
                            plugins=[register_no_bob])
    out = harness.dialogue(b"HELO client.example\r\nMAIL FROM:<a@example.org>\r\n"
                           b"RCPT TO:<bob@relay.example>\r\n")
    assert parse_replies(out)[-1] == R.R250_RECIPIENT_OK


def test_an_unknown_check_fails_like_relayd_startup():
    with pytest.raises(ConfigError, match="reject_bob"):
        PluginHarness("smtpd_recipient_restrictions = reject_bob, reject_unauth_destination\n")


def test_a_check_that_raises_gives_451_and_a_traceback(caplog):
    def broken(ctx):
        raise KeyError("no such key")

    def register(registry):
        registry.add("broken_check", broken)

    harness = PluginHarness("smtpd_recipient_restrictions = broken_check, "
                            "reject_unauth_destination\n", plugins=[register])
    out = harness.dialogue(b"HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@relay.example>\r\n")
    assert parse_replies(out)[-1] == R.R451_TEMPORARY_FAILURE
    assert "Traceback" in caplog.text and "KeyError: 'no such key'" in caplog.text


def test_hooks_see_the_session_in_order_with_its_notes():
    seen = []

    def remember(ctx):
        ctx.notes["checked"] = ctx.recipient
        return DUNNO

    def register(registry):
        registry.add("remember", remember)
        for name in (HOOK_CONNECT, HOOK_QUEUED, HOOK_DATA_END):
            registry.add_hook(name, lambda event, name=name: seen.append((name, event)))

    harness = PluginHarness("smtpd_recipient_restrictions = remember, permit_mynetworks, "
                            "reject_unauth_destination\n", client_addr="127.0.0.1",
                            plugins=[register])
    harness.dialogue(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
                     b"RCPT TO:<b@foreign.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
    [message] = harness.queued
    assert [name for name, _ in seen] == ["connect", "queued", "data-end"]
    connect, queued, data_end = (event for _, event in seen)
    assert connect.session.client_addr == "127.0.0.1"
    assert (queued.queue_id, queued.sender, queued.recipients) == \
        (message.queue_id, "a@example.org", ("b@foreign.example",))
    assert queued.session.helo_name == "client.example"
    assert data_end.reply == R.R250_QUEUED.format(message.queue_id)
    assert data_end.notes == {"checked": "b@foreign.example"}


def test_a_refused_message_fires_data_end_but_not_queued():
    seen = []

    def register(registry):
        registry.add_hook(HOOK_QUEUED, seen.append)
        registry.add_hook(HOOK_DATA_END, seen.append)

    harness = PluginHarness("message_size_limit = 100\n", client_addr="127.0.0.1",
                            plugins=[register])
    harness.dialogue(b"HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@relay.example>\r\n"
                     b"DATA\r\n" + b"x" * 200 + b"\r\n.\r\n")
    [data_end] = seen
    assert data_end.reply == R.R552_MESSAGE_TOO_BIG
    assert harness.queued == []


def test_parse_replies_rejects_what_is_not_a_reply():
    with pytest.raises(ValueError):
        parse_replies(b"250 ok\r\nhello\r\n")
    with pytest.raises(ValueError):
        parse_replies(b"250-first line\r\n")


def test_a_connect_time_rejection_replaces_the_greeting_and_denies_every_command():
    harness = PluginHarness("smtpd_delay_reject = no\n"
                            "smtpd_client_restrictions = check_client_access inline:{192.0.2.9=REJECT}\n",
                            client_addr="192.0.2.9")
    out = harness.dialogue(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n")
    denied = R.R503_ACCESS_DENIED.format("unknown[192.0.2.9]")
    assert parse_replies(out) == [R.R554_ACCESS_DENIED.format("unknown[192.0.2.9]", "Client host"),
                                  denied, denied, R.R221_BYE]


def test_helo_and_sender_stages_answer_at_their_command_without_delay_reject():
    harness = PluginHarness("smtpd_delay_reject = no\n"
                            "smtpd_helo_restrictions = reject_invalid_helo_hostname\n"
                            "smtpd_sender_restrictions = reject_non_fqdn_sender\n")
    out = harness.dialogue(b"HELO bad_name!\r\nHELO client.example\r\nMAIL FROM:<a@nodots>\r\n"
                           b"MAIL FROM:<a@example.org>\r\nQUIT\r\n")
    replies = parse_replies(out)
    assert [r.code for r in replies] == [220, 501, 250, 504, 250, 221]
    assert replies[3].text == "<a@nodots>: Sender address rejected: need fully-qualified address"


MESSAGE = b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"


@pytest.mark.parametrize("action, hold, kept", [("HOLD", True, True), ("DISCARD", False, False),
                                                 ("OK", False, True)])
def test_message_actions_decide_what_is_queued(action, hold, kept):
    harness = PluginHarness(f"smtpd_recipient_restrictions = check_sender_access "
                            f"inline:{{a@example.org={action}}}, reject_unauth_destination\n")
    out = harness.dialogue(b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
                           b"RCPT TO:<b@relay.example>\r\n" + MESSAGE)
    assert parse_replies(out)[-1].code == 250  # DISCARD too: Postfix claims delivery
    assert [m.hold for m in harness.queued] == ([hold] if kept else [])


def test_redirect_bcc_and_prepend_shape_the_queued_message():
    harness = PluginHarness("smtpd_recipient_restrictions = check_recipient_access "
                            "inline:{ {b@relay.example=PREPEND X-Seen: yes} }, check_sender_access "
                            "inline:{ {a@example.org=REDIRECT other@relay.example} }, "
                            "reject_unauth_destination\n")
    harness.dialogue(b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
                     b"RCPT TO:<b@relay.example>\r\n" + MESSAGE)
    [message] = harness.queued
    assert message.recipients == ("other@relay.example",)
    assert message.content == b"X-Seen: yes\r\nSubject: x\r\n\r\nhi\r\n"


def test_data_and_end_of_data_restrictions_refuse_the_message():
    for stage, after in (("smtpd_data_restrictions", 3), ("smtpd_end_of_data_restrictions", 4)):
        harness = PluginHarness(f"{stage} = check_sender_access inline:{{a@example.org=REJECT}}\n",
                                client_addr="127.0.0.1")
        out = harness.dialogue(b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
                               b"RCPT TO:<b@relay.example>\r\n" + MESSAGE + b"QUIT\r\n")
        replies = parse_replies(out)
        assert replies[after + 1] == R.R554_ACCESS_DENIED.format("a@example.org", "Sender address")
        assert harness.queued == []
