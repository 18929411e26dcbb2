"""``relayd passwd``: read a password on stdin, print its crypt(3) SHA-512 hash.

The line printed is a value for relayd_sasl_password_maps (``user  $6$...``
in the table's source file, then ``relayd postmap``). Only the first line of
stdin is the password (its line ending removed), so ``echo pw | relayd
passwd`` and a password typed at a terminal both work; an empty password
is refused.
"""
from __future__ import annotations

import sys

from relayd.sasl.shacrypt import make_hash

EX_USAGE = 64
EX_DATAERR = 65


def main(args: list[str], stdin=None, stdout=None) -> int:
    """The command: 0 with the hash printed, 64 on arguments, 65 on an empty password."""
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    if args:
        print("usage: relayd passwd < password", file=sys.stderr)
        return EX_USAGE
    password = stdin.readline().rstrip(b"\r\n")
    if not password:
        print("relayd: fatal: empty password", file=sys.stderr)
        return EX_DATAERR
    print(make_hash(password), file=stdout)
    return 0
