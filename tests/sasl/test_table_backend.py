"""smtpd_sasl_type = relayd: hashes from a hash: table built by postmap, checked off the loop."""
import subprocess
import sys

import gevent

from relayd.config import load_config
from relayd.sasl.backend import FAIL, OK, open_backend


def _mkpasswd(password: str) -> str:
    return subprocess.run(["mkpasswd", "-m", "sha-512", "-s"], input=password.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


def _openssl(password: str) -> str:
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


def _backend(tmp_path, entries: dict[str, str]):
    source = tmp_path / "sasl_passwd"
    source.write_text("".join(f"{user} {hashed}\n" for user, hashed in entries.items()))
    subprocess.run([sys.executable, "-m", "relayd", "postmap", f"hash:{source}"], check=True)
    config = load_config(smtpd_sasl_auth_enable="yes",
                         relayd_sasl_password_maps=f"hash:{source}")
    return open_backend(config)


def test_hashes_from_mkpasswd_and_openssl(tmp_path):
    backend = _backend(tmp_path, {"alice": _mkpasswd("alice pw"),
                                  "bob@example.com": "{SHA512-CRYPT}" + _openssl("bob pw")})
    assert backend.mechanisms() == ("PLAIN", "LOGIN")
    assert backend.verify("alice", b"alice pw").status == OK
    assert backend.verify("bob@example.com", b"bob pw").status == OK
    assert backend.verify("alice", b"bob pw").status == FAIL
    assert backend.verify("nobody", b"").status == FAIL
    assert backend.verify("nobody", b"\0").status == FAIL


def test_a_plaintext_password_in_the_table_is_never_accepted(tmp_path):
    backend = _backend(tmp_path, {"carol": "carolpw"})
    assert backend.verify("carol", b"carolpw").status == FAIL


def test_verification_leaves_the_event_loop_free(tmp_path):
    """While one password is being checked other greenlets keep running."""
    backend = _backend(tmp_path, {"alice": _mkpasswd("pw")})
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            gevent.sleep(0)

    t = gevent.spawn(ticker)
    gevent.sleep(0)
    before = len(ticks)
    results = [backend.verify("alice", b"pw") for _ in range(3)]
    t.kill()
    assert all(r.status == OK for r in results)
    assert len(ticks) > before   # the ticker ran while the hashes were computed


def test_auth_disabled_means_no_backend():
    assert open_backend(load_config()) is None
