"""Running without root: the workers as ``mail_owner``.

Started as root, the master binds the ports, takes the master lock, opens
the log and builds the TLS contexts, and stays root (as Postfix's master)
so that a reload can bind a new port; every worker it forks gives up root
(:func:`drop`) before it opens its queue or accepts a connection, after a
chroot into the queue directory when master.cf asks for one
(relayd.chroot). Started as any other user, relayd makes no privilege step
at all.

The queue directory is set up as Postfix's ``postfix-files`` sets its queue
for mail_owner (:func:`prepare_queue`): the workers own their queues, mode
0700, and nothing else may read them. ``master.lock`` stays root's.
"""
from __future__ import annotations

import logging
import os
import pwd
import stat

from relayd import chroot
from relayd.config import ConfigError
from relayd.maildrop import MAILDROP, WAKE_SOCKET
from relayd.queue.lock import MASTER_LOCK

# The directories local users reach (sendmail: maildrop/, public/pickup): pickup sets their modes.
_LOCAL_DOORS = (MAILDROP, os.path.dirname(WAKE_SOCKET))

log = logging.getLogger("relayd.master")

JAIL_ETC = "etc"


def mail_owner(config) -> pwd.struct_passwd | None:
    """The account the workers run as, or None when there is no privilege step
    (relayd was not started as root, or mail_owner is root itself, which only
    a test rig should configure). An unknown user is a configuration error."""
    if os.geteuid() != 0:
        return None
    name = config["mail_owner"]
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"parameter mail_owner: unknown user name value: {name} "
                          f"(create it, e.g. with systemd-sysusers)") from None
    return account if account.pw_uid != 0 else None


def prepare_queue(config) -> None:
    """Create the queue directory, and when workers run as mail_owner give them
    its tree (each entry still owned otherwise, never through a symlink);
    directories mode 0700, but those local users must reach (sendmail): the
    queue directory itself 0711 (traverse, no listing), maildrop/ and public/
    as pickup made them."""
    directory = config["queue_directory"]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    account = mail_owner(config)
    if account is None:
        return
    uid, gid = account.pw_uid, account.pw_gid
    for top, dirs, files in os.walk(directory, followlinks=False):
        if top == directory and JAIL_ETC in dirs:
            dirs.remove(JAIL_ETC)   # a chroot's copy of system files: root's (relayd.chroot)
        _own(top, uid, gid, mode=_directory_mode(directory, top))
        for name in files:
            if not (top == directory and name == MASTER_LOCK):
                _own(os.path.join(top, name), uid, gid)
        for name in dirs:
            if os.path.islink(os.path.join(top, name)):
                _own(os.path.join(top, name), uid, gid)


def _directory_mode(queue_directory: str, path: str) -> int | None:
    """The mode a directory of the queue tree gets; None: leave it (pickup's own)."""
    if path == queue_directory:
        return 0o711
    if os.path.dirname(path) == queue_directory and os.path.basename(path) in _LOCAL_DOORS:
        return None
    return 0o700


def _own(path: str, uid: int, gid: int, mode: int | None = None) -> None:
    st = os.lstat(path)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def drop(config, jail: str | None = None) -> None:
    """Become mail_owner for good (groups, gid, then uid), when started as root;
    first chroot into ``jail`` when given (relayd.chroot.enter)."""
    account = mail_owner(config)
    if account is None:
        return
    groups = os.getgrouplist(account.pw_name, account.pw_gid)   # /etc/group is outside the jail
    if jail is not None:
        chroot.enter(jail)
    become(account.pw_uid, account.pw_gid, groups)


def become(uid: int, gid: int, groups: list[int]) -> None:
    """Take ``uid``, ``gid`` and supplementary ``groups`` for good (real, effective
    and saved: no way back); PermissionError when root remains."""
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.geteuid() == 0 or os.getuid() == 0:  # never go on as root by mistake
        raise PermissionError(f"cannot drop privileges to uid {uid}")
