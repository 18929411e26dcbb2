"""The SMTP client's TLS (Postfix's tls_client.c): contexts, the handshake,
the server certificate's trust and name, and the sessions kept per next hop.

:class:`ClientTLS` is built once from main.cf. :meth:`ClientTLS.start`
wraps a connected socket, does the handshake within smtp_starttls_timeout
and returns the :class:`TLSConnection` with a :class:`PeerStatus`; a failed
handshake raises :class:`HandshakeFailed` after Postfix's "SSL_connect error
to ..." line. As Postfix, the handshake always completes when the
certificate does not verify: whether that matters is the caller's decision
(levels verify and secure), made from :attr:`PeerStatus.matched`.

Sessions are kept per server and policy, so the next connection to the same
next hop resumes (TLS 1.3 tickets) instead of paying a full handshake: the
trust found by the first, full handshake is kept with the session, since a
resumed handshake does not show the certificate chain to the verifier again.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

import gevent
from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from relayd import chroot
from relayd.config.errors import ConfigError
from relayd.metrics import METER, tls_labels
from relayd.tls.connection import TLSConnection, tls_error_reason
from relayd.tls.context import protocol_range

__all__ = ["ClientTLS", "HandshakeFailed", "PeerStatus", "certificate_names", "name_matches"]

log = logging.getLogger("relayd.smtp")

#: Sessions kept at most; the oldest goes first (Postfix: a session cache with a timeout).
SESSION_CACHE_LIMIT = 1000

# X509_V_ERR_* codes Postfix words in its own way (tls_verify.c, tls_log_verify_error).
_SELF_SIGNED, _SELF_SIGNED_IN_CHAIN, _NO_ISSUER = 18, 19, 20
_NOT_YET_VALID, _EXPIRED, _PURPOSE = 9, 10, 26


class HandshakeFailed(Exception):
    """The TLS handshake with ``relay`` (host[addr]:port) did not complete
    (Postfix: "Cannot start TLS: handshake failure")."""

    def __init__(self, relay: str) -> None:
        super().__init__(relay)
        self.relay = relay


class _HandshakeTimeout(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """What a finished client handshake established.

    ``trusted``: the server's chain verified against smtp_tls_CAfile/CApath;
    ``matched``: trusted and one of the required names matched (verify,
    secure); ``resumed``: an earlier session was resumed."""

    protocol: str
    cipher: str
    bits: int
    trusted: bool
    matched: bool
    resumed: bool = False

    @property
    def trust(self) -> str:
        """Postfix's word for the server: Verified (matched), Trusted, Untrusted."""
        if self.matched:
            return "Verified"
        return "Trusted" if self.trusted else "Untrusted"

    def log_line(self, namaddrport: str) -> str:
        """tls_client.c's "... TLS connection established to host[addr]:port: ..." line."""
        return (f"{self.trust} TLS connection established to {namaddrport}: {self.protocol} "
                f"with cipher {self.cipher} ({self.bits}/{self.bits} bits)")


class _Verification:
    """Collects the first chain verification error of one handshake."""

    __slots__ = ("called", "error", "depth", "cert")

    def __init__(self) -> None:
        self.called, self.error, self.depth, self.cert = False, 0, 0, None

    def __call__(self, conn, cert, errno, depth, ok) -> bool:
        self.called = True
        if not ok and not self.error:
            self.error, self.depth, self.cert = errno, depth, cert
        return True  # complete the handshake; the level decides what an error means


