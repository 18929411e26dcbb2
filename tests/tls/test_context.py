"""relayd/tls/: contexts from main.cf and the cooperative connection, over real
handshakes on 127.0.0.1 (certificates from tests/support/certs.py)."""
import gevent
import pytest
from gevent import socket
from OpenSSL import SSL

from relayd.config import ConfigError
from relayd.config import load_config
from relayd.tls.connection import TLSConnection
from relayd.tls.context import fingerprint, protocol_range, server_tls


def _config(**params):
    return load_config(**params)


def _pair():
    """A connected (server, client) pair of gevent sockets on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def _handshake(tls, client_ctx, server_name=None):
    server_sock, client_sock = _pair()
    server = TLSConnection(server_sock, tls.context)
    client = TLSConnection(client_sock, client_ctx)
    accept = gevent.spawn(server.accept)
    client.connect(server_name)
    accept.get(timeout=10)
    return server, client


def _client_ctx(certs=None, name=None):
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if name:
        ctx.use_certificate_file(certs.cert(name))
        ctx.use_privatekey_file(certs.key(name))
    return ctx


@pytest.mark.parametrize("text, expected", [
    (">=TLSv1.2", (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION)),
    ("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION)),
    ("TLSv1.3", (SSL.TLS1_3_VERSION, SSL.TLS1_3_VERSION)),
    (">=TLSv1 <=TLSv1.2", (SSL.TLS1_VERSION, SSL.TLS1_2_VERSION)),
])
def test_protocol_range_reads_postfix_syntax(text, expected):
    assert protocol_range(text, "smtpd_tls_protocols") == expected


def test_protocol_range_names_the_parameter_of_a_bad_name():
    with pytest.raises(ConfigError, match="smtpd_tls_protocols.*TLSv9"):
        protocol_range(">=TLSv9", "smtpd_tls_protocols")


def test_no_level_no_tls(tls_certs):
    assert server_tls(_config(smtpd_tls_cert_file=tls_certs.cert("server"))) is None
    assert server_tls(_config(smtpd_tls_security_level="may")) is None  # may, no certificate


@pytest.mark.parametrize("parameter", ["smtpd_tls_cert_file", "smtpd_tls_key_file"])
def test_missing_file_stops_startup_naming_file_and_parameter(tls_certs, tmp_path, parameter):
    params = dict(smtpd_tls_security_level="may", smtpd_tls_cert_file=tls_certs.cert("server"),
                  smtpd_tls_key_file=tls_certs.key("server"))
    params[parameter] = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError) as exc:
        server_tls(_config(**params))
    assert exc.value.parameter == parameter and "missing.pem" in str(exc.value)


def test_key_not_matching_certificate_stops_startup(tls_certs):
    with pytest.raises(ConfigError, match="smtpd_tls_key_file"):
        server_tls(_config(smtpd_tls_security_level="may",
                           smtpd_tls_cert_file=tls_certs.cert("server"),
                           smtpd_tls_key_file=tls_certs.key("other")))


def test_encrypt_without_certificate_stops_startup():
    with pytest.raises(ConfigError, match="smtpd_tls_cert_file"):
        server_tls(_config(smtpd_tls_security_level="encrypt"))


def test_handshake_is_cooperative_and_carries_data(tls_certs):
    tls = server_tls(_config(smtpd_tls_security_level="may",
                             smtpd_tls_chain_files=tls_certs.chain("server")))
    other = gevent.spawn(lambda: "still running")  # the loop keeps serving others meanwhile
    server, client = _handshake(tls, _client_ctx())
    assert other.get(timeout=1) == "still running"
    assert server.protocol == "TLSv1.3"
    client.sendall(b"EHLO x\r\n" * 5000)
    got = b""
    while len(got) < 8 * 5000:
        got += server.recv(65536)
    assert got == b"EHLO x\r\n" * 5000
    server.close()
    assert client.recv(10) == b""


def test_default_refuses_tls_1_1(tls_certs):
    tls = server_tls(_config(smtpd_tls_security_level="may",
                             smtpd_tls_cert_file=tls_certs.cert("server"),
                             smtpd_tls_key_file=tls_certs.key("server")))
    ctx = _client_ctx()
    ctx.set_min_proto_version(SSL.TLS1_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    with pytest.raises((SSL.Error, OSError)):
        _handshake(tls, ctx)


def test_client_certificate_fingerprint(tls_certs):
    tls = server_tls(_config(smtpd_tls_security_level="may", smtpd_tls_ask_ccert="yes",
                             smtpd_tls_chain_files=tls_certs.chain("server")))
    server, client = _handshake(tls, _client_ctx(tls_certs, "stranger"))
    client.sendall(b"x")  # TLS 1.3: the client's certificate arrives with its first flight
    assert server.recv(1) == b"x"
    assert fingerprint(server.peer_certificate()) == tls_certs.fingerprints["stranger"]


def test_sni_picks_the_certificate(tls_certs, tmp_path):
    table = tmp_path / "sni"
    table.write_text(f"other.example {tls_certs.chain('other')}\n")
    tls = server_tls(_config(smtpd_tls_security_level="may",
                             smtpd_tls_chain_files=tls_certs.chain("server"),
                             tls_server_sni_maps=f"texthash:{table}"))
    for name, cn in (("other.example", b"other.example"), ("relayd.test", b"relayd.test"),
                     (None, b"relayd.test")):
        server, client = _handshake(tls, _client_ctx(), name)
        assert client.peer_certificate().subject.rfc4514_string().encode() == b"CN=" + cn


@pytest.mark.parametrize("cafile, name, trusted", [
    (True, "client", True), (True, "stranger", False), (False, "client", False)])
def test_client_certificate_trust_follows_the_cafile(tls_certs, cafile, name, trusted):
    tls = server_tls(_config(smtpd_tls_security_level="may", smtpd_tls_ask_ccert="yes",
                             smtpd_tls_chain_files=tls_certs.chain("server"),
                             smtpd_tls_CAfile=tls_certs.cert("ca") if cafile else ""))
    server, client = _handshake(tls, _client_ctx(tls_certs, name))
    assert tls.client_trusted(server, server.peer_certificate()) is trusted


def test_server_certificate_is_no_trusted_client_certificate(tls_certs):
    """OpenSSL's sslclient purpose: a certificate only for serverAuth is not Trusted."""
    tls = server_tls(_config(smtpd_tls_security_level="may", smtpd_tls_ask_ccert="yes",
                             smtpd_tls_chain_files=tls_certs.chain("server"),
                             smtpd_tls_CAfile=tls_certs.cert("ca")))
    server, client = _handshake(tls, _client_ctx(tls_certs, "other"))
    assert not tls.client_trusted(server, server.peer_certificate())
