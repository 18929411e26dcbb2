"""Address and parameter grammar, through the server session as a client sees it."""
import pytest

from relayd.smtp import grammar
from relayd.smtp import replies as R
from relayd.smtp.events import BadCommand, Mail, Rcpt
from tests.smtp.test_server_transcripts import Driver


def mail(argument, **options):
    """The event for "MAIL <argument>" after HELO."""
    return Driver(**options).feed(b"HELO x\r\nMAIL " + argument + b"\r\n").events[-1]


def rcpt(argument):
    return Driver().feed(b"HELO x\r\nMAIL FROM:<>\r\nRCPT " + argument + b"\r\n").events[-1]


@pytest.mark.parametrize("argument, sender", [
    (b"FROM:<>", ""),
    (b"FROM:<alice@example.org>", "alice@example.org"),
    (b"from:<Alice@Example.ORG>", "Alice@Example.ORG"),
    (b"FROM: <alice@example.org>", "alice@example.org"),          # Postfix: space after colon
    (b"FROM:alice@example.org", "alice@example.org"),             # Postfix: no brackets
    (b'FROM:<"john doe"@example.org>', '"john doe"@example.org'),  # quoted local part, kept
    (b'FROM:<"a\\"b"@example.org>', '"a\\"b"@example.org'),       # quoted-pairSMTP
    (b"FROM:<@relay.one,@relay.two:user@example.org>", "@relay.one,@relay.two:user@example.org"),
    (b"FROM:<user@[192.0.2.1]>", "user@[192.0.2.1]"),
    (b"FROM:<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]"),
    (b"FROM:<user@[x-tag:something]>", "user@[x-tag:something]"),
    (b"FROM:<a+tag@sub_domain.example.org>", "a+tag@sub_domain.example.org"),
])
def test_good_senders(argument, sender):
    assert mail(argument) == Mail(sender, {})


@pytest.mark.parametrize("argument", [
    b"FROM:<alice@example.org", b"FROM:alice@example.org>", b"FROM:<a b@example.org>",
    b"FROM:<@example.org>", b"FROM:<alice@>", b"FROM:<alice@example..org>",
    b"FROM:<alice@-example.org>", b"FROM:<alice@[192.0.2.256]>", b"FROM:<alice@[1.2.3]>",
    b"FROM:<alice@[IPv6:zz::1]>", b'FROM:<"open@example.org>', b"FROM:<<alice@example.org>>",
    b"FROM:<alice@example.org>SIZE=10", b"FROM:<alice,bob@example.org>",
    b"FROM:<@relay:>", b"FROM:<a@b@c>",
])
def test_bad_senders(argument):
    assert mail(argument) == BadCommand(R.R501_BAD_SENDER)


@pytest.mark.parametrize("argument, recipient", [
    (b"TO:<Postmaster>", "Postmaster"),
    (b"TO:<bob@example.net>", "bob@example.net"),
    (b"TO:bob@example.net", "bob@example.net"),
    (b"TO:<@hop:bob@example.net>", "@hop:bob@example.net"),
])
def test_good_recipients(argument, recipient):
    assert rcpt(argument) == Rcpt(recipient, {})


@pytest.mark.parametrize("argument", [b"TO:<>", b"TO:<bob@>", b"TO:<bob@example.net"])
def test_bad_recipients(argument):
    assert rcpt(argument) == BadCommand(R.R501_BAD_RECIPIENT)


