"""A private MariaDB server for the mysql: table tests (Debian's mariadb-server).

:class:`MariaDB` runs ``mariadbd`` as an unprivileged process (the ``mysql``
user, or ``nobody``, when the tests run as root; else the current user) on a
data directory of its own under /tmp, listening on a loopback TCP port and a
UNIX socket; it never touches the system's server, its socket or its files
(``--no-defaults``: no /etc/mysql/my.cnf). ``mariadb-install-db`` runs once
per test session (:func:`template_datadir`); each server starts from a copy
of that template, so a second server costs a copy and a start. The schema
and the rows every test reads are :data:`SCHEMA` and :data:`ROWS`, loaded by
:meth:`MariaDB.load`; each server gets its own copy (two servers with the same
data: the failover pair).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.relayd_proc import free_port

USER, PASSWORD, DBNAME = "relayd", "s3cret", "mail"

SCHEMA = [
    f"CREATE DATABASE {DBNAME}",
    f"CREATE TABLE {DBNAME}.relay_recipients (address VARCHAR(255) PRIMARY KEY,"
    " status VARCHAR(16), action VARCHAR(64))",
    f"CREATE TABLE {DBNAME}.aliases (alias VARCHAR(255), goto VARCHAR(255), note VARCHAR(64))",
    f"CREATE TABLE {DBNAME}.domains (domain VARCHAR(255) PRIMARY KEY, transport VARCHAR(255))",
    f"CREATE TABLE {DBNAME}.access (client VARCHAR(255) PRIMARY KEY, action VARCHAR(255))",
    # Read-only, as a lookup table's account should be.
    f"CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}'",
    f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'",
    f"GRANT SELECT ON {DBNAME}.* TO '{USER}'@'localhost'",
    f"GRANT SELECT ON {DBNAME}.* TO '{USER}'@'127.0.0.1'",
]

ROWS = [
    # The seed's customers: only those who paid are valid recipients.
    f"INSERT INTO {DBNAME}.relay_recipients VALUES ('ann@relay.example', 'paid', 'OK'),"
    " ('bob@relay.example', 'unpaid', 'OK'), ('carol@relay.example', 'paid', 'OK'),"
    " ('a\\\\b@relay.example', 'paid', 'OK')",
    f"INSERT INTO {DBNAME}.aliases VALUES ('team@relay.example', 'ann@relay.example', NULL),"
    " ('team@relay.example', 'carol@relay.example', ''),"
    " ('info@relay.example', 'ann@relay.example', 'x'), ('ann', 'ann@relay.example', NULL),"
    " ('@other.example', 'catchall@relay.example', NULL)",
    f"INSERT INTO {DBNAME}.domains VALUES ('relay.example', 'smtp:[inside.relay.example]'),"
    " ('example', 'tld'), ('mail.relay.example', 'sub')",
    f"INSERT INTO {DBNAME}.access VALUES ('blocked@evil.example', 'REJECT go away'),"
    " ('evil.example', '550 5.7.1 no thanks')",
]


def mariadb_binaries() -> tuple[str, str] | None:
    """(mariadbd, mariadb-install-db), or None when mariadb-server is not installed."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin"
    server = shutil.which("mariadbd", path=path) or shutil.which("mysqld", path=path)
    install = (shutil.which("mariadb-install-db", path=path)
               or shutil.which("mysql_install_db", path=path))
    return (server, install) if server and install else None


def _run_as() -> list[str]:
    """``--user=`` for a root test run (mariadbd refuses to run as root)."""
    if os.getuid() != 0:
        return []
    for name in ("mysql", "nobody"):
        try:
            pwd.getpwnam(name)
            return [f"--user={name}"]
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user (mysql, nobody) to run mariadbd as")


def _own(path: Path) -> None:
    """Give *path* (recursively) to the user mariadbd runs as."""
    user = _run_as()
    if user:
        subprocess.run(["chown", "-R", user[0].split("=", 1)[1], str(path)], check=True)


def template_datadir(base: Path) -> Path:
    """An initialised, empty data directory (mariadb-install-db), made once."""
    _, install = mariadb_binaries()
    datadir = base / "template"
    _own(base)
    done = subprocess.run([install, "--no-defaults", f"--datadir={datadir}", *_run_as(),
                           "--auth-root-authentication-method=normal", "--skip-test-db",
                           "--skip-name-resolve"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed:\n{done.stdout}\n{done.stderr}")
    return datadir


class MariaDB:
    """One private server: ``start()``, ``kill()`` (SIGKILL, as a crash), ``stop()``."""

    def __init__(self, template: Path, name: str, certs=None):
        base = template.parent
        self.directory = base / name
        shutil.copytree(template, self.directory / "data", symlinks=True)
        (self.directory / "tmp").mkdir()
        self.tls = []
        if certs is not None:     # TLS too: the CA and the "server" certificate (127.0.0.1)
            for option, source in (("ca", certs.cert("ca")), ("cert", certs.cert("server")),
                                   ("key", certs.key("server"))):
                copy = self.directory / f"tls-{option}.pem"
                shutil.copyfile(source, copy)
                self.tls.append(f"--ssl-{option}={copy}")
        _own(self.directory)
        self.socket = str(self.directory / "mysqld.sock")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "MariaDB":
        server, _ = mariadb_binaries()
        self.proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={self.directory / 'data'}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={self.directory / 'mysqld.pid'}", f"--tmpdir={self.directory / 'tmp'}",
             f"--log-error={self.directory / 'error.log'}", *_run_as(), "--skip-name-resolve",
             "--skip-log-bin", "--performance-schema=OFF", "--innodb-buffer-pool-size=16M",
             "--innodb-flush-log-at-trx-commit=2", "--max-connections=500", *self.tls],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mariadbd did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        import pymysql
        try:
            pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=2).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def sql(self, *statements: str) -> list[tuple]:
        """Run *statements* as root; the rows of the last one."""
        import pymysql
        conn = pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def load(self) -> "MariaDB":
        """The test schema, user and rows."""
        self.sql(*SCHEMA, *ROWS)
        return self

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, as in a crash (restart with start())."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        try:
            return (self.directory / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def table_file(self, path: Path, body: str, *, tcp: bool = True) -> str:
        """Write a mysql_table(5) file that reaches this server; its path."""
        hosts = f"inet:127.0.0.1:{self.port}" if tcp else f"unix:{self.socket}"
        Path(path).write_text(f"hosts = {hosts}\nuser = {USER}\npassword = {PASSWORD}\n"
                              f"dbname = {DBNAME}\n{body}")
        return str(path)


def private_base() -> Path:
    """A directory under /tmp that an unprivileged mariadbd can reach (pytest's
    tmp_path lives under a root-only directory when the tests run as root)."""
    base = Path(tempfile.mkdtemp(prefix="relayd-mariadb-"))
    base.chmod(0o755)
    return base
