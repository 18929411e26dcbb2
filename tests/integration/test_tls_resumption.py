"""TLS session resumption: a returning client resumes its session (a session
ticket) without a full handshake, on whichever worker process accepts it."""
import smtplib
import ssl
import subprocess
import time

from tests.integration.test_tls_server import client_context, tls_main_cf


def _starttls(port, ctx, session=None):
    """STARTTLS with ``session`` offered for resumption; (reused?, the new session)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        assert smtp.docmd("STARTTLS")[0] == 220
        smtp.sock = ctx.wrap_socket(smtp.sock, server_hostname="relayd.test", session=session)
        smtp.file = None
        assert smtp.ehlo("client.example")[0] == 250   # TLS 1.3: the ticket comes after the handshake
        reused, session = smtp.sock.session_reused, smtp.sock.session
        smtp.quit()
    return reused, session


def _established_lines(proc, count, timeout=10.0):
    """The first ``count`` "TLS connection established" lines, once logged."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in proc.log().splitlines() if "TLS connection established" in line]
        if len(lines) >= count or time.monotonic() > deadline:
            assert len(lines) >= count, proc.log()
            return lines[:count]
        time.sleep(0.05)


def test_second_connections_resume_the_session(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs, "relayd_worker_processes = 2\n"))
    ctx = client_context()
    reused, session = _starttls(proc.port, ctx)
    assert not reused
    # Each connection may land on either worker: all of them resume.
    for _ in range(6):
        reused, _ = _starttls(proc.port, ctx, session)
        assert reused


def test_resumed_session_keeps_the_client_certificate(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs, (
        "smtpd_tls_ask_ccert = yes\n"
        f"smtpd_tls_CAfile = {tls_certs.cert('ca')}\n")))
    ctx = client_context(tls_certs, "client")
    _, session = _starttls(proc.port, ctx)
    reused, _ = _starttls(proc.port, ctx, session)
    assert reused
    lines = _established_lines(proc, 2)
    assert all(": Trusted TLS" in line for line in lines), lines
    # resumption uses no signatures: the second line has none (tls_misc.c)
    assert "server-signature" in lines[0] and "signature" not in lines[1]


def test_no_resumption_when_turned_off(relayd_factory, tls_certs):
    proc = relayd_factory(tls_main_cf(tls_certs, "smtpd_tls_session_cache_timeout = 0\n"))
    ctx = client_context()
    _, session = _starttls(proc.port, ctx)
    assert session is None or not _starttls(proc.port, ctx, session)[0]


def test_openssl_s_client_reports_reused(relayd_factory, tls_certs, tmp_path):
    proc = relayd_factory(tls_main_cf(tls_certs))
    sess = tmp_path / "session.pem"
    base = ["openssl", "s_client", "-starttls", "smtp", "-ign_eof", "-connect",
            f"127.0.0.1:{proc.port}"]
    first = subprocess.run(base + ["-sess_out", str(sess)], input=b"EHLO x\r\nQUIT\r\n",
                           capture_output=True, timeout=20)
    assert b"New, TLSv1.3" in first.stdout, first.stdout
    second = subprocess.run(base + ["-sess_in", str(sess)], input=b"EHLO x\r\nQUIT\r\n",
                            capture_output=True, timeout=20)
    assert b"Reused, TLSv1.3" in second.stdout, second.stdout