class ClientTLS:
    """The client's TLS settings from main.cf, its contexts and its session cache."""

    def __init__(self, config) -> None:
        self._config = config
        self.timeout = config["smtp_starttls_timeout"]
        self.loglevel = config["smtp_tls_loglevel"]
        self._cafile = config["smtp_tls_CAfile"] or None
        self._capath = config["smtp_tls_CApath"] or None
        self._contexts: dict[tuple, SSL.Context] = {}
        self._sessions: dict[tuple, tuple[SSL.Session, bool]] = {}
        self._ca_certs: list[crypto.X509] | None = None   # smtp_tls_CAfile read before a chroot
        chroot.before_entering(self._read_cafile)
        for parameter in ("smtp_tls_protocols", "smtp_tls_mandatory_protocols"):
            protocol_range(config[parameter], parameter)  # a bad list stops startup
        if self._cafile or self._capath:
            self.context(config["smtp_tls_mandatory_protocols"], "medium", ())  # so does a bad CA

    def context(self, protocols: str, grade: str, exclude: tuple[str, ...]) -> SSL.Context:
        """The context for a protocol list, cipher grade and exclusions (made once)."""
        key = (protocols, grade, exclude)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = self._new_context(protocols, grade, exclude)
        return ctx

    def _read_cafile(self) -> None:
        """Keep smtp_tls_CAfile's certificates in memory: a chroot hides the file.
        smtp_tls_CApath is read by OpenSSL at each verification and cannot be."""
        if self._capath:
            log.warning("smtp_tls_CApath = %s is outside the chroot: use smtp_tls_CAfile",
                        self._capath)
        if self._cafile:
            with open(self._cafile, "rb") as f:
                self._ca_certs = [crypto.X509.from_cryptography(cert)
                                  for cert in x509.load_pem_x509_certificates(f.read())]

    def _new_context(self, protocols: str, grade: str, exclude: tuple[str, ...]) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        low, high = protocol_range(protocols, "smtp_tls_protocols")
        ctx.set_min_proto_version(low)
        ctx.set_max_proto_version(high)
        ciphers = self._config["tls_high_cipherlist" if grade == "high" else "tls_medium_cipherlist"]
        ciphers += "".join(f":!{name}" for name in exclude)
        try:
            ctx.set_cipher_list(ciphers.encode("ascii"))
        except SSL.Error:
            raise ConfigError(f"no usable cipher in {ciphers!r}", parameter="smtp_tls_ciphers") from None
        ctx.set_options(SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_CLIENT)
        if self._ca_certs is not None:
            store = ctx.get_cert_store()
            for cert in self._ca_certs:
                store.add_cert(cert)
        elif self._cafile or self._capath:
            try:
                ctx.load_verify_locations(self._cafile, self._capath)
            except SSL.Error as exc:
                raise ConfigError(f"cannot load CA certificates from {self._cafile or self._capath}: "
                                  f"{tls_error_reason(exc)}",
                                  parameter="smtp_tls_CAfile" if self._cafile else "smtp_tls_CApath"
                                  ) from None
        return ctx

    def start(self, sock, ctx: SSL.Context, *, namaddrport: str, server_name: str | None,
              match: tuple[str, ...] | None, session_key: tuple) -> tuple[TLSConnection, PeerStatus]:
        """The handshake on ``sock`` (after the server's 220 to STARTTLS).

        ``match``: the names the certificate must carry (verify, secure), None
        when it need not; ``session_key`` says which cached session may be
        resumed. HandshakeFailed when no TLS session came up."""
        tls = TLSConnection(sock, ctx)
        verification = _Verification()
        tls.conn.set_verify(SSL.VERIFY_PEER, verification)
        cached = self._sessions.get(session_key)
        if cached is not None:
            tls.conn.set_session(cached[0])
        if self.loglevel >= 2 and server_name:
            log.info("%s: SNI hostname: %s", namaddrport, server_name)
        try:
            with gevent.Timeout(self.timeout, _HandshakeTimeout):
                tls.connect(server_name)
        except (SSL.Error, OSError, _HandshakeTimeout) as exc:
            _log_failure(namaddrport, exc)
            self._sessions.pop(session_key, None)
            raise HandshakeFailed(namaddrport) from None
        resumed = not verification.called and cached is not None
        trusted = cached[1] if resumed else verification.error == 0
        matched = False
        if match is not None:
            matched = trusted and _matches(tls.peer_certificate(), match)
            if not resumed:
                _log_verify_error(namaddrport, verification, trusted, matched)
        status = PeerStatus(tls.protocol, tls.cipher, tls.cipher_bits[0], trusted, matched, resumed)
        if self.loglevel >= 2 and resumed:
            log.info("%s: Reusing old session", namaddrport)
        if self.loglevel >= 1:
            log.info("%s", status.log_line(namaddrport))
        METER.inc("smtp_tls_connections", *tls_labels(status))
        return tls, status

    def remember(self, tls: TLSConnection, status: PeerStatus, session_key: tuple) -> None:
        """Keep ``tls``'s session for the next connection with the same key
        (call once data has been read: TLS 1.3 tickets come after the handshake)."""
        session = tls.conn.get_session()
        if session is None:
            return
        self._sessions.pop(session_key, None)
        if len(self._sessions) >= SESSION_CACHE_LIMIT:
            del self._sessions[next(iter(self._sessions))]
        self._sessions[session_key] = (session, status.trusted)


