"""Relay by client certificate over real handshakes: permit_tls_clientcerts with
relay_clientcerts (SHA-256 fingerprints, Postfix's table format) and
permit_tls_all_clientcerts (a certificate from smtpd_tls_CAfile's CA), with
$mynetworks empty so that nothing else lets the client relay."""
import smtplib

import pytest

from tests.integration.test_tls_server import MESSAGE, client_context, tls_main_cf

OFFSITE = "b@elsewhere.example"   # neither ours nor a relay domain


def _relayd(relayd_factory, certs, restrictions, extra=""):
    return relayd_factory(tls_main_cf(certs, (
        "mynetworks =\n"
        "smtpd_tls_ask_ccert = yes\n"
        f"smtpd_relay_restrictions = {restrictions}, reject_unauth_destination\n" + extra)))


def _send(port, certs, name):
    """MAIL and RCPT to an off-site address over STARTTLS, presenting ``name``'s
    certificate (None: none); the RCPT reply."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.starttls(context=client_context(certs, name))
        smtp.ehlo("client.example")
        assert smtp.mail("a@client.example")[0] == 250
        reply = smtp.rcpt(OFFSITE)
        if reply[0] == 250:
            assert smtp.data(MESSAGE)[0] == 250
        return reply


@pytest.fixture
def by_fingerprint(relayd_factory, tls_certs, tmp_path):
    table = tmp_path / "relay_clientcerts"
    table.write_text(f"{tls_certs.fingerprints['client']} client.example\n")
    return _relayd(relayd_factory, tls_certs, "permit_tls_clientcerts",
                   f"relay_clientcerts = texthash:{table}\n")


def test_listed_fingerprint_relays(by_fingerprint, tls_certs, sink):
    assert _send(by_fingerprint.port, tls_certs, "client")[0] == 250
    message = sink.wait_for(1)[0]
    assert message.recipients == [OFFSITE]


@pytest.mark.parametrize("name", ["stranger", None])
def test_unlisted_or_no_certificate_is_denied(by_fingerprint, tls_certs, name):
    assert _send(by_fingerprint.port, tls_certs, name) == (
        554, f"5.7.1 <{OFFSITE}>: Relay access denied".encode())


def test_fingerprint_without_tls_is_denied(by_fingerprint):
    with smtplib.SMTP("127.0.0.1", by_fingerprint.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.mail("a@client.example")
        assert smtp.rcpt(OFFSITE)[0] == 554


def test_untrusted_listed_certificate_relays(relayd_factory, tls_certs, tmp_path, sink):
    """The fingerprint is what counts: a self-signed certificate in the table relays."""
    table = tmp_path / "relay_clientcerts"
    table.write_text(f"{tls_certs.fingerprints['stranger']} stranger\n")
    proc = _relayd(relayd_factory, tls_certs, "permit_tls_clientcerts",
                   f"relay_clientcerts = texthash:{table}\n")
    assert _send(proc.port, tls_certs, "stranger")[0] == 250


@pytest.fixture
def all_trusted(relayd_factory, tls_certs):
    return _relayd(relayd_factory, tls_certs, "permit_tls_all_clientcerts",
                   f"smtpd_tls_CAfile = {tls_certs.cert('ca')}\n")


def test_all_clientcerts_relays_a_trusted_certificate(all_trusted, tls_certs, sink):
    assert _send(all_trusted.port, tls_certs, "client")[0] == 250
    assert sink.wait_for(1)[0].recipients == [OFFSITE]


@pytest.mark.parametrize("name", ["stranger", None])
def test_all_clientcerts_denies_untrusted_or_none(all_trusted, tls_certs, name):
    assert _send(all_trusted.port, tls_certs, name)[0] == 554


def test_not_asking_for_a_certificate_is_warned(relayd_factory, tls_certs, tmp_path):
    proc = relayd_factory(tls_main_cf(tls_certs, (
        "mynetworks =\nsmtpd_relay_restrictions = permit_tls_all_clientcerts, "
        "reject_unauth_destination\n")))
    assert _send(proc.port, tls_certs, "client")[0] == 554
    proc.wait_log('warning: permit_tls_all_clientcerts is requested, but '
                  '"smtpd_tls_ask_ccert = no"')
