"""relayd/tls/state.py: Postfix's names and sanitising, over the pure helpers."""
import pytest

from relayd.tls.state import TLSState, _kex_name, comment_sanitize


@pytest.mark.parametrize("group, name", [
    ("x25519", "X25519"), ("X25519MLKEM768", "X25519MLKEM768"), ("secp256r1", "ECDHE (prime256v1)"),
    ("secp384r1", "ECDHE (secp384r1)"), ("ffdhe2048", "DHE (2048 bits)")])
def test_key_exchange_names(group, name):
    assert _kex_name(group) == name


@pytest.mark.parametrize("text, safe", [
    ("plain CN", "plain CN"), ('a "quoted" name', 'a "quoted" name'),
    ("a) b (c", "a? b (c)"), ("back\\slash\x00\x7f é", "back?slash?? ?"), ("(x)", "(x)")])
def test_comment_sanitize_as_smtpd(text, safe):
    assert comment_sanitize(text) == safe


def test_received_comment_tls12_without_certificate_request():
    state = TLSState("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 128)
    assert state.received_comment() == (
        "\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))",
        "\t(No client certificate requested)")
