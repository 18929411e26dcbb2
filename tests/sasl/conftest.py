"""Fixtures of the AUTH tests: a password table with one user, hashed by mkpasswd."""
import subprocess

import pytest

PASSWORD = "s3cret words"


@pytest.fixture(scope="session")
def sasl_hash():
    """alice's password as mkpasswd -m sha-512 hashes it (a standard tool, not relayd)."""
    return subprocess.run(["mkpasswd", "-m", "sha-512", "-s"], input=PASSWORD.encode(),
                          capture_output=True, check=True).stdout.decode().strip()


@pytest.fixture
def sasl_table(tmp_path, sasl_hash):
    """The main.cf lines of smtpd_sasl_type = relayd with alice in a texthash: table."""
    table = tmp_path / "sasl_passwords"
    table.write_text(f"alice {sasl_hash}\n")
    return ("smtpd_sasl_auth_enable = yes\n"
            f"relayd_sasl_password_maps = texthash:{table}\n")
