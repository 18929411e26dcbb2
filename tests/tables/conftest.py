"""Helpers for the table tests: write a table file, ask Debian's real postmap."""
import os
import subprocess
import time

import pytest

# Debian's Postfix, by its full path: relayd installs a postmap of its own.
POSTFIX_POSTMAP = "/usr/sbin/postmap"


@pytest.fixture
def write_table(tmp_path):
    """``write_table("name", text)`` writes tmp_path/name and returns its path as str."""
    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        # Postfix's texthash: waits while its file is younger than a second.
        os.utime(path, (time.time() - 60, time.time() - 60))
        return str(path)
    return write


@pytest.fixture
def postfix_confdir(tmp_path):
    """A directory with a minimal main.cf, so Postfix's tools run without /etc/postfix."""
    if not os.access(POSTFIX_POSTMAP, os.X_OK):
        pytest.skip("Postfix's postmap is not installed")
    confdir = tmp_path / "postfix-etc"
    confdir.mkdir()
    main_cf = confdir / "main.cf"
    main_cf.write_text("myhostname = relayd-test.localdomain\n"
                       "mydomain = localdomain\ninet_protocols = ipv4\n")
    # Postfix waits (seconds) while main.cf is younger than a second.
    os.utime(main_cf, (time.time() - 60, time.time() - 60))
    return str(confdir)


@pytest.fixture
def postfix_postmap(postfix_confdir):
    """``postfix_postmap(spec, keys)`` -> {key: value or None} from Postfix's own
    ``postmap -q - spec`` (one run for all keys; a key holding a newline gets its own)."""
    def run(spec: str, args: list[str], stdin: str | None) -> str:
        done = subprocess.run([POSTFIX_POSTMAP, "-c", postfix_confdir, *args, spec], input=stdin,
                              capture_output=True, text=True, timeout=10)
        assert done.returncode in (0, 1), done.stderr
        return done.stdout

    def query(spec: str, keys: list[str]) -> dict[str, str | None]:
        answers = dict.fromkeys(keys)
        batch = [k for k in keys if "\n" not in k]
        for line in run(spec, ["-q", "-"], "".join(k + "\n" for k in batch)).splitlines():
            key, _, value = line.partition("\t")
            answers[key] = value
        for key in set(keys) - set(batch):
            answers[key] = run(spec, ["-q", key], None).rstrip("\n") or None
        return answers
    return query


@pytest.fixture
def postfix_map_types(postfix_confdir):
    """The table types this Postfix supports (postconf -m)."""
    done = subprocess.run(["postconf", "-c", postfix_confdir, "-m"], capture_output=True,
                          text=True, timeout=10)
    return set(done.stdout.split())
