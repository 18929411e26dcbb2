"""Issue 7 (hardening) on the SMTP server side, over real sockets against a relayd process:
junk commands, client strings in logs and replies, and sessions that must end."""
from relayd.smtp import replies as R
from tests.integration.test_limits import reply_lines
from tests.integration.test_relay_path import dialogue

JUNK_LIMITS = ("smtpd_junk_command_limit = 3\nsmtpd_hard_error_limit = 3\n"
               "smtpd_soft_error_limit = 10\n")


def test_junk_commands_past_the_limit_count_as_errors(relayd_factory):
    relayd = relayd_factory(JUNK_LIMITS)
    out = dialogue(relayd.port, b"EHLO c.example\r\n" + b"NOOP\r\nRSET\r\nVRFY postmaster\r\n" * 4)
    lines = reply_lines(out)
    # Postfix: "if (junk_cmds++ > limit) error_count++": the 5th junk command is the
    # first error (EHLO is one too), the 7th reaches smtpd_hard_error_limit = 3.
    assert [line[:3] for line in lines] == [b"250", b"250", b"250", b"252", b"250", b"250",
                                            b"421"]
    assert lines[-1] + b"\r\n" == R.R421_TOO_MANY_ERRORS.format("relayd.test").to_bytes()
    relayd.wait_log("too many errors after VRFY from unknown[127.0.0.1]")


def test_a_delivered_message_resets_the_junk_count(relayd_factory, sink):
    relayd = relayd_factory(JUNK_LIMITS)
    message = (b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@relay.example>\r\nDATA\r\n"
               b"Subject: x\r\n\r\nx\r\n.\r\n")
    out = dialogue(relayd.port, b"HELO c.example\r\n" + b"NOOP\r\n" * 5 + message
                   + b"NOOP\r\n" * 5 + b"QUIT\r\n")
    codes = [line[:3] for line in reply_lines(out)]
    assert codes == [b"250"] * 6 + [b"250", b"250", b"354", b"250"] + [b"250"] * 5 + [b"221"]
    sink.wait_for(1)
