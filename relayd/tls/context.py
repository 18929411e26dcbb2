"""The SMTP server's TLS contexts, built once from Postfix's smtpd_tls_* parameters.

:func:`server_tls` reads main.cf (with a service's ``-o`` overrides) and
returns a :class:`ServerTLS`, or None when the service offers no TLS. A
certificate or key that cannot be used stops startup with a
:class:`~relayd.config.errors.ConfigError` naming the file and the
parameter, as Postfix's smtpd refuses to start.
"""
from __future__ import annotations

import logging
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import SSL, crypto

from relayd.config.errors import ConfigError
from relayd.tls.connection import tls_error_reason

log = logging.getLogger("relayd.smtpd")

# Postfix's protocol names, oldest first, and OpenSSL's version numbers.
_PROTOCOLS = {"SSLv3": SSL.SSL3_VERSION, "TLSv1": SSL.TLS1_VERSION,
              "TLSv1.1": SSL.TLS1_1_VERSION, "TLSv1.2": SSL.TLS1_2_VERSION,
              "TLSv1.3": SSL.TLS1_3_VERSION}
_ORDER = list(_PROTOCOLS)
_SESSION_ID_CONTEXT = b"relayd-smtpd"  # resumption with a client certificate request needs one
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\r?\n?", re.S)


def protocol_range(text: str, parameter: str) -> tuple[int, int]:
    """The (lowest, highest) OpenSSL version a Postfix protocol list allows.

    Postfix accepts ``>=TLSv1.2``, ``<=TLSv1.3`` and lists of names with or
    without ``!``: the names left form one range (OpenSSL has no holes)."""
    allowed = set(_ORDER[1:])  # SSLv2/SSLv3 are never offered
    included: set[str] = set()
    for item in re.split(r"[\s,:]+", text.strip()):
        if not item:
            continue
        name = item.lstrip("!<>=")
        if name not in _PROTOCOLS and name != "SSLv2":
            raise ConfigError(f"unknown TLS protocol {name!r}", parameter=parameter)
        if name == "SSLv2":
            continue
        index = _ORDER.index(name)
        if item.startswith(">="):
            allowed &= set(_ORDER[index:])
        elif item.startswith("<="):
            allowed &= set(_ORDER[:index + 1])
        elif item.startswith("!"):
            allowed.discard(name)
        else:
            included.add(name)
    if included:
        allowed &= included
    if not allowed:
        raise ConfigError(f"no TLS protocol left in {text!r}", parameter=parameter)
    versions = sorted(_ORDER.index(name) for name in allowed)
    return _PROTOCOLS[_ORDER[versions[0]]], _PROTOCOLS[_ORDER[versions[-1]]]


def fingerprint(cert: x509.Certificate) -> str:
    """Postfix's certificate fingerprint (smtpd_tls_fingerprint_digest = sha256):
    the digest of the DER form, upper-case hex pairs joined by colons."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def pubkey_fingerprint(cert: x509.Certificate) -> str:
    """Postfix's public key fingerprint (tls_pkey_fprint): the digest of the
    DER SubjectPublicKeyInfo, in the same form as :func:`fingerprint`."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return ":".join(f"{b:02X}" for b in digest.finalize())


