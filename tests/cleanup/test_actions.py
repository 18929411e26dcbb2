"""Each header_checks(5) action, as cleanup(8) carries it out."""
import logging

import pytest

from relayd.cleanup import ContentChecker, LogContext
from relayd.smtp.replies import R550_CONTENT_REJECTED, Reply
from tests.cleanup.conftest import CONTEXT, run

MESSAGE = (b"Received: from client.example\r\n"
           b"Subject: Make money fast\r\n"
           b"X-Mailer: Microsoft Outlook Express 6.00.2800.1106\r\n"
           b"To: bob@example.net\r\n"
           b"\r\n"
           b"Hello Bob,\r\n")

SEED_RULES = ("/^Subject: Make money fast/ REJECT\n"
              "/^X-Mailer: Microsoft Outlook Express/ REJECT\n")


def check(make_checks, rules, message=MESSAGE, body_rules=None, context=CONTEXT):
    main_cf = "header_checks = regexp:{dir}/header_checks\n"
    files = {"header_checks": rules}
    if body_rules is not None:
        main_cf += "body_checks = regexp:{dir}/body_checks\n"
        files["body_checks"] = body_rules
    checks = make_checks(main_cf, **files)
    return run(ContentChecker(checks, context), message)


def cleanup_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "relayd.cleanup"]


def test_seed_subject_rule_rejects_with_postfix_reply_and_log_line(make_checks, caplog):
    caplog.set_level(logging.INFO)
    out, result = check(make_checks, SEED_RULES)
    # cleanup_act(): reason = "5.7.1 message content rejected"; smtpd: "550 <reason>".
    assert result.reply == R550_CONTENT_REJECTED
    assert result.reply.to_bytes() == b"550 5.7.1 message content rejected\r\n"
    assert cleanup_lines(caplog) == [
        "4F3A21C0B2: reject: header Subject: Make money fast from client.example[192.0.2.7]; "
        "from=<alice@example.org> to=<bob@example.net> proto=ESMTP helo=<client.example>: "
        "5.7.1 message content rejected"]


def test_seed_rules_are_case_insensitive_and_the_x_mailer_rule_fires(make_checks):
    message = MESSAGE.replace(b"Subject: Make money fast", b"Subject: hello") \
        .replace(b"X-Mailer: Microsoft", b"x-mailer: MICROSOFT")
    out, result = check(make_checks, SEED_RULES, message)
    assert result.reply == R550_CONTENT_REJECTED
    out, result = check(make_checks, SEED_RULES, message.replace(b"MICROSOFT", b"Mutt"))
    assert result.reply is None and out == message.replace(b"MICROSOFT", b"Mutt")


@pytest.mark.parametrize("action, reply", [
    ("REJECT No spam here", Reply(550, "5.7.1", "No spam here")),
    ("REJECT 5.7.0 Spam is refused", Reply(550, "5.7.0", "Spam is refused")),
    ("REJECT 4.7.1 Try again later", Reply(451, "4.7.1", "Try again later")),
    ("reject", R550_CONTENT_REJECTED),
])
def test_reject_text_and_its_status_code(make_checks, action, reply):
    out, result = check(make_checks, f"/^Subject:/ {action}\n")
    assert result.reply == reply


def test_first_reject_wins_and_ends_inspection(make_checks, caplog):
    caplog.set_level(logging.INFO)
    out, result = check(make_checks, "/^Subject:/ REJECT first\n/^X-Mailer:/ REJECT second\n")
    assert result.reply.text == "first"
    assert len(cleanup_lines(caplog)) == 1


def test_numeric_replies_are_not_header_checks_actions(make_checks, caplog):
    # cleanup_act() knows no "550 text" (that is access(5)): warn, go on.
    out, result = check(make_checks, "/^Subject:/ 550 go away\n")
    assert result.reply is None and out == MESSAGE
    assert "unknown command in header_checks map: 550 go away" in caplog.text


def test_ignore_deletes_the_whole_folded_header(make_checks):
    message = MESSAGE.replace(b"Subject: Make money fast\r\n",
                              b"Subject: Make money\r\n\tfast\r\n  and easy\r\n")
    out, result = check(make_checks, "/^Subject:/ IGNORE\n", message)
    assert out == MESSAGE.replace(b"Subject: Make money fast\r\n", b"")
    assert result.size_delta == -len(b"Subject: Make money\r\n\tfast\r\n  and easy\r\n")


