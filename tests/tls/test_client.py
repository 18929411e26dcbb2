"""The client's certificate name matching and its TLS contexts, without a peer."""
import pytest
from cryptography import x509

from relayd.config import ConfigError, load_config
from relayd.tls.client import ClientTLS, certificate_names, name_matches


@pytest.mark.parametrize("cert_name, wanted, matches", [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.Example.COM.", True),
    ("mail.example.com", "example.com", False),
    ("*.example.com", "mail.example.com", True),
    ("*.example.com", "a.b.example.com", False),     # a wildcard is one label
    ("*.example.com", "example.com", False),
    ("mail.example.com", ".example.com", True),      # .domain: any name below it
    ("example.com", ".example.com", False),
    ("*.example.com", ".example.com", True),
    ("mail.example.net", ".example.com", False),
    ("127.0.0.1", "127.0.0.1", False),               # names only, never an address
])
def test_name_matches(cert_name, wanted, matches):
    assert name_matches(cert_name, wanted) is matches


def test_certificate_names_prefer_the_subject_alt_names(tls_certs):
    with open(tls_certs.cert("server"), "rb") as f:
        server = x509.load_pem_x509_certificate(f.read())
    assert certificate_names(server) == ["relayd.test", "localhost"]   # not the IP SAN
    with open(tls_certs.cert("stranger"), "rb") as f:
        stranger = x509.load_pem_x509_certificate(f.read())   # no SAN: the CN
    assert certificate_names(stranger) == ["stranger.example"]


def test_contexts_are_made_once_per_protocols_and_ciphers(tls_certs):
    tls = ClientTLS(load_config(smtp_tls_CAfile=tls_certs.cert("ca")))
    first = tls.context(">=TLSv1.2", "medium", ())
    assert tls.context(">=TLSv1.2", "medium", ()) is first
    assert tls.context(">=TLSv1.3", "medium", ()) is not first


def test_bad_protocol_list_names_the_parameter():
    with pytest.raises(ConfigError, match="TLSv9"):
        ClientTLS(load_config()).context(">=TLSv9", "medium", ())
