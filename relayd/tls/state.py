"""What a finished server handshake established, in the words of Postfix's
log line (tls_server.c) and Received comment (smtpd.c). No I/O: built from a
:class:`~relayd.tls.connection.TLSConnection` once, read by the dialogue."""
from __future__ import annotations

from dataclasses import dataclass

from cryptography.x509.oid import NameOID

from relayd.tls.context import fingerprint, pubkey_fingerprint


@dataclass(frozen=True, slots=True)
class TLSState:
    """The protocol, cipher and client certificate of one TLS session.

    ``fingerprint`` is the client certificate's SHA-256 fingerprint (None
    without one), ``pubkey_fingerprint`` its public key's; ``trusted``
    whether it verified against smtpd_tls_CAfile."""

    protocol: str
    cipher: str
    bits: int
    asked: bool = False
    fingerprint: str | None = None
    subject: str = ""
    issuer: str = ""
    trusted: bool = False
    pubkey_fingerprint: str = ""

    @classmethod
    def of(cls, conn, tls) -> "TLSState":
        """The state of ``conn`` after its handshake with ``tls`` (the service's
        :class:`~relayd.tls.context.ServerTLS`)."""
        bits = conn.cipher_bits[0]
        asked = tls.ask_ccert
        cert = conn.peer_certificate() if asked else None
        if cert is None:
            return cls(conn.protocol, conn.cipher, bits, asked)
        return cls(conn.protocol, conn.cipher, bits, asked, fingerprint(cert),
                   _common_name(cert.subject), _common_name(cert.issuer),
                   tls.client_trusted(conn, cert), pubkey_fingerprint(cert))

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
        """tls_server.c's "... TLS connection established from host[addr]: ..." line."""
        return (f"{self.trust} TLS connection established from {peer}: {self.protocol} "
                f"with cipher {self.cipher} ({self.bits}/{self.bits} bits)")

    def received_comment(self) -> tuple[str, ...]:
        """The Received lines of smtpd_tls_received_header (smtpd.c)."""
        using = f"\t(using {self.protocol} with cipher {self.cipher} ({self.bits}/{self.bits} bits))"
        if not self.asked:
            client = "\t(No client certificate requested)"
        elif self.fingerprint is None:
            client = "\t(Client did not present a certificate)"
        else:
            verified = "" if self.trusted else " (not verified)"
            client = (f'\t(Client CN "{_safe(self.subject)}", '
                      f'Issuer "{_safe(self.issuer)}"{verified})')
        return using, client


def _common_name(name) -> str:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else ""


def _safe(text: str) -> str:
    """A certificate name fit for a header comment (no quote, bracket, control or 8-bit)."""
    return "".join(c if " " <= c <= "~" and c not in '"()\\' else "?" for c in text[:64])