def test_strip_deletes_and_logs(make_checks, caplog):
    caplog.set_level(logging.INFO)
    out, result = check(make_checks, "/^X-Mailer:/ STRIP no mailer names\n")
    assert b"X-Mailer" not in out
    assert cleanup_lines(caplog)[0].startswith("4F3A21C0B2: strip: header X-Mailer: Microsoft")
    assert cleanup_lines(caplog)[0].endswith(": no mailer names")


def test_replace_uses_the_match_and_keeps_wire_form(make_checks):
    out, result = check(make_checks, "/^Subject: (.*)/ REPLACE X-Original-Subject: $1\n")
    assert b"\r\nX-Original-Subject: Make money fast\r\n" in out
    assert b"\r\nSubject:" not in out
    assert result.size_delta == len("X-Original-") and result.reply is None


def test_prepend_puts_a_header_before_the_matching_one(make_checks):
    out, result = check(make_checks, "/^Subject:/ PREPEND X-Spam-Flag: YES\n")
    assert b"\r\nX-Spam-Flag: YES\r\nSubject: Make money fast\r\n" in out
    assert result.size_delta == len(b"X-Spam-Flag: YES\r\n")


@pytest.mark.parametrize("action", ["PREPEND not a header", "REPLACE not a header", "PREPEND"])
def test_prepend_and_replace_need_header_text_in_a_header(make_checks, caplog, action):
    out, result = check(make_checks, f"/^Subject:/ {action}\n")
    assert out == MESSAGE
    assert "header text" in caplog.text or "action without text" in caplog.text


def test_warn_and_info_only_log(make_checks, caplog):
    caplog.set_level(logging.INFO)
    out, result = check(make_checks, "/^Subject:/ WARN spammy subject\n/^X-Mailer:/ INFO old MUA\n")
    assert out == MESSAGE and result.reply is None and result.warnings == ("spammy subject",)
    lines = cleanup_lines(caplog)
    assert lines[0].startswith("4F3A21C0B2: warning: header Subject: Make money fast from ")
    assert lines[0].endswith(": spammy subject")
    assert lines[1].startswith("4F3A21C0B2: info: header X-Mailer:")
    # A "warning:" action line is an info record, not a logged warning.
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_hold_keeps_the_first_and_inspection_goes_on(make_checks, caplog):
    caplog.set_level(logging.INFO)
    out, result = check(make_checks, "/^Subject:/ HOLD look at this\n/^X-Mailer:/ HOLD again\n"
                                     "/^To:/ BCC archive@example.net\n")
    assert result.hold == "look at this"
    assert result.bcc == ("archive@example.net",)
    assert [line.split(": ")[1] for line in cleanup_lines(caplog)] == ["hold", "bcc"]


def test_discard_ends_inspection(make_checks):
    out, result = check(make_checks, "/^Subject:/ DISCARD\n/^X-Mailer:/ REJECT\n")
    assert result.discard == "" and result.reply is None
    assert out == MESSAGE


def test_redirect_and_filter(make_checks, caplog):
    out, result = check(make_checks, "/^Subject:/ FILTER smtp:[127.0.0.1]:10025\n"
                                     "/^X-Mailer:/ REDIRECT spamtrap@example.org\n"
                                     "/^To:/ REJECT\n")
    assert result.filter == "smtp:[127.0.0.1]:10025"
    assert result.redirect == "spamtrap@example.org"
    # Postfix stops header/body inspection after REDIRECT as well.
    assert result.reply is None


@pytest.mark.parametrize("action, warning", [
    ("REDIRECT nobody", 'bad REDIRECT target "nobody" in header_checks map -- need user@domain'),
    ("BCC nobody", 'bad BCC address "nobody" in header_checks map -- need user@domain'),
    ("FILTER smtp", "bad FILTER command smtp in header_checks -- need transport:destination"),
])
def test_malformed_action_arguments_are_warned_about_and_ignored(make_checks, caplog, action,
                                                                warning):
    out, result = check(make_checks, f"/^Subject:/ {action}\n")
    assert warning in caplog.text
    assert (result.redirect, result.bcc, result.filter) == (None, (), None)


