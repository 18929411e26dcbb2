"""What Postfix 3.7 writes about TLS, checked over real handshakes: the
"... TLS connection established from ..." line (tls_misc.c), the Received
comment of smtpd_tls_received_header (smtpd.c), the log of a failed
handshake (tls_server.c) and the answer to a TLS ClientHello sent to the
plaintext port. The clients are Python's ssl (system OpenSSL: key exchange
X25519) and the test certificates (ECDSA P-256)."""
import re
import smtplib
import socket
import ssl

import pytest

from tests.integration.test_tls_server import MESSAGE, client_context, tls_main_cf

PEER = "unknown[127.0.0.1]"
# The cipher is OpenSSL's choice; everything else is fixed by the certificates.
TLS13 = r"TLSv1\.3 with cipher TLS_\w+ \((\d+)/\1 bits\)"
KEX_SERVER = "key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256"
CLIENT_SIG = "client-signature ECDSA (prime256v1) client-digest SHA256"


@pytest.fixture
def ccert_relayd(relayd_factory, tls_certs):
    return relayd_factory(tls_main_cf(tls_certs, (
        "smtpd_tls_ask_ccert = yes\n"
        f"smtpd_tls_CAfile = {tls_certs.cert('ca')}\n"
        "smtpd_tls_received_header = yes\n")))


def _send(port, ctx):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.starttls(context=ctx)
        smtp.sendmail("a@client.example", ["b@relay.example"], MESSAGE)


def _logged(proc, trust, rest):
    """The log has "<trust> TLS connection established from ...: " + regex ``rest``."""
    log = proc.wait_log(f"{trust} TLS connection established")
    pattern = rf"\]: {trust} TLS connection established from {re.escape(PEER)}: {rest}$"
    assert re.search(pattern, log, re.M), log


@pytest.mark.parametrize("name, trust", [("client", "Trusted"), ("stranger", "Untrusted")])
def test_trusted_and_untrusted_lines(ccert_relayd, tls_certs, sink, name, trust):
    _send(ccert_relayd.port, client_context(tls_certs, name))
    _logged(ccert_relayd, trust, rf"{TLS13} {re.escape(KEX_SERVER)} {re.escape(CLIENT_SIG)}")
    received = sink.wait_for(1)[0].data.decode()
    cn, issuer, verified = {"client": ("client.example", "relayd test CA", "verified OK"),
                            "stranger": ("stranger.example", "stranger.example",
                                         "not verified")}[name]
    assert re.search(rf"\r\n\t\(using {TLS13}\r\n\t {re.escape(KEX_SERVER)}\r\n"
                     rf"\t {re.escape(CLIENT_SIG)}\)\r\n"
                     rf'\t\(Client CN "{cn}", Issuer "{issuer}" \({verified}\)\)\r\n'
                     r"\tby ", received), received


def test_anonymous_line_and_no_certificate_presented(ccert_relayd, sink):
    _send(ccert_relayd.port, client_context())
    _logged(ccert_relayd, "Anonymous", rf"{TLS13} {re.escape(KEX_SERVER)}")
    received = sink.wait_for(1)[0].data.decode()
    assert re.search(rf"\t {re.escape(KEX_SERVER)}\)\r\n"
                     r"\t\(Client did not present a certificate\)\r\n", received), received


def test_tls12_line_has_no_tls13_details(relayd_factory, tls_certs, sink):
    proc = relayd_factory(tls_main_cf(tls_certs))
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    _send(proc.port, ctx)
    _logged(proc, "Anonymous", r"TLSv1\.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384 \(256/256 bits\)")


def test_sni_name_in_the_line(relayd_factory, tls_certs, tmp_path):
    table = tmp_path / "sni"
    table.write_text(f"other.example {tls_certs.chain('other')}\n")
    proc = relayd_factory(tls_main_cf(tls_certs, f"tls_server_sni_maps = texthash:{table}\n"))
    for name in ("other.example", "unknown.example"):
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
            smtp.ehlo("x")
            smtp.docmd("STARTTLS")
            tls = client_context().wrap_socket(smtp.sock, server_hostname=name)
            tls.close()
    proc.wait_log(f"TLS connection established from {PEER} to other.example: TLSv1.3")
    proc.wait_log(f"TLS SNI unknown.example from {PEER} not matched, using default chain")
    assert f"from {PEER} to unknown.example" not in proc.log()


def test_failed_handshake_log(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs))
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\nSTARTTLS\r\n")
        while not f.readline().startswith(b"220 2.0.0"):
            pass
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    log = proc.wait_log(f"lost connection after STARTTLS from {PEER}")
    assert re.search(rf"SSL_accept error from {re.escape(PEER)}: -1\n.*"
                     r"warning: TLS library problem: error:SSL routines::\w", log), log


def _client_hello() -> bytes:
    """A real ClientHello (Python's ssl) whose first "line" is not UTF-8, as
    nearly all are: the random fields make the rare other case a forbidden
    command instead (221 2.7.0, Postfix's smtpd_forbidden_commands)."""
    ctx = client_context()
    for _ in range(50):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        with pytest.raises(ssl.SSLWantReadError):
            ctx.wrap_bio(incoming, outgoing, server_hostname="relayd.test").do_handshake()
        hello = outgoing.read()
        if b"\n" in hello:
            try:
                hello.split(b"\n", 1)[0].decode("utf-8")
            except UnicodeDecodeError:
                return hello
    raise AssertionError("no ClientHello with a non-UTF-8 first line")


def test_client_hello_on_the_plaintext_port_gets_postfix_answer(relayd_factory, tls_certs):
    """Postfix answers the ClientHello's first line as a command line that is not
    UTF-8 (smtpd.c checks that first); the client gives up, the server logs the
    lost connection in the state it was in."""
    proc = relayd_factory(tls_main_cf(tls_certs))
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        s.sendall(_client_hello())
        assert f.readline() == b"500 5.5.2 Error: bad UTF-8 syntax\r\n"
        f.close()   # the client gives up (the socket closes with its last file)
    proc.wait_log(f"lost connection after CONNECT from {PEER}")


def test_loglevel_2_logs_the_client_certificate_fingerprints(relayd_factory, tls_certs, sink):
    """tls_server.c's line that tells an admin what to put in relay_clientcerts."""
    proc = relayd_factory(tls_main_cf(tls_certs, "smtpd_tls_ask_ccert = yes\n"
                                                 "smtpd_tls_loglevel = 2\n"))
    _send(proc.port, client_context(tls_certs, "client"))
    proc.wait_log(f"{PEER}: subject_CN=client.example, issuer=relayd test CA, "
                  f"cert fingerprint={tls_certs.fingerprints['client']}, pkey fingerprint=")
    proc.wait_log(f"Untrusted TLS connection established from {PEER}")
