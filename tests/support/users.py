"""System users for the tests that change users (run as root): created once
with useradd, named ``relaydt...``, and left in place for the next run."""
from __future__ import annotations

import pwd
import subprocess


def system_user(name: str) -> pwd.struct_passwd:
    """The account ``name`` (a ``relaydt`` name), created with a home directory
    under /home when missing."""
    assert name.startswith("relaydt"), "test users are named relaydt..."
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    done = subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    try:
        return pwd.getpwnam(name)
    except KeyError:   # not made, and not by a concurrent run either
        raise RuntimeError(f"useradd {name}: {done.stderr}") from None