def _read(path: str, parameter: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", parameter=parameter) from None


def _load_chain(ctx: SSL.Context, files: list[str], parameter: str) -> None:
    """Key, certificate and chain from PEM ``files`` (key first, then the
    certificate, then its issuers), as smtpd_tls_chain_files has them."""
    blocks = [m.group(0) for path in files for m in _PEM_BLOCK.finditer(_read(path, parameter))]
    where = ", ".join(files)
    keys = [b for b in blocks if b"PRIVATE KEY-----" in b.split(b"\n", 1)[0]]
    certs = [b for b in blocks if b.startswith(b"-----BEGIN CERTIFICATE-----")]
    if not keys or not certs:
        raise ConfigError(f"{where}: no private key and certificate found", parameter=parameter)
    try:
        ctx.use_privatekey(serialization.load_pem_private_key(keys[0], None))
        ctx.use_certificate(x509.load_pem_x509_certificate(certs[0]))
        for extra in certs[1:]:
            ctx.add_extra_chain_cert(x509.load_pem_x509_certificate(extra))
        ctx.check_privatekey()
    except (ValueError, TypeError, SSL.Error) as exc:
        raise ConfigError(f"{where}: unusable key or certificate: {tls_error_reason(exc)}",
                          parameter=parameter) from None


def _load_cert_key(ctx: SSL.Context, cert_file: str, key_file: str) -> None:
    """smtpd_tls_cert_file (certificate then chain) and smtpd_tls_key_file."""
    _read(cert_file, "smtpd_tls_cert_file")
    _read(key_file, "smtpd_tls_key_file")
    try:
        ctx.use_certificate_chain_file(cert_file)
    except SSL.Error as exc:
        raise ConfigError(f"cannot load certificate from {cert_file}: {tls_error_reason(exc)}",
                          parameter="smtpd_tls_cert_file") from None
    try:
        ctx.use_privatekey_file(key_file)
        ctx.check_privatekey()
    except SSL.Error as exc:
        raise ConfigError(f"cannot load private key from {key_file}: {tls_error_reason(exc)}",
                          parameter="smtpd_tls_key_file") from None


class ServerTLS:
    """One smtpd service's TLS: the context(s) and what sessions need to know.

    ``level`` is "may" or "encrypt"; ``wrapper`` is smtpd_tls_wrappermode;
    ``timeout`` is smtpd_starttls_timeout; ``loglevel`` smtpd_tls_loglevel;
    ``received_header`` smtpd_tls_received_header."""

    def __init__(self, config, level: str):
        self.level = level
        self.wrapper = config["smtpd_tls_wrappermode"]
        self.timeout = config["smtpd_starttls_timeout"]
        self.loglevel = config["smtpd_tls_loglevel"]
        self.received_header = config["smtpd_tls_received_header"]
        self.ask_ccert = config["smtpd_tls_ask_ccert"]
        self._config = config
        self._client_cas = _client_ca_store(config) if self.ask_ccert else None
        self.context = self._context(self._certificate_loader(config))
        self._sni = _sni_maps(config)
        self._sni_contexts: dict[str, SSL.Context] = {}
        if self._sni is not None:
            self.context.set_tlsext_servername_callback(self._on_server_name)

    def _certificate_loader(self, config):
        chain_files = config["smtpd_tls_chain_files"]
        if chain_files:
            return lambda ctx: _load_chain(ctx, chain_files, "smtpd_tls_chain_files")
        cert_file = config["smtpd_tls_cert_file"]
        if not cert_file:
            raise ConfigError("TLS is enabled but no certificate is configured",
                              parameter="smtpd_tls_cert_file")
        return lambda ctx: _load_cert_key(ctx, cert_file, config["smtpd_tls_key_file"])

    def _context(self, load_certificate) -> SSL.Context:
        config = self._config
        excluded = list(config["smtpd_tls_exclude_ciphers"])
        if self.level == "encrypt" or self.wrapper:  # Postfix's "mandatory" TLS
            protocols = ("smtpd_tls_mandatory_protocols", config["smtpd_tls_mandatory_protocols"])
            grade = ("smtpd_tls_mandatory_ciphers", config["smtpd_tls_mandatory_ciphers"])
            excluded += config["smtpd_tls_mandatory_exclude_ciphers"]
        else:
            protocols = ("smtpd_tls_protocols", config["smtpd_tls_protocols"])
            grade = ("smtpd_tls_ciphers", config["smtpd_tls_ciphers"])
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        low, high = protocol_range(protocols[1], protocols[0])
        ctx.set_min_proto_version(low)
        ctx.set_max_proto_version(high)
        ciphers = (config["tls_high_cipherlist"] if grade[1] == "high"
                   else config["tls_medium_cipherlist"])
        ciphers += "".join(f":!{name}" for name in excluded)
        try:
            ctx.set_cipher_list(ciphers.encode("ascii"))
        except SSL.Error:
            raise ConfigError(f"no usable cipher in {ciphers!r}", parameter=grade[0]) from None
        # The server's cipher order, no renegotiation, no compression (CRIME).
        ctx.set_options(SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_RENEGOTIATION
                        | SSL.OP_NO_COMPRESSION)
        ctx.set_session_id(_SESSION_ID_CONTEXT)
        lifetime = config["smtpd_tls_session_cache_timeout"]
        if lifetime > 0:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
            ctx.set_timeout(lifetime)
        else:
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            ctx.set_options(SSL.OP_NO_TICKET)
        if self.ask_ccert:
            if config["smtpd_tls_CAfile"]:   # the CA names sent in the certificate request
                ctx.load_client_ca(config["smtpd_tls_CAfile"].encode())
            # Ask, never require: any certificate is accepted, then judged by
            # client_trusted() and usable by its fingerprint either way.
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, _accept_any)
        load_certificate(ctx)
        return ctx

    def client_trusted(self, conn, cert: x509.Certificate) -> bool:
        """Whether the client certificate ``cert`` of the TLS connection ``conn``
        verifies against smtpd_tls_CAfile for client use (OpenSSL's sslclient
        purpose: an extended key usage, if any, must allow clientAuth).

        Verified here, not read from OpenSSL's verify result: pyOpenSSL sets
        that to OK whenever its verify callback accepts, and a resumed session
        runs no callback at all."""
        if self._client_cas is None or not _client_usage(cert):
            return False
        chain = conn.conn.get_peer_cert_chain() or []
        try:
            crypto.X509StoreContext(self._client_cas, crypto.X509.from_cryptography(cert),
                                    chain).verify_certificate()
        except crypto.X509StoreContextError:
            return False
        return True

    def _on_server_name(self, conn: SSL.Connection) -> None:
        """SNI: switch to the context of the name's certificate, if the table has one.

        The connection's app data is the client's host[addr], for the log."""
        sni = _server_name(conn)
        if not sni:
            return
        name = sni.lower().rstrip(".")
        ctx = self._sni_contexts.get(name)
        if ctx is None:
            ctx = self._sni_context(name)
            if ctx is not None:   # only names of the table: clients choose the others
                self._sni_contexts[name] = ctx
        if ctx is not None:
            conn.set_context(ctx)
        else:
            log.info("TLS SNI %s from %s not matched, using default chain",
                     sni, conn.get_app_data())

    def sni_name(self, conn) -> str | None:
        """The server name the client of ``conn`` (a finished handshake) asked for,
        when tls_server_sni_maps gave its certificate (Postfix's peer_sni)."""
        sni = _server_name(conn.conn) if self._sni is not None else ""
        if sni and self._sni_contexts.get(sni.lower().rstrip(".")) is not None:
            return sni
        return None

    def _sni_context(self, name: str) -> SSL.Context | None:
        keys = [name] + ["." + name.split(".", i)[-1] for i in range(1, name.count(".") + 1)]
        for key in keys:
            value = self._sni.find(key, partial=key != name) if name else None
            if value:
                files = value.replace(",", " ").split()
                return self._context(
                    lambda ctx: _load_chain(ctx, files, "tls_server_sni_maps"))
        return None


