"""Certificates the TLS tests generate: a CA, server certificates and client certificates.

``make_certs(directory)`` writes PEM files and returns a :class:`Certs` with
their paths and the SHA-256 fingerprints in Postfix's form (AB:CD:...). The
session-scoped fixture ``tls_certs`` (tests/conftest.py) makes them once per
run; the server, AUTH and delivery tests all use it.

Files (each ``NAME.pem`` holds the certificate, ``NAME.key`` the key and
``NAME.chain.pem`` key + certificate + CA, smtpd_tls_chain_files style):
``ca`` (the CA), ``server`` (CN relayd.test, SAN relayd.test, localhost,
127.0.0.1), ``other`` (CN other.example, for SNI), ``client`` (signed by the
CA), ``stranger`` (a self-signed client certificate).
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Certs:
    """Paths of the generated files, by name."""

    directory: Path
    fingerprints: dict[str, str] = field(default_factory=dict)

    def cert(self, name: str) -> str:
        return str(self.directory / f"{name}.pem")

    def key(self, name: str) -> str:
        return str(self.directory / f"{name}.key")

    def chain(self, name: str) -> str:
        return str(self.directory / f"{name}.chain.pem")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(cn: str, key, issuer_name, issuer_key, *, ca=False, sans=(), usage=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        names = [x509.IPAddress(ipaddress.ip_address(s)) if s[0].isdigit() else x509.DNSName(s)
                 for s in sans]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certs(directory: Path) -> Certs:
    """Generate the CA and the certificates under ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    certs = Certs(directory)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("relayd test CA", ca_key, _name("relayd test CA"), ca_key, ca=True)
    made = {"ca": (ca_key, ca)}
    server = ExtendedKeyUsageOID.SERVER_AUTH
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    for name, cn, sans, usage in (("server", "relayd.test", ("relayd.test", "localhost",
                                                             "127.0.0.1"), server),
                                  ("other", "other.example", ("other.example",), server),
                                  ("client", "client.example", (), client)):
        key = ec.generate_private_key(ec.SECP256R1())
        made[name] = (key, _issue(cn, key, ca.subject, ca_key, sans=sans, usage=usage))
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    made["stranger"] = (stranger_key, _issue("stranger.example", stranger_key,
                                             _name("stranger.example"), stranger_key,
                                             usage=client))
    for name, (key, cert) in made.items():
        (directory / f"{name}.pem").write_bytes(_pem(cert))
        (directory / f"{name}.key").write_bytes(_pem(key))
        (directory / f"{name}.chain.pem").write_bytes(_pem(key) + _pem(cert) + _pem(ca))
        der = cert.public_bytes(serialization.Encoding.DER)
        certs.fingerprints[name] = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    return certs
