"""What a finished server handshake established, in the words of Postfix's
log line (tls_misc.c's tls_log_summary) and Received comment (smtpd.c). No
I/O: built from a :class:`~relayd.tls.connection.TLSConnection` once, read by
the dialogue.

As Postfix 3.7 does, only TLS 1.3 sessions get the key exchange and
signature details ("key-exchange X25519 server-signature ECDSA (prime256v1)
server-digest SHA256"), and a resumed session no signatures. pyOpenSSL does
not tell the digest an RSA-PSS signature used: for RSA keys the
"server-digest"/"client-digest" part is left out (ECDSA's digest follows
from its curve in TLS 1.3, RFC 8446 4.2.3; EdDSA has none).
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from relayd.smtp.text import printable
from relayd.tls.context import fingerprint, pubkey_fingerprint

# OpenSSL's group names (SSL_get0_group_name) as Postfix names the key exchange.
_EC_GROUPS = {"secp256r1": "prime256v1", "prime256v1": "prime256v1",
              "secp384r1": "secp384r1", "secp521r1": "secp521r1"}
_ECDSA_DIGESTS = {"secp256r1": "SHA256", "secp384r1": "SHA384", "secp521r1": "SHA512"}


@dataclass(frozen=True, slots=True)
class TLSState:
    """The protocol, cipher and client certificate of one TLS session.

    ``fingerprint`` is the client certificate's SHA-256 fingerprint (None
    without one), ``pubkey_fingerprint`` its public key's; ``trusted``
    whether it verified against smtpd_tls_CAfile. ``kex``,
    ``server_signature`` and ``client_signature`` are the TLS 1.3 details
    ("" when unknown or not applicable); ``sni`` the server name the client
    asked for when tls_server_sni_maps had a certificate for it."""

    protocol: str
    cipher: str
    bits: int
    asked: bool = False
    fingerprint: str | None = None
    subject: str = ""
    issuer: str = ""
    trusted: bool = False
    pubkey_fingerprint: str = ""
    kex: str = ""
    server_signature: str = ""
    client_signature: str = ""
    sni: str = ""

    @classmethod
    def of(cls, conn, tls) -> "TLSState":
        """The state of ``conn`` after its handshake with ``tls`` (the service's
        :class:`~relayd.tls.context.ServerTLS`)."""
        asked = tls.ask_ccert
        cert = conn.peer_certificate() if asked else None
        details = _tls13_details(conn, cert)
        common = dict(protocol=conn.protocol, cipher=conn.cipher, bits=conn.cipher_bits[0],
                      asked=asked, sni=tls.sni_name(conn) or "", **details)
        if cert is None:
            return cls(**common)
        return cls(**common, fingerprint=fingerprint(cert), subject=_common_name(cert.subject),
                   issuer=_issuer_name(cert.issuer), trusted=tls.client_trusted(conn, cert),
                   pubkey_fingerprint=pubkey_fingerprint(cert))

    def session_facts(self) -> dict:
        """The :class:`~relayd.pipeline.context.SessionView` fields this session sets."""
        return dict(tls_active=True, ccert_subject=self.subject, ccert_issuer=self.issuer,
                    ccert_fingerprint=self.fingerprint or "",
                    ccert_pubkey_fingerprint=self.pubkey_fingerprint,
                    ccert_trusted=self.trusted)

    @property
    def trust(self) -> str:
        """Postfix's word for the peer: Anonymous (no certificate), Untrusted, Trusted."""
        if self.fingerprint is None:
            return "Anonymous"
        return "Trusted" if self.trusted else "Untrusted"

    def log_line(self, peer: str) -> str:
        """tls_log_summary's "... TLS connection established from host[addr]: ..." line."""
        to = f" to {self.sni}" if self.sni else ""
        parts = [f"{self.trust} TLS connection established from {peer}{to}: {self.protocol} "
                 f"with cipher {self.cipher} ({self.bits}/{self.bits} bits)",
                 self.kex, self.server_signature, self.client_signature]
        return " ".join(part for part in parts if part)

    def certificate_line(self, peer: str) -> str:
        """tls_server.c's line about the client certificate (smtpd_tls_loglevel 2):
        where an admin finds the fingerprints relay_clientcerts lists."""
        return (f"{peer}: subject_CN={printable(self.subject)}, issuer={printable(self.issuer)}, "
                f"cert fingerprint={self.fingerprint}, pkey fingerprint={self.pubkey_fingerprint}")

    def received_comment(self) -> tuple[str, ...]:
        """The Received lines of smtpd_tls_received_header, broken as smtpd.c breaks them."""
        lines = [f"\t(using {self.protocol} with cipher {self.cipher} ({self.bits}/{self.bits} bits)"]
        if self.kex or self.server_signature:
            lines.append("\t " + " ".join(p for p in (self.kex, self.server_signature) if p))
        if self.client_signature:
            lines.append("\t " + self.client_signature)
        lines[-1] += ")"
        if self.fingerprint is not None:
            verified = "verified OK" if self.trusted else "not verified"
            lines.append(f'\t(Client CN "{comment_sanitize(self.subject)}", '
                         f'Issuer "{comment_sanitize(self.issuer)}" ({verified}))')
        elif self.asked:
            lines.append("\t(Client did not present a certificate)")
        else:
            lines.append("\t(No client certificate requested)")
        return tuple(lines)


def _tls13_details(conn, peer_cert) -> dict:
    """tls_get_signature_params(): key exchange and signatures, TLS 1.3 only."""
    if conn.protocol != "TLSv1.3":
        return {}
    group = conn.conn.get_group_name()
    details = {"kex": "key-exchange " + _kex_name(group)} if group else {}
    if conn.session_reused:   # resumption makes no use of signature keys
        return details
    own = conn.conn.get_certificate(as_cryptography=True)
    if own is not None:
        details["server_signature"] = _signature("server", own.public_key())
    if peer_cert is not None:
        details["client_signature"] = _signature("client", peer_cert.public_key())
    return details


def _kex_name(group: str) -> str:
    """Postfix's name of the key exchange: X25519, ECDHE (prime256v1), DHE (2048 bits)..."""
    if group in _EC_GROUPS:
        return f"ECDHE ({_EC_GROUPS[group]})"
    if group.startswith("ffdhe"):
        return f"DHE ({group[5:]} bits)"
    return group.upper() if group in ("x25519", "x448") else group


def _signature(role: str, key) -> str:
    """"server-signature ECDSA (prime256v1) server-digest SHA256" and the like."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = key.curve.name
        text = f"{role}-signature ECDSA ({_EC_GROUPS.get(curve, curve)})"
        digest = _ECDSA_DIGESTS.get(curve)
        return text + (f" {role}-digest {digest}" if digest else "")
    if isinstance(key, rsa.RSAPublicKey):
        return f"{role}-signature RSA-PSS ({key.key_size} bits)"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return f"{role}-signature ED25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return f"{role}-signature ED448"
    return ""


def _common_name(name) -> str:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else ""


def _issuer_name(name) -> str:
    """tls_issuer_CN(): the issuer's CN, else its organisation."""
    cn = _common_name(name)
    if cn:
        return cn
    attributes = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attributes[0].value) if attributes else ""


def comment_sanitize(text: str) -> str:
    """smtpd.c's comment_sanitize(): printable ASCII only, no backslash, parentheses
    balanced (an unmatched ")" becomes "?", an unclosed "(" is closed)."""
    out = []
    depth = 0
    for c in text:
        if not " " <= c <= "~" or c == "\\":
            c = "?"
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth:
                depth -= 1
            else:
                c = "?"
        out.append(c)
    return "".join(out) + ")" * depth
