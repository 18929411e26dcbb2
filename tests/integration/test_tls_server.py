"""Server TLS over real handshakes on 127.0.0.1: a real relayd process, clients
smtplib, ``openssl s_client -starttls smtp`` and swaks, certificates from
tests/support/certs.py."""
import shutil
import smtplib
import socket
import ssl
import subprocess

import pytest

from tests.support.relayd_proc import RelaydProcess, free_port

MESSAGE = b"Subject: tls\r\n\r\nhello\r\n"


def tls_main_cf(certs, extra=""):
    return (f"smtpd_tls_security_level = may\n"
            f"smtpd_tls_cert_file = {certs.cert('server')}\n"
            f"smtpd_tls_key_file = {certs.key('server')}\n"
            f"smtpd_tls_loglevel = 1\n" + extra)


def client_context(certs=None, name=None):
    ctx = ssl.create_default_context(cafile=certs.cert("ca") if certs else None)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if name:
        ctx.load_cert_chain(certs.cert(name), certs.key(name))
    return ctx


@pytest.fixture
def tls_relayd(relayd_factory, tls_certs):
    return relayd_factory(tls_main_cf(tls_certs, "smtpd_tls_received_header = yes\n"))


def test_starttls_with_smtplib_relays_with_esmtps(tls_relayd, sink):
    with smtplib.SMTP("127.0.0.1", tls_relayd.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert smtp.has_extn("starttls")
        smtp.starttls(context=client_context())
        smtp.ehlo("client.example")
        assert not smtp.has_extn("starttls")   # not advertised after TLS
        assert smtp.docmd("STARTTLS")[0] == 554   # a second one is refused
        smtp.sendmail("a@client.example", ["b@relay.example"], MESSAGE)
    received = sink.wait_for(1)[0].data.decode()
    assert "with ESMTPS id" in received
    assert "(using TLSv1.3 with cipher TLS_" in received
    assert "(No client certificate requested)" in received
    tls_relayd.wait_log("Anonymous TLS connection established from unknown[127.0.0.1]: "
                        "TLSv1.3 with cipher TLS_")


def test_ehlo_required_again_after_starttls(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs, "smtpd_helo_required = yes\n"))
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.starttls(context=client_context())
        code, text = smtp.docmd("MAIL FROM:<a@client.example>")
        assert code == 503, text


def test_starttls_injection_is_not_executed(tls_relayd, sink):
    """CVE-2011-0411: commands pipelined after STARTTLS in plaintext are dropped."""
    raw = socket.create_connection(("127.0.0.1", tls_relayd.port), timeout=10)
    f = raw.makefile("rb")
    f.readline()
    raw.sendall(b"EHLO x\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<b@relay.example>\r\n")
    assert f.readline().startswith(b"220 ")
    tls = client_context().wrap_socket(raw)
    tls.sendall(b"EHLO x\r\nMAIL FROM:<a@x>\r\n")
    replies = tls.recv(4096)
    while b"\r\n250 " not in replies or not replies.endswith(b"\r\n") \
            or replies.count(b"\r\n250 ") < 2:
        more = tls.recv(4096)
        assert more
        replies += more
    # the MAIL after the handshake is accepted: no injected one came before it
    assert replies.rstrip().endswith(b"250 2.1.0 Ok")
    tls.sendall(b"QUIT\r\n")
    tls.close()


