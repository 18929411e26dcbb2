"""Workers in a chroot jail: master.cf's chroot column, applied to the queue directory.

Postfix chroots each daemon whose master.cf line says ``y`` into
``$queue_directory``. A relayd worker is a whole relay serving every
smtpd service, so the rule is per worker: the workers chroot when every
``inet`` smtpd service of master.cf says ``y``; a mix is warned about and
nothing is chrooted (the column of other services, which relayd does not
run as processes, is ignored). A chroot also needs a privilege step (started
as root, mail_owner not root: root escapes a chroot), else it is warned
about and skipped.

A jailed worker works in the queue directory from before it builds its
relay (``queue_directory`` becomes ``.``), so every queue path means the
same before and after the chroot. What lives outside is read before
:func:`enter`: the modules it could import later, the hooks that objects
registered with :func:`before_entering` (the DNS servers of resolv.conf,
/etc/hosts, unix:passwd.byname, smtp_tls_CAfile), the log socket and the
TLS server contexts (opened by the master). Inside, files outside are not
re-read on change (:func:`jailed`): ``relayd reload`` starts new workers,
which read them again. docs/operations.md ("Privileges") has the list.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import os
import pkgutil
import weakref

__all__ = ["before_entering", "enter", "jail_directory", "jailed", "prepare", "queue_relative"]

log = logging.getLogger("relayd.master")

# Modules the standard library imports on first use that a worker may need after
# the chroot, where the Python installation is out of reach: DSN composition
# (email), header decoding (codecs), the client's connection setup.
_STDLIB = ("email.mime.multipart", "email.mime.text", "email.mime.message", "email.policy",
           "email.headerregistry", "email.generator", "email.charset", "email.quoprimime",
           "email.base64mime", "email.encoders", "email.utils", "email.parser",
           "email.feedparser", "email._header_value_parser", "encodings.ascii",
           "encodings.utf_8", "encodings.latin_1", "encodings.idna", "encodings.punycode",
           "encodings.cp1252", "encodings.utf_16", "encodings.utf_32", "ipaddress", "uuid",
           "json", "zlib", "hmac", "hashlib", "base64", "quopri", "calendar", "locale",
           "pickle")   # gevent's threadpool pickles the traceback of a failed call

#: What the C library reads to resolve a name (getaddrinfo: a relayhost = [host]):
#: copied into ``$queue_directory/etc`` at each jailed worker's start, as Debian's
#: Postfix scripts copy them into its chroot.
SYSTEM_FILES = ("hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf", "services")

_hooks: list = []
_jailed = False


def jail_directory(config, *, warn: bool = False) -> str | None:
    """The directory the workers chroot into ($queue_directory), or None;
    ``warn``: log why a chroot asked for in master.cf is not applied."""
    from relayd.config.mastercf import is_listener
    from relayd.privileges import mail_owner
    listeners = [s for s in config.services if is_listener(s)]
    asked = [s for s in listeners if s.chroot == "y"]
    if not asked:
        return None
    reason = None
    if len(asked) != len(listeners):
        other = next(s for s in listeners if s.chroot != "y")
        reason = (f"not every smtpd service says y (service {other.name} does not), and "
                  "each worker serves all of them")
    elif os.geteuid() != 0:
        reason = "relayd was not started as root"
    elif mail_owner(config) is None:
        reason = "mail_owner is root, which a chroot does not contain"
    if reason is None:
        return config["queue_directory"]
    if warn:
        for service in asked:
            log.warning("%s: line %s: service %s: chroot ignored: %s; the workers run "
                        "without chroot", service.file, service.line, service.name, reason)
    return None


def queue_relative(config):
    """Work in the queue directory and name it ``.``: its paths then mean the
    same before and after the chroot; the configuration to build the relay from."""
    os.chdir(config["queue_directory"])
    return config.with_overrides({"queue_directory": "."})


def before_entering(hook) -> None:
    """Run ``hook()`` just before the chroot: load what lives outside. A bound
    method is held weakly: a discarded object's hook is not run."""
    _hooks.append(weakref.WeakMethod(hook) if inspect.ismethod(hook) else lambda: hook)


def prepare(configurations) -> None:
    """Before entering: build now, for each of ``configurations``, every part
    that is built on first use per configuration (relayd.config.derived.PerConfig:
    recipient tables, access tables, header checks...): they open files."""
    before_entering(lambda: _build_per_config(configurations))


def _build_per_config(configurations) -> None:
    from relayd.config.derived import PerConfig
    classes, pending = [], list(PerConfig.__subclasses__())
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    for config in configurations:
        for cls in classes:
            cls.of(config)


def jailed() -> bool:
    """This process is in its chroot: files outside are as they were read before."""
    return _jailed


def enter(directory: str) -> None:
    """Load what lives outside, then chroot into ``directory`` (as root, before
    the privilege drop) and make it the working directory."""
    global _jailed
    _import_everything()
    _copy_system_files(directory)
    for ref in _hooks:   # including those a hook adds (the tables a part opens)
        hook = ref()
        if hook is not None:
            hook()
    _hooks.clear()
    os.chroot(directory)
    os.chdir("/")
    _jailed = True


def _copy_system_files(directory: str) -> None:
    """/etc's SYSTEM_FILES into DIRECTORY/etc, root's (mode 0755 and 0644). The queue
    tree is mail_owner's: nothing there is followed or written through a symlink
    (each file is written beside its place and renamed over it)."""
    top = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.mkdir("etc", 0o755, dir_fd=top)
        except FileExistsError:
            pass
        etc = os.open("etc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      dir_fd=top)
    finally:
        os.close(top)
    try:
        os.fchown(etc, 0, 0)
        os.fchmod(etc, 0o755)
        for name in SYSTEM_FILES:
            try:
                with open(f"/etc/{name}", "rb") as f:
                    data = f.read()
            except OSError:
                continue   # not on this system
            staging = f".{name}.{os.getpid()}"
            try:   # whatever is there (a link planted before etc/ was root's) goes
                os.unlink(staging, dir_fd=etc)
            except FileNotFoundError:
                pass
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=etc)
            try:
                os.fchmod(fd, 0o644)
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(staging, name, src_dir_fd=etc, dst_dir_fd=etc)
    finally:
        os.close(etc)


def _import_everything() -> None:
    """Every relayd module and the standard library modules in _STDLIB."""
    import relayd
    for info in pkgutil.walk_packages(relayd.__path__, "relayd."):
        if info.name.startswith(("relayd.cli", "relayd.testing", "relayd.__main__")):
            continue   # commands and test helpers: never run in a worker
        try:
            importlib.import_module(info.name)
        except ImportError:
            continue   # an optional library not installed: what needs it cannot be configured
    for name in _STDLIB:
        importlib.import_module(name)