def _server_name(conn: SSL.Connection) -> str:
    return (conn.get_servername() or b"").decode("ascii", "replace")


def _client_ca_store(config) -> crypto.X509Store | None:
    """smtpd_tls_CAfile as a store to verify client certificates; None without one."""
    cafile = config["smtpd_tls_CAfile"]
    if not cafile:
        return None
    _read(cafile, "smtpd_tls_CAfile")
    store = crypto.X509Store()
    try:
        store.load_locations(cafile)
    except crypto.Error as exc:
        raise ConfigError(f"cannot load {cafile}: {tls_error_reason(exc)}",
                          parameter="smtpd_tls_CAfile") from None
    return store


def _client_usage(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usage


def _accept_any(conn, cert, errno, depth, ok) -> bool:
    """Verification callback: accept the client's chain whatever its verify result."""
    return True


def _sni_maps(config):
    if not config["tls_server_sni_maps"]:
        return None
    from relayd.rewrite.tables import open_tables
    from relayd.tables.maps import Maps
    return Maps("tls_server_sni_maps", open_tables(config, "tls_server_sni_maps"))


# What ServerTLS reads: services with the same values share one ServerTLS.
_PARAMETERS = (
    "smtpd_tls_security_level", "smtpd_tls_wrappermode", "smtpd_starttls_timeout",
    "smtpd_tls_loglevel", "smtpd_tls_received_header", "smtpd_tls_ask_ccert",
    "smtpd_tls_chain_files", "smtpd_tls_cert_file", "smtpd_tls_key_file", "smtpd_tls_CAfile",
    "smtpd_tls_protocols", "smtpd_tls_mandatory_protocols", "smtpd_tls_ciphers",
    "smtpd_tls_mandatory_ciphers", "smtpd_tls_exclude_ciphers",
    "smtpd_tls_mandatory_exclude_ciphers", "tls_high_cipherlist", "tls_medium_cipherlist",
    "tls_server_sni_maps", "smtpd_tls_session_cache_timeout")
_BUILT: dict[str, ServerTLS] = {}


def server_tls(config) -> ServerTLS | None:
    """The service's TLS, or None when it offers none (smtpd_tls_security_level
    empty or none and no wrapper mode).

    Built once per set of parameter values. The master builds every service's
    before it forks the workers (:func:`prepare_server_tls`), so the workers
    share its OpenSSL contexts and with them the session ticket keys: a client
    resumes its session on whichever worker accepts it (Postfix's tlsmgr
    shares them the same way). A changed certificate needs a restart."""
    key = repr([config[name] for name in _PARAMETERS])
    if key not in _BUILT:
        _BUILT[key] = _server_tls(config)
    return _BUILT[key]


def prepare_server_tls(configs) -> None:
    """Build the TLS of each service configuration in ``configs`` now (in the
    master, before the fork); a ConfigError stops startup there."""
    for config in configs:
        server_tls(config)


def _server_tls(config) -> ServerTLS | None:
    level = config["smtpd_tls_security_level"] or "none"
    if config["smtpd_tls_wrappermode"] and level == "none":
        level = "may"
    if level == "none":
        return None
    if level == "may" and not (config["smtpd_tls_chain_files"] or config["smtpd_tls_cert_file"]):
        # Postfix: "No server certs available. TLS won't be enabled" (STARTTLS not offered).
        log.warning("No server certs available. TLS won't be enabled")
        return None
    return ServerTLS(config, level)
