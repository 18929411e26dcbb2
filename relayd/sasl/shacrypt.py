"""crypt(3) SHA-512 ("$6$", Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512").

What ``mkpasswd -m sha-512``, ``openssl passwd -6`` and ``doveadm pw -s
SHA512-CRYPT`` write, made and checked in pure Python (the crypt module is
deprecated in Python 3.11 and gone in 3.13). Verification costs ``rounds``
SHA-512 computations: the caller runs it off the event loop, and a hash asking
for more than :data:`MAX_ROUNDS` is refused rather than computed.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["MAX_ROUNDS", "DEFAULT_ROUNDS", "sha512_crypt", "verify", "make_hash"]

DEFAULT_ROUNDS = 5000
MIN_ROUNDS = 1000
# A table entry with rounds=999999999 would pin a CPU for minutes per AUTH attempt.
MAX_ROUNDS = 500_000
_SALT_MAX = 16
_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PREFIX = "$6$"
_SCHEME = "{SHA512-CRYPT}"   # doveadm pw's scheme prefix, accepted in a table too
# The byte order in which the final digest is written, three bytes a time.
_ORDER = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
          (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
          (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38),
          (18, 39, 60), (40, 61, 19), (62, 20, 41))


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // 64 + 1))[:length]


def _digest(password: bytes, salt: bytes, rounds: int) -> bytes:
    sha512 = hashlib.sha512
    b = sha512(password + salt + password).digest()
    a = sha512(password + salt + _repeat(b, len(password)))
    n = len(password)
    while n:
        a.update(b if n & 1 else password)
        n >>= 1
    c = a.digest()
    p = _repeat(sha512(password * len(password)).digest(), len(password))
    s = _repeat(sha512(salt * (16 + c[0])).digest(), len(salt))
    # Round i hashes (odd i) P [S] [P] C or (even i) C [S] [P] P, with S when
    # i % 3 and the middle P when i % 7: the four middles are prepared once.
    middles = {(m3, m7): (s if m3 else b"") + (p if m7 else b"")
               for m3 in (False, True) for m7 in (False, True)}
    for i in range(rounds):
        middle = middles[bool(i % 3), bool(i % 7)]
        c = sha512(p + middle + c).digest() if i & 1 else sha512(c + middle + p).digest()
    return c


def _encode(c: bytes) -> str:
    out = []
    for x, y, z in _ORDER:
        w = (c[x] << 16) | (c[y] << 8) | c[z]
        for _ in range(4):
            out.append(_ITOA64[w & 0x3F])
            w >>= 6
    w = c[63]
    out += [_ITOA64[w & 0x3F], _ITOA64[w >> 6]]
    return "".join(out)


def _parse(hashed: str) -> tuple[str, int, bool, str] | None:
    """(salt, rounds, rounds written, digest) of a "$6$" string, or None."""
    if hashed.startswith(_SCHEME):
        hashed = hashed[len(_SCHEME):]
    if not hashed.startswith(_PREFIX):
        return None
    rest = hashed[len(_PREFIX):]
    rounds, explicit = DEFAULT_ROUNDS, False
    if rest.startswith("rounds="):
        value, sep, rest = rest[len("rounds="):].partition("$")
        if not sep or not value.isascii() or not value.isdigit() or len(value) > 9:
            return None
        rounds, explicit = max(MIN_ROUNDS, int(value)), True
    salt, sep, digest = rest.partition("$")
    if not sep or len(salt) > _SALT_MAX or len(digest) != 86:
        return None
    return salt, rounds, explicit, digest


def sha512_crypt(password: bytes, salt: str, rounds: int | None = None) -> str:
    """The "$6$[rounds=N$]salt$digest" string of ``password`` (rounds written only when given)."""
    explicit = rounds is not None
    rounds = min(max(MIN_ROUNDS, DEFAULT_ROUNDS if rounds is None else rounds), 999_999_999)
    salt = salt.split("$", 1)[0][:_SALT_MAX]
    head = f"{_PREFIX}rounds={rounds}$" if explicit else _PREFIX
    return f"{head}{salt}${_encode(_digest(password, salt.encode(), rounds))}"


def verify(password: bytes, hashed: str) -> bool:
    """True when ``hashed`` ("$6$..." or "{SHA512-CRYPT}$6$...") is ``password``'s hash.

    False for anything else, including a hash with more than MAX_ROUNDS rounds."""
    parsed = _parse(hashed.strip())
    if parsed is None:
        return False
    salt, rounds, explicit, digest = parsed
    if rounds > MAX_ROUNDS:
        return False
    mine = _encode(_digest(password, salt.encode(), rounds))
    return hmac.compare_digest(mine.encode(), digest.encode("ascii", "replace"))


def make_hash(password: bytes) -> str:
    """A new "$6$" hash of ``password`` with a random 16-character salt and 5000 rounds."""
    salt = "".join(secrets.choice(_ITOA64) for _ in range(_SALT_MAX))
    return sha512_crypt(password, salt)
