"""crypt(3) SHA-512 in pure Python against the hashes real tools write."""
import subprocess
import sys

import pytest

from relayd.sasl import shacrypt


def _openssl(password: str, salt: str | None = None) -> str:
    cmd = ["openssl", "passwd", "-6"] + (["-salt", salt] if salt else []) + ["-stdin"]
    return subprocess.run(cmd, input=password.encode(), capture_output=True,
                          check=True).stdout.decode().strip()


def _mkpasswd(password: str, *options: str) -> str:
    return subprocess.run(["mkpasswd", "-m", "sha-512", "-s", *options], input=password.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


@pytest.mark.parametrize("password", ["secret", "p" * 80, "pässwörd €", "a b\tc"])
def test_openssl_hashes_verify(password):
    hashed = _openssl(password)
    assert shacrypt.verify(password.encode(), hashed)
    assert not shacrypt.verify(password.encode() + b"x", hashed)


def test_same_salt_gives_the_same_string_as_openssl():
    assert shacrypt.sha512_crypt(b"Hello world!", "saltstring") == _openssl("Hello world!", "saltstring")


@pytest.mark.parametrize("options", [(), ("-R", "1234"), ("-R", "10000")])
def test_mkpasswd_hashes_verify(options):
    hashed = _mkpasswd("correct horse", *options)
    assert shacrypt.verify(b"correct horse", hashed)
    assert not shacrypt.verify(b"correct hors", hashed)


def test_published_vector_with_rounds():
    # From Drepper's specification: salt truncated to 16 characters, rounds written.
    assert shacrypt.sha512_crypt(b"Hello world!", "saltstringsaltstring", 10000) == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/Urjm"
        "M0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.")


def test_doveadm_scheme_prefix_is_accepted():
    hashed = _mkpasswd("pw")
    assert shacrypt.verify(b"pw", "{SHA512-CRYPT}" + hashed)


@pytest.mark.parametrize("bad", ["", "plain", "$1$abc$def", "$5$salt$" + "a" * 43,
                                 "$6$salt$short", "$6$rounds=x$salt$" + "a" * 86,
                                 "$6$rounds=5000salt" + "a" * 86])
def test_anything_but_a_sha512_crypt_hash_never_matches(bad):
    assert not shacrypt.verify(b"", bad) and not shacrypt.verify(b"plain", bad)


def test_more_rounds_than_the_bound_are_refused_not_computed():
    hashed = shacrypt.sha512_crypt(b"pw", "salt", shacrypt.MAX_ROUNDS + 1)
    assert not shacrypt.verify(b"pw", hashed)
    # Within the bound it verifies (small count, so the test stays fast).
    assert shacrypt.verify(b"pw", shacrypt.sha512_crypt(b"pw", "salt", 2000))


def test_make_hash_is_salted_and_verifiable_by_its_own_code():
    a, b = shacrypt.make_hash(b"pw"), shacrypt.make_hash(b"pw")
    assert a != b and a.startswith("$6$") and len(a.split("$")[2]) == 16
    assert shacrypt.verify(b"pw", a)


def test_relayd_passwd_prints_a_hash_openssl_agrees_with(tmp_path):
    out = subprocess.run([sys.executable, "-m", "relayd", "passwd"], input=b"s3cret pass\n",
                         capture_output=True, check=True).stdout.decode()
    hashed = out.strip()
    assert out.count("\n") == 1 and hashed.startswith("$6$")
    salt = hashed.split("$")[2]
    assert _openssl("s3cret pass", salt) == hashed


def test_relayd_passwd_refuses_an_empty_password():
    done = subprocess.run([sys.executable, "-m", "relayd", "passwd"], input=b"\n",
                          capture_output=True)
    assert done.returncode == 65 and not done.stdout