def _log_failure(namaddrport: str, exc: Exception) -> None:
    """tls_client.c's lines for a handshake that failed."""
    if isinstance(exc, SSL.Error):
        log.info("SSL_connect error to %s: -1", namaddrport)
        log.warning("TLS library problem: %s", tls_error_reason(exc))
    elif isinstance(exc, _HandshakeTimeout):
        log.info("SSL_connect error to %s: Connection timed out", namaddrport)
    else:
        log.info("SSL_connect error to %s: lost connection", namaddrport)


def _log_verify_error(namaddrport: str, verification: _Verification, trusted: bool,
                      matched: bool) -> None:
    """tls_verify.c's line for a certificate that does not satisfy verify or secure."""
    if matched:
        return
    if trusted:
        log.info("server certificate verification failed for %s: num=62:hostname mismatch",
                 namaddrport)
        return
    error, cert = verification.error, verification.cert
    purpose = "CA" if verification.depth > 0 else "server"
    if error == _SELF_SIGNED:
        why = "self-signed certificate"
    elif error in (_NO_ISSUER, _SELF_SIGNED_IN_CHAIN):
        why = f"untrusted issuer {_oneline(cert.to_cryptography().issuer) if cert else '<unknown>'}"
    elif error == _PURPOSE:
        why = f"not designated for use as a {purpose} certificate"
    else:
        words = {_EXPIRED: "certificate has expired", _NOT_YET_VALID: "certificate not yet valid"}
        log.info("%s certificate verification failed for %s: %s", purpose, namaddrport,
                 words.get(error, f"num={error}"))
        return
    log.info("certificate verification failed for %s: %s", namaddrport, why)


def _oneline(name: x509.Name) -> str:
    """OpenSSL's X509_NAME_oneline() form: /C=../O=../CN=..; made printable."""
    text = "".join(f"/{attr.rfc4514_attribute_name}={attr.value}" for attr in name)
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names a server certificate is for: its subjectAltName DNS
    entries, or its CN when it has none (RFC 6125 section 6.4.4)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(names[0].value).lower().rstrip(".")] if names else []


def name_matches(cert_name: str, wanted: str) -> bool:
    """One certificate name against one wanted name, as OpenSSL's
    X509_check_host() with no partial wildcards: ``*.example.com`` stands for
    one whole label; a wanted ``.example.com`` is any name under example.com."""
    wanted = wanted.lower().rstrip(".")
    if not wanted or _is_address(wanted):
        return False
    if wanted.startswith("."):
        wildcard = cert_name.startswith("*.")
        base = cert_name[2:] if wildcard else cert_name
        return base.endswith(wanted) or (wildcard and base == wanted[1:])
    if cert_name.startswith("*."):
        first, _, rest = wanted.partition(".")
        return bool(first) and rest == cert_name[2:] and "." in rest
    return cert_name == wanted


def _matches(cert, wanted: tuple[str, ...]) -> bool:
    names = certificate_names(cert) if cert is not None else []
    return any(name_matches(name, want) for name in names for want in wanted)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
