"""The maildrop: where ``sendmail`` leaves mail for the running relayd (Postfix's
postdrop -> pickup path), and the one format both sides agree on.

``$queue_directory/maildrop`` is mode 1733 owned by the mail system: anyone
may create a file there, nobody but the owner may list it, and the sticky
bit keeps users from removing or renaming each other's files. relayd has no
setgid helper (Postfix's postdrop is setgid postdrop, its maildrop 0730),
because a Python console script cannot be setgid; a world-writable sticky
directory is what Postfix itself used before postdrop, and every check
below is made by the reader, who trusts nothing in the file but its bytes.

A file is written whole under a name starting with "." and renamed to its
final name (random, 128 bits) only when complete and fsync'ed; pickup
takes only final names. Layout: the MAGIC line, one line of JSON (the
envelope: sender, recipients, full name, ESMTP parameters), then the
message in SMTP wire form (CRLF lines, dot-stuffed, no final dot).

The reader (:func:`read`) takes the file's owner from fstat, never from
its content, and refuses anything but a regular, single-link file of a
bounded size in this format.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field

MAILDROP = "maildrop"
WAKE_SOCKET = os.path.join("public", "pickup")   # a datagram here makes pickup look now
MAGIC = b"relayd-maildrop 1\n"
MAX_ENVELOPE = 1 << 20          # bytes of the JSON line: sender, recipients, parameters
MAILDROP_MODE = 0o1733
TEMP_PREFIX = "."


class BadMaildropFile(ValueError):
    """A maildrop file that is not (or no longer) one sendmail wrote: never trusted."""


@dataclass
class Submission:
    """One message as sendmail hands it over."""

    sender: str
    recipients: list[str]
    content: bytes                 # SMTP wire form
    full_name: str = ""
    params: dict = field(default_factory=dict)   # RET, ENVID, NOTIFY (sendmail -R, -V, -N)
    uid: int = -1                  # the file's owner (set by read(), never from the file)
    mtime: float = 0.0


def directory(queue_directory: str) -> str:
    return os.path.join(queue_directory, MAILDROP)


def write(maildrop: str, sub: Submission) -> str:
    """Write ``sub`` into ``maildrop`` atomically (complete, synced, then renamed);
    the final path. OSError when the directory is not there or not writable."""
    head = json.dumps({"sender": sub.sender, "recipients": sub.recipients,
                       "full_name": sub.full_name, "params": sub.params}).encode()
    name = secrets.token_hex(16).upper()
    temp = os.path.join(maildrop, TEMP_PREFIX + name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + head + b"\n")
            f.write(sub.content)
            f.flush()
            os.fsync(f.fileno())
        final = os.path.join(maildrop, name)
        os.rename(temp, final)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return final


def read(path: str, max_content: int) -> Submission:
    """The submission in ``path``; BadMaildropFile when it is not a regular
    file with one link, is larger than ``max_content`` (0: no limit) plus the
    envelope, or not in the format."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise BadMaildropFile(f"cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise BadMaildropFile("not a regular file with one link")
        limit = len(MAGIC) + MAX_ENVELOPE + 1 + max_content if max_content else None
        if limit is not None and st.st_size > limit:
            raise BadMaildropFile(f"file size {st.st_size} exceeds the limit")
        data = f.read(limit + 1 if limit is not None else -1)
    if limit is not None and len(data) > limit:
        raise BadMaildropFile("file grew beyond the limit")
    return _parse(data, st)


def _parse(data: bytes, st: os.stat_result) -> Submission:
    if not data.startswith(MAGIC):
        raise BadMaildropFile("unexpected file format")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_ENVELOPE + 1)
    if end < 0:
        raise BadMaildropFile("envelope missing or too long")
    try:
        head = json.loads(data[len(MAGIC):end])
        sender, recipients = head["sender"], head["recipients"]
        full_name, params = head.get("full_name", ""), head.get("params", {})
    except (ValueError, KeyError, TypeError):
        raise BadMaildropFile("malformed envelope") from None
    if not (isinstance(sender, str) and isinstance(full_name, str) and isinstance(params, dict)
            and isinstance(recipients, list) and recipients
            and all(isinstance(r, str) and r for r in recipients)
            and all(isinstance(v, str) for v in params.values())):
        raise BadMaildropFile("malformed envelope")
    return Submission(sender, recipients, data[end + 1:], full_name,
                      {str(k): v for k, v in params.items()}, st.st_uid, st.st_mtime)


def listing(maildrop: str) -> list[tuple[str, os.stat_result, Submission]]:
    """(name, stat, envelope) of each complete file in ``maildrop``, for mailq: only
    the envelope line is read (the Submission's content is empty); files that
    are not in the format, or vanish meanwhile (picked up), are left out."""
    try:
        names = [n for n in os.listdir(maildrop) if not n.startswith(TEMP_PREFIX)]
    except OSError:
        return []
    out = []
    for name in names:
        try:
            fd = os.open(os.path.join(maildrop, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                continue
            head = f.read(len(MAGIC) + MAX_ENVELOPE + 1)
        try:
            sub = _parse(head, st)
        except BadMaildropFile:
            continue
        sub.content = b""
        out.append((name, st, sub))
    return out