def test_pass_turns_off_the_remaining_checks(make_checks):
    out, result = check(make_checks, "/^Subject:/ PASS trusted\n/^X-Mailer:/ REJECT\n",
                        body_rules="/Hello/ REJECT\n")
    assert result.reply is None


def test_dunno_and_ok_stop_the_table_search_for_that_line(make_checks):
    out, result = check(make_checks, "/^Subject: Make/ DUNNO\n/^Subject:/ REJECT\n"
                                     "/^X-Mailer:/ OK\n/^X-Mailer:/ REJECT\n")
    assert result.reply is None and out == MESSAGE


def test_body_line_actions(make_checks, caplog):
    caplog.set_level(logging.INFO)
    message = MESSAGE + b"Click http://spam.example/\r\n.hidden\r\nBye\r\n"
    wire = message.replace(b"\r\n.hidden", b"\r\n..hidden")
    out, result = check(make_checks, "/^nothing/ DUNNO\n", wire,
                        body_rules="/^Click/ REPLACE [link removed]\n"
                                   "/^\\.hidden/ REPLACE .shown\n/^Bye/ IGNORE\n")
    assert out.endswith(b"\r\n\r\nHello Bob,\r\n[link removed]\r\n..shown\r\n")
    assert cleanup_lines(caplog)[0].startswith(
        "4F3A21C0B2: replace: body Click http://spam.example/ from client.example[192.0.2.7];")


def test_body_reject_and_log_without_envelope_details(make_checks, caplog):
    caplog.set_level(logging.INFO)
    out, result = check(make_checks, "/^nothing/ DUNNO\n", body_rules="/^Hello Bob/ REJECT\n",
                        context=LogContext(queue_id="ABC", origin="local"))
    assert result.reply == R550_CONTENT_REJECTED
    assert cleanup_lines(caplog) == [
        "ABC: reject: body Hello Bob, from local;: 5.7.1 message content rejected"]


# Recorded from Postfix 3.7.11 (Debian) with this header_checks file, a swaks-like
# client sending to two recipients: (message, DATA reply, cleanup log line after "QID: ").
POSTFIX_RULES = ("/^Subject: Make money fast/ REJECT\n"
                 "/^Subject: folded\\s+header/ REJECT folded seen\n"
                 "/^Subject: .*custom/ REJECT 4.7.0 come back later\n"
                 "/^X-Warn:/ WARN watch this\n")
POSTFIX_GOLDEN = [
    (b"Subject: Make money fast\r\nX-Warn: yes\r\n\r\nbody\r\n",
     b"550 5.7.1 message content rejected\r\n",
     "reject: header Subject: Make money fast from localhost[127.0.0.1]; from=<alice@example.org> "
     "to=<carol@example.net> proto=ESMTP helo=<client.example>: 5.7.1 message content rejected"),
    (b"Subject: folded\r\n header\r\nX-Warn: yes\r\n\r\nbody\r\n",
     b"550 5.7.1 folded seen\r\n",
     "reject: header Subject: folded? header from localhost[127.0.0.1]; from=<alice@example.org> "
     "to=<carol@example.net> proto=ESMTP helo=<client.example>: 5.7.1 folded seen"),
    (b"Subject: a custom one\r\nX-Warn: yes\r\n\r\nbody\r\n",
     b"451 4.7.0 come back later\r\n",
     "reject: header Subject: a custom one from localhost[127.0.0.1]; from=<alice@example.org> "
     "to=<carol@example.net> proto=ESMTP helo=<client.example>: 4.7.0 come back later"),
]


@pytest.mark.parametrize("message, reply, log_line", POSTFIX_GOLDEN)
def test_same_reply_and_log_line_as_postfix(make_checks, caplog, message, reply, log_line):
    caplog.set_level(logging.INFO)
    context = LogContext(queue_id="QID", origin="localhost[127.0.0.1]",
                         sender="alice@example.org", recipient="carol@example.net",
                         protocol="ESMTP", helo="client.example")
    out, result = check(make_checks, POSTFIX_RULES, message, context=context)
    assert result.reply.to_bytes() == reply
    assert cleanup_lines(caplog) == ["QID: " + log_line]
