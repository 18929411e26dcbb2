"""smtpd_sasl_type = dovecot against a real Dovecot (tests/support/dovecot.py): the
back end alone over its UNIX socket and inet:, then a relayd process that relays for a
user Dovecot knows, refuses a wrong password (535) and answers 454 when Dovecot is down."""
import smtplib
import socket
import threading
from base64 import b64encode

import pytest

from relayd.config import load_config
from relayd.config.errors import ConfigError
from relayd.sasl.backend import FAIL, OK, TEMP, AuthClient, open_backend
from relayd.sasl.dovecot import socket_address
from tests.integration.test_tls_server import client_context, tls_main_cf
from tests.sasl.conftest import PASSWORD
from tests.support.dovecot import Dovecot, dovecot_binary

pytestmark = pytest.mark.skipif(dovecot_binary() is None, reason="dovecot-core not installed")

MESSAGE = b"Subject: dovecot\r\n\r\nhello\r\n"


@pytest.fixture
def dovecot(tmp_path, sasl_hash):
    server = Dovecot(tmp_path / "dovecot", tmp_path / "dovecot" / "auth",
                     {"alice": sasl_hash}).start()
    yield server
    server.stop()


def backend(path: str, queue_directory: str = "/nonexistent", timeout: str = "10s"):
    return open_backend(load_config(smtpd_sasl_auth_enable="yes", smtpd_sasl_type="dovecot",
                                    smtpd_sasl_path=path, queue_directory=queue_directory,
                                    relayd_sasl_auth_timeout=timeout))


def test_sasl_path_as_postfix_resolves_it():
    assert socket_address("private/auth", "/var/spool/relayd") == (
        socket.AF_UNIX, "/var/spool/relayd/private/auth")
    assert socket_address("unix:/run/dovecot/auth-client", "/q") == (
        socket.AF_UNIX, "/run/dovecot/auth-client")
    assert socket_address("inet:127.0.0.1:12345", "/q") == (socket.AF_INET, ("127.0.0.1", 12345))
    assert socket_address("inet:[::1]:12345", "/q") == (socket.AF_INET6, ("::1", 12345))
    with pytest.raises(ConfigError, match="smtpd_sasl_path"):
        backend("inet:127.0.0.1")    # no port: refused at startup, not at the first AUTH


def test_good_and_bad_passwords(dovecot):
    # relative to queue_directory, as Postfix's smtpd_sasl_path = private/auth
    auth = backend("auth", queue_directory=str(dovecot.socket_path.parent))
    assert auth.verify("alice", PASSWORD.encode(), AuthClient("192.0.2.7", "127.0.0.1", True)
                       ).status == OK
    # Dovecot's name for the user (auth_username_format = %Lu by default) is the login
    assert auth.verify("ALICE", PASSWORD.encode()) == (OK, "", "alice")
    # failures last: Dovecot slows later requests from the same address (auth penalty)
    assert auth.verify("alice", b"wrong", AuthClient("192.0.2.7", "127.0.0.1", True)
                       ).status == FAIL
    assert auth.verify("mallory", PASSWORD.encode()).status == FAIL
    # rip= reached Dovecot: its log names the client of the failed attempt
    dovecot.wait_log("passwd-file(alice,192.0.2.7): Password mismatch")


def test_inet_socket(dovecot):
    auth = backend(f"inet:127.0.0.1:{dovecot.port}")
    assert auth.verify("alice", PASSWORD.encode()).status == OK
    assert auth.verify("alice", b"wrong").status == FAIL


def test_wrong_socket_is_temporary(dovecot, caplog):
    auth = backend(str(dovecot.directory / "auth-master"))
    assert auth.verify("alice", PASSWORD.encode()).status == TEMP
    assert "SASL: Connected to wrong auth socket (auth-master instead of auth-client)" \
        in caplog.messages


def test_no_dovecot_is_temporary(dovecot):
    auth = backend(str(dovecot.socket_path))
    dovecot.stop()
    result = auth.verify("alice", PASSWORD.encode())
    assert result.status == TEMP


def test_silent_auth_server_times_out_as_temporary(tmp_path):
    """A socket that takes the connection and never answers (a real listening
    socket nobody serves): the check ends after relayd_sasl_auth_timeout."""
    path = tmp_path / "silent"
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(path))
        silent.listen(1)
        result = backend(str(path), timeout="1s").verify("alice", PASSWORD.encode())
    assert result == (TEMP, "Connection lost to authentication server", "")


def test_relay_through_relayd_with_dovecot(relayd_factory, tls_certs, tmp_path, sasl_hash, sink):
    # Dovecot's socket in relayd's queue directory, smtpd_sasl_path = private/auth as in
    # Postfix's SASL_README
    server = Dovecot(tmp_path / "dovecot", tmp_path / "relayd" / "spool" / "private" / "auth",
                     {"alice": sasl_hash}).start()
    try:
        proc = relayd_factory(tls_main_cf(tls_certs, (
            "mynetworks =\nsmtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
            "smtpd_sasl_path = private/auth\nsmtpd_relay_restrictions = "
            "permit_sasl_authenticated, reject_unauth_destination\n")))
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
            smtp.starttls(context=client_context())
            assert smtp.login("alice", PASSWORD)[0] == 235
            assert smtp.sendmail("alice@client.example", ["bob@far.example"], MESSAGE) == {}
        assert b"with ESMTPSA id" in sink.wait_for(1, timeout=10)[0].data
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
            smtp.starttls(context=client_context())
            smtp.ehlo("client.example")
            # last: Dovecot slows every later request from the same rip= after a failure
            # (its auth penalty), which is the point in production and a wait in a test
            assert smtp.docmd("AUTH PLAIN " + b64encode(b"\0alice\0wrong").decode())[0] == 535
            assert smtp.docmd("MAIL FROM:<alice@client.example>")[0] == 250
            assert smtp.docmd("RCPT TO:<bob@far.example>")[0] == 554
        server.stop()
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as smtp:
            smtp.starttls(context=client_context())
            smtp.ehlo("client.example")
            code, text = smtp.docmd("AUTH PLAIN " + b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
        assert (code, text) == (454, b"4.7.0 Temporary authentication failure: "
                                     b"Can't connect to authentication server")
        proc.wait_log("SASL: Connect to Dovecot auth socket 'private/auth' failed")
    finally:
        server.stop()


@pytest.mark.parametrize("answer", [
    b"VERSION\t2\t0\nMECH\tPLAIN\nDONE\n",              # a protocol relayd does not know
    b"VERSION\t1\t2\n" + b"MECH\tPLAIN" * 2000,          # an endless line
    b"VERSION\t1\t2\nMECH\tPLAIN\nDONE\nCONT\t1\t\n",    # asks for more where PLAIN needs none
    b"VERSION\t1\t2\nMECH\tPLAIN\nDONE\nOK\t1\n",        # OK without user=
])
def test_auth_server_out_of_protocol_grants_nothing(tmp_path, answer):
    """Answers no real Dovecot gives (so a stand-in server, a real socket) are never an OK."""
    path = tmp_path / "odd"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        thread = threading.Thread(target=_answer_once, args=(server, answer))
        thread.start()
        result = backend(str(path), timeout="5s").verify("alice", PASSWORD.encode())
        thread.join()
    assert result.status in (TEMP, FAIL)


def _answer_once(server, answer: bytes) -> None:
    conn, _ = server.accept()
    with conn:
        conn.sendall(answer)
        conn.settimeout(5)
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
