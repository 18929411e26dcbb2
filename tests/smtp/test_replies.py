"""The enhanced-status-code rules of the reply catalogue (Postfix dsn_util.c,
smtpd_check.c): what a status code looks like, and that its class follows
the reply code's."""
import pytest

from relayd.smtp.replies import Reply, is_status, same_class, split_status, with_class


@pytest.mark.parametrize("text, expected", [
    ("5.1.1 Who?", ("5.1.1", "Who?")),
    ("4.7.1\t  try later", ("4.7.1", "try later")),
    ("2.0.0", ("2.0.0", "")),
    ("5.123.999 x", ("5.123.999", "x")),
    ("5.1234.1 x", ("", "5.1234.1 x")),       # at most three digits
    ("3.1.1 x", ("", "3.1.1 x")),             # classes 2, 4 and 5 only
    ("5.1.1x", ("", "5.1.1x")),               # white space or the end must follow
    ("5.a.1 x", ("", "5.a.1 x")),
    ("5.\u0661.1 x", ("", "5.\u0661.1 x")),   # ASCII digits only
    ("User unknown", ("", "User unknown")),
])
def test_split_status_is_postfix_dsn_split(text, expected):
    assert split_status(text) == expected


def test_is_status_wants_the_whole_text():
    assert is_status("4.4.1") and not is_status("4.4.1 ") and not is_status("4.4") \
        and not is_status("")


@pytest.mark.parametrize("status, code, expected", [
    ("5.7.1", 450, "4.7.1"), ("4.1.1", 550, "5.1.1"), ("5.7.1", 554, "5.7.1"),
    ("5.2.2", "4", "4.2.2"), ("2.0.0", 451, "4.0.0"), ("", 550, ""),
])
def test_the_status_class_follows_the_reply_code(status, code, expected):
    assert with_class(status, code) == expected
    assert same_class(expected, code) or not status


def test_reply_with_code_keeps_text_and_returns_itself_when_unchanged():
    reply = Reply(554, "5.7.1", "<a@b>: Recipient address rejected: Access denied")
    assert reply.with_code(554) is reply
    assert reply.with_code(450) == Reply(450, "4.7.1", reply.text)
    assert Reply(250, "", "Ok").with_code(550) == Reply(550, "", "Ok")
