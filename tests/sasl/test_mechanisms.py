"""PLAIN and LOGIN as sans-I/O exchanges (RFC 4616, RFC 4954)."""
from base64 import b64encode

import pytest

from relayd.sasl import mechanisms
from relayd.sasl.mechanisms import Challenge, Credentials, Refusal
from relayd.smtp.replies import R501_SASL_BAD_BASE64, R501_SASL_MALFORMED, R535_SASL_AUTHZID


def b64(data: bytes) -> str:
    return b64encode(data).decode()


def test_plain_initial_response():
    got = mechanisms.start("PLAIN").start(b64(b"\0alice\0pw"))
    assert got == Credentials("alice", b"pw")


def test_plain_authzid_equal_to_user_is_fine():
    assert mechanisms.start("PLAIN").start(b64(b"alice\0alice\0pw")) == Credentials("alice", b"pw")


def test_plain_other_authzid_is_refused():
    got = mechanisms.start("PLAIN").start(b64(b"root\0alice\0pw"))
    assert got == Refusal(R535_SASL_AUTHZID, "alice")


def test_plain_without_initial_response_asks_with_an_empty_challenge():
    plain = mechanisms.start("PLAIN")
    challenge = plain.start(None)
    assert challenge == Challenge(b"") and challenge.line() == ""
    assert plain.respond(b64(b"\0bob\0x")) == Credentials("bob", b"x")


@pytest.mark.parametrize("message", [b"alice", b"\0alice", b"\0\0pw", b"\0alice\0", b"a\0b\0c\0d",
                                     b"\0al\xffice\0pw"])
def test_malformed_plain_is_501(message):
    assert mechanisms.start("PLAIN").start(b64(message)) == Refusal(
        R501_SASL_MALFORMED.format("PLAIN"))


@pytest.mark.parametrize("text", ["not base64!", "YWJ", "é"])
def test_bad_base64_is_501(text):
    assert mechanisms.start("PLAIN").start(text) == Refusal(R501_SASL_BAD_BASE64.format("initial"))
    plain = mechanisms.start("PLAIN")
    plain.start(None)
    assert plain.respond(text) == Refusal(R501_SASL_BAD_BASE64.format("continued"))


def test_login_asks_user_then_password():
    login = mechanisms.start("LOGIN")
    first = login.start(None)
    assert first.line() == "VXNlcm5hbWU6"   # "Username:"
    assert login.respond(b64(b"carol")).line() == "UGFzc3dvcmQ6"   # "Password:"
    assert login.respond(b64(b"pw")) == Credentials("carol", b"pw")


def test_login_with_initial_user_name():
    login = mechanisms.start("LOGIN")
    assert login.start(b64(b"carol")) == Challenge(b"Password:")


def test_unknown_mechanism():
    assert mechanisms.start("CRAM-MD5") is None


def test_credentials_never_show_the_password():
    assert "pw" not in repr(Credentials("u", b"pw")).replace("u'", "")