@pytest.mark.parametrize("argument, reply", [
    (b"FROM:<a@b> SIZE=20000", R.R552_MESSAGE_TOO_BIG),
    (b"FROM:<a@b> SIZE=12k", R.R501_BAD_MESSAGE_SIZE),
    (b"FROM:<a@b> SIZE", R.R501_BAD_MESSAGE_SIZE),
    (b"FROM:<a@b> BODY=BINARYMIME", R.R555_UNSUPPORTED_OPTION.format("BODY=BINARYMIME")),
    (b"FROM:<a@b> XFOO=1", R.R555_UNSUPPORTED_OPTION.format("XFOO=1")),
    (b"FROM:<a@b> SIZE=", R.R501_BAD_PARAMETER.format("SIZE")),
    (b"FROM:<a@b> =1", R.R501_BAD_PARAMETER.format("=1")),
    (b"FROM:<a@b> -X=1", R.R501_BAD_PARAMETER.format("-X")),
    (b"FROM:<a@b> SIZE=1 size=2", R.R501_BAD_PARAMETER.format("SIZE")),
])
def test_mail_parameter_refusals(argument, reply):
    assert mail(argument, message_size_limit=10000) == BadCommand(reply)


def test_mail_parameters_accepted():
    event = mail(b"FROM:<a@b>  size=10000 body=8bitmime", message_size_limit=10000)
    assert event == Mail("a@b", {"SIZE": "10000", "BODY": "8bitmime"})
    assert mail(b"FROM:<a@b> SIZE=999999999999", message_size_limit=0).params["SIZE"]


def test_rcpt_parameters_are_not_supported_yet():
    assert rcpt(b"TO:<b@c> NOTIFY=NEVER") == BadCommand(R.R555_UNSUPPORTED_OPTION.format("NOTIFY=NEVER"))


def test_split_command():
    assert grammar.split_command("  mail  FROM:<a>  X=1 ") == ("MAIL", "FROM:<a>  X=1")
    assert grammar.split_command("") == ("", "")


def test_pathological_address_is_refused_quickly():
    # Regular expressions must not backtrack exponentially on hostile input.
    hostile = b"FROM:<a@" + b"a-" * 500 + b"." + b"b_" * 400 + b"!>"
    assert mail(hostile) == BadCommand(R.R501_BAD_SENDER)


# No SMTPUTF8 yet (not advertised, so never declared): a non-ASCII address is
# refused as Postfix refuses it without SMTPUTF8 (strict_smtputf8): a non-ASCII
# domain is bad syntax (smtpd_check_addr), a non-ASCII local part 553 5.6.7.
@pytest.mark.parametrize("address, syntax_error", [
    ("j\u00f6rg@example.org", None),
    ("j\u00f6rg", None),
    ("joerg@b\u00fccher.example", "domain"),
    ("j\u00f6rg@b\u00fccher.example", "domain"),
])
def test_non_ascii_addresses_are_refused_without_smtputf8(address, syntax_error):
    wire = address.encode()
    assert mail(b"FROM:<" + wire + b">") == BadCommand(
        R.R501_BAD_SENDER if syntax_error else R.R553_SMTPUTF8_REQUIRED)
    assert rcpt(b"TO:<" + wire + b">") == BadCommand(
        R.R501_BAD_RECIPIENT if syntax_error else R.R553_SMTPUTF8_REQUIRED)
    vrfy = Driver().feed(b"VRFY " + wire + b"\r\n").events[-1]
    assert vrfy == BadCommand(R.R501_BAD_RECIPIENT if syntax_error else R.R553_SMTPUTF8_REQUIRED)


# Characters that start a new line for some reader (a DSN's email package,
# str.splitlines(), NEL-aware terminals) are never part of an address.
@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u0085", "\u008d", "\u001b"])
@pytest.mark.parametrize("template", ["{}x@example.org", "x@exa{}mple.org", '"a{}b"@example.org'])
def test_line_separators_and_controls_are_never_part_of_an_address(char, template):
    wire = template.format(char).encode()
    assert mail(b"FROM:<" + wire + b">") == BadCommand(R.R501_BAD_SENDER)
    assert rcpt(b"TO:<" + wire + b">") == BadCommand(R.R501_BAD_RECIPIENT)


def test_smtputf8_is_not_advertised_and_its_parameter_is_refused():
    assert b"SMTPUTF8" not in Driver().session.ehlo_reply().to_bytes()
    assert mail(b"FROM:<a@example.org> SMTPUTF8") == BadCommand(
        R.R555_UNSUPPORTED_OPTION.format("SMTPUTF8"))