def test_openssl_s_client_starttls(tls_relayd):
    out = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{tls_relayd.port}",
         "-brief"], input=b"QUIT\r\n", capture_output=True, timeout=20)
    text = out.stdout.decode() + out.stderr.decode()
    assert "Protocol version: TLSv1.3" in text, text


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_tls(tls_relayd, sink):
    out = subprocess.run(["swaks", "--server", f"127.0.0.1:{tls_relayd.port}", "--tls",
                          "--from", "a@client.example", "--to", "b@relay.example"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "with ESMTPS" in sink.wait_for(1)[0].data.decode()


def test_tls_1_1_refused_by_default(tls_relayd):
    ctx = client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with smtplib.SMTP("127.0.0.1", tls_relayd.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        with pytest.raises((ssl.SSLError, OSError)):
            smtp.starttls(context=ctx)


def test_security_level_encrypt(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs, "smtpd_tls_security_level = encrypt\n"))
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert smtp.docmd("MAIL FROM:<a@client.example>") == (
            530, b"5.7.0 Must issue a STARTTLS command first")
        smtp.starttls(context=client_context())
        smtp.ehlo("client.example")
        assert smtp.docmd("MAIL FROM:<a@client.example>")[0] == 250


def test_no_certificate_no_starttls(relayd):
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert not smtp.has_extn("starttls")


def test_wrapper_mode(tmp_path, tls_certs, sink):
    proc = RelaydProcess(tmp_path / "relayd", sink.port, tls_main_cf(tls_certs))
    wrapped = free_port()
    (proc.directory / "master.cf").write_text(
        f"127.0.0.1:{proc.port} inet n - n - - smtpd\n"
        f"127.0.0.1:{wrapped} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n")
    proc.start()
    try:
        _send_over_implicit_tls(wrapped)
    finally:
        proc.stop()
    assert "with ESMTPS" in sink.wait_for(1)[0].data.decode()


def _send_over_implicit_tls(port):
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_context()) as smtp:
        code, _ = smtp.ehlo("client.example")
        assert code == 250 and not smtp.has_extn("starttls")
        smtp.sendmail("a@client.example", ["b@relay.example"], MESSAGE)


def test_sni_picks_the_certificate(relayd_factory, tls_certs, tmp_path):
    table = tmp_path / "sni"
    table.write_text(f"other.example {tls_certs.chain('other')}\n")
    proc = relayd_factory(tls_main_cf(tls_certs, f"tls_server_sni_maps = texthash:{table}\n"))
    for name, cn in (("other.example", "other.example"), ("relayd.test", "relayd.test")):
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
            smtp.ehlo("x")
            smtp.docmd("STARTTLS")
            ctx = client_context(tls_certs)
            ctx.verify_mode = ssl.CERT_REQUIRED
            sock = ctx.wrap_socket(smtp.sock, server_hostname=name)
            subject = dict(x[0] for x in sock.getpeercert()["subject"])
            assert subject["commonName"] == cn
            sock.close()


def test_stalled_handshake_times_out_without_blocking_others(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs, "smtpd_starttls_timeout = 2s\n"))
    stalled = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
    f = stalled.makefile("rb")
    f.readline()
    stalled.sendall(b"EHLO x\r\nSTARTTLS\r\n")
    while not f.readline().startswith(b"220 2.0.0"):
        pass
    # ... and never sends a ClientHello. Another client is served meanwhile:
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
        smtp.ehlo("other")
        smtp.starttls(context=client_context())
        assert smtp.noop()[0] == 250
    stalled.settimeout(15)
    assert stalled.recv(100) == b""   # closed by the server after smtpd_starttls_timeout
    proc.wait_log("SSL_accept error from unknown[127.0.0.1]: Connection timed out")
    proc.wait_log("lost connection after STARTTLS from unknown[127.0.0.1]")


def test_garbage_handshake_fails_and_is_logged(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs))
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\nSTARTTLS\r\n")
        while not f.readline().startswith(b"220 2.0.0"):
            pass
        s.sendall(b"this is no ClientHello\r\n" * 10)
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass   # the server closed with our garbage unread
    proc.wait_log("SSL_accept error from unknown[127.0.0.1]: -1")
    proc.wait_log("warning: TLS library problem: error:SSL routines::")
    proc.wait_log("lost connection after STARTTLS from unknown[127.0.0.1]")


def test_client_hello_on_plaintext_port(tls_relayd):
    """A client speaking TLS first on the STARTTLS port gets SMTP errors, never hangs the server."""
    raw = socket.create_connection(("127.0.0.1", tls_relayd.port), timeout=10)
    raw.recv(512)
    ctx = client_context()
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(raw).do_handshake()
    with smtplib.SMTP("127.0.0.1", tls_relayd.port, timeout=10) as smtp:
        assert smtp.noop()[0] == 250
