"""permit_tls_clientcerts and permit_tls_all_clientcerts over the dialogue
(no sockets): the TLS state the session driver hands to tls_started() after a
handshake, the relay_clientcerts lookup, its failure."""
import logging

import pytest

from relayd.tls.state import TLSState
from tests.pipeline.dialogue import Dialogue, restrictions

CERT = "AB:" * 31 + "CD"
PKEY = "12:" * 31 + "34"
OFFSITE = "x@foreign.example"
DENIED = f"554 5.7.1 <{OFFSITE}>: Relay access denied"


def _state(trusted=False, certificate=True):
    if not certificate:
        return TLSState("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, asked=True)
    return TLSState("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, asked=True, fingerprint=CERT,
                    subject="c", issuer="ca", trusted=trusted, pubkey_fingerprint=PKEY)


def _dialogue(tmp_path, check, table="", extra=""):
    path = tmp_path / "relay_clientcerts"
    path.write_text(table)
    return Dialogue(restrictions(
        f"smtpd_tls_ask_ccert = yes\nrelay_clientcerts = texthash:{path}\n"
        f"smtpd_relay_restrictions = {check}, reject_unauth_destination\n" + extra))


def _after_tls(d, state):
    """The handshake as in wrapper mode (before any command), then MAIL and RCPT."""
    d.dialogue.tls_started(state, loglevel=0, starttls=False)
    return d.mail("a@sender.example", OFFSITE)


@pytest.mark.parametrize("table", [f"{CERT} cert\n", f"{PKEY} key\n", f"{CERT.lower()} folded\n"])
def test_a_listed_fingerprint_relays(tmp_path, table):
    d = _dialogue(tmp_path, "permit_tls_clientcerts", table)
    assert _after_tls(d, _state()) == ["250 2.1.5 Ok"]


def test_unlisted_no_certificate_or_no_tls_is_denied(tmp_path):
    table = f"{'EE:' * 31}FF other\n"
    assert _after_tls(_dialogue(tmp_path, "permit_tls_clientcerts", table), _state()) == [DENIED]
    assert _after_tls(_dialogue(tmp_path, "permit_tls_clientcerts", f"{CERT} x\n"),
                      _state(certificate=False)) == [DENIED]
    d = _dialogue(tmp_path, "permit_tls_clientcerts", f"{CERT} x\n")
    assert d.mail("a@sender.example", OFFSITE) == [DENIED]


@pytest.mark.parametrize("trusted, reply", [(True, "250 2.1.5 Ok"), (False, DENIED)])
def test_all_clientcerts_needs_a_trusted_certificate(tmp_path, trusted, reply):
    d = _dialogue(tmp_path, "permit_tls_all_clientcerts")
    assert _after_tls(d, _state(trusted=trusted)) == [reply]


def test_a_table_that_cannot_answer_defers(tmp_path, caplog):
    class Down:
        spec, fixed = "down:x", True

        def lookup(self, key):
            from relayd.tables.base import TemporaryLookupError
            raise TemporaryLookupError("database down")
    from relayd.checks.clientcerts import RelayClientCerts
    from relayd.tables.maps import Maps
    d = _dialogue(tmp_path, "permit_tls_clientcerts")
    # A mock: no built-in table type can be made to fail on demand here.
    RelayClientCerts.of(d.policy.restrictions.config).maps = Maps("relay_clientcerts", [Down()])
    with caplog.at_level(logging.WARNING):
        assert _after_tls(d, _state()) == [f"451 4.3.0 <{OFFSITE}>: Temporary lookup failure"]
    assert f"relay_clientcerts: lookup error for fingerprint '{PKEY}', pkey fingerprint " \
           f"{CERT}" in caplog.text
