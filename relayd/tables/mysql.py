"""``mysql:/etc/relayd/x.cf``: lookups in MySQL or MariaDB (mysql_table(5)).

The file is read as Postfix's dict_mysql.c reads it (relayd/tables/mysql_cf.py:
settings, the query and result templates); every lookup asks the database,
so a row changed there is used by the next lookup. docs/mysql.md is the
operator's guide.

PyMySQL blocks, and relayd never monkey-patches: each query runs in a thread
of a gevent ThreadPool while the calling greenlet waits and the others go on.
The tables that name the same servers with the same credentials share one
:class:`ServerSet` per process: ``relayd_mysql_pool_size`` connections at
most, as many threads, and the hosts' state. Hosts are chosen as dict_mysql.c
chooses them: a host with a working connection first (UNIX sockets before
TCP, random among equals), else one not known to be down; a host that fails
is skipped for a while and the same lookup goes on at once with the next
host. A host is first skipped for 1 s, then twice as long after each new
failure, at most ``retry_interval`` (Postfix: always ``retry_interval``), so a
database back after a restart is used again within seconds. A pooled
connection that turns out broken (the server restarted, a proxy dropped it)
is replaced by a new connection to the same host at once. Every connect and
every query has a deadline (``relayd_mysql_connect_timeout``,
``relayd_mysql_query_timeout``). No host left to ask: TemporaryLookupError,
which the caller answers with a 4xx.
"""
from __future__ import annotations

import logging
import os
import random
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import gevent
import pymysql
from gevent.lock import BoundedSemaphore
from gevent.threadpool import ThreadPool
from pymysql.charset import charset_by_name
from pymysql.constants import CLIENT, SERVER_STATUS
from pymysql.converters import escape_string

from relayd.config import ConfigError
from relayd.params import typed_default
from relayd.tables.base import Table, TableUnavailable, TemporaryLookupError
from relayd.tables.mysql_cf import Host, Settings, read_settings

log = logging.getLogger("relayd.tables")

UNTRIED, ACTIVE, FAILED = "untried", "active", "failed"
# A failed host is skipped this long first, then twice as long each time, up to retry_interval.
FIRST_RETRY = 1.0
# At most this many answers kept when relayd_mysql_cache_time is set.
CACHE_SIZE = 10000
_TLS = (("tls_CAfile", "ca"), ("tls_CApath", "capath"), ("tls_cert_file", "cert"),
        ("tls_key_file", "key"), ("tls_ciphers", "cipher"))


class QueryFailed(Exception):
    """The server did not give one usable result set (dict_mysql.c's "query failed")."""


@dataclass(frozen=True)
class Options:
    """What a connection is made with; tables with equal options share a ServerSet."""

    hosts: tuple[Host, ...]
    user: str
    password: str = field(repr=False)
    dbname: str
    charset: str
    option_file: str | None
    option_group: str
    tls: tuple[tuple[str, object], ...]
    pool_size: int
    connect_timeout: int
    query_timeout: int
    idle_interval: int
    retry_interval: int

    @classmethod
    def of(cls, settings: Settings, config) -> "Options":
        tls = [(key, settings[name]) for name, key in _TLS if settings[name]]
        verify = settings.flag("tls_verify_cert")
        if tls or verify is not None:
            tls.append(("verify", bool(verify)))
        return cls(settings.hosts, settings["user"], settings["password"], settings["dbname"],
                   settings["charset"], settings["option_file"], settings["option_group"],
                   tuple(tls), _param(config, "relayd_mysql_pool_size"),
                   _param(config, "relayd_mysql_connect_timeout"),
                   _param(config, "relayd_mysql_query_timeout"),
                   settings.number("idle_interval", 1), settings.number("retry_interval", 1))

    def connect(self, host: Host) -> pymysql.connections.Connection:
        """A new connection to *host* (blocking: runs in a pool thread)."""
        where = ({"unix_socket": host.unix_socket} if host.is_unix
                 else {"host": host.host, "port": host.port})
        if self.option_file:
            where.update(read_default_file=self.option_file,
                         read_default_group=self.option_group or "client")
        tls = {"ssl": tls_context(self.tls)} if self.tls else {"ssl_disabled": True}
        return pymysql.connect(
            user=self.user or None, password=self.password, database=self.dbname,
            charset=self.charset, connect_timeout=self.connect_timeout,
            read_timeout=self.query_timeout, write_timeout=self.query_timeout,
            autocommit=True, client_flag=CLIENT.MULTI_RESULTS, **where, **tls)


@lru_cache(maxsize=64)
def tls_context(tls: tuple[tuple[str, object], ...]) -> ssl.SSLContext:
    """The client TLS context of the tls_* settings: TLS is then required. With
    tls_CAfile or tls_CApath the server's certificate must chain to them; with
    tls_verify_cert = yes its name must match the host's too (the system's CAs
    when none is given); otherwise the certificate is not checked."""
    opts = dict(tls)
    ctx = ssl.create_default_context(cafile=opts.get("ca"), capath=opts.get("capath"))
    ctx.check_hostname = bool(opts["verify"])
    if not (opts["verify"] or "ca" in opts or "capath" in opts):
        ctx.verify_mode = ssl.CERT_NONE
    if "cert" in opts:
        ctx.load_cert_chain(opts["cert"], keyfile=opts.get("key"))
    if "cipher" in opts:
        ctx.set_ciphers(opts["cipher"])
    return ctx


def _param(config, name: str):
    return config[name] if config is not None else typed_default(name)


def quote(conn, text: str) -> str:
    """*text* escaped for a quoted SQL string on *conn* (mysql_real_escape_string)."""
    if conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return text.replace("'", "''")
    return escape_string(text)


def execute(conn, sql_for, require_result_set: bool) -> tuple:
    """The rows of the one result set the query returns (blocking: a pool thread)."""
    first = None
    with conn.cursor() as cursor:
        cursor.execute(sql_for(conn))
        while True:
            if cursor.description is not None:
                if first is not None:
                    raise QueryFailed("multiple result sets returning data are not supported")
                first = cursor.fetchall()
            if not cursor.nextset():
                break
    if first is None and require_result_set:
        raise QueryFailed("query returned no result set(require_result_set = yes)")
    return first or ()


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:     # already broken: nothing left to tell the server
        pass


def _reason(exc: Exception) -> str:
    """mysql_error()'s text: PyMySQL's errors are (code, message)."""
    args = getattr(exc, "args", ())
    return str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(exc)


class HostState:
    """One host of a server set: dict_mysql.c's HOST, with idle pooled connections."""

    __slots__ = ("host", "state", "retry_at", "failures", "idle", "busy")

    def __init__(self, host: Host):
        self.host = host
        self.state = UNTRIED
        self.retry_at = 0.0
        self.failures = 0
        self.idle: list[tuple[object, float]] = []   # (connection, idle since)
        self.busy = 0

    def usable(self, now: float) -> bool:
        return self.state != FAILED or self.retry_at <= now


class _Lease:
    """One of the set's connection slots, held by a lookup. A lookup stopped
    while a pool thread still works for it (a check's timeout) hands the slot
    on to that job, which gives it back, and closes its connection, when done."""

    __slots__ = ("slots", "held")

    def __init__(self, slots: BoundedSemaphore):
        self.slots, self.held = slots, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()

    def hand_to(self, job, conn, servers: "ServerSet") -> None:
        self.held = False

        def done(job):
            spare = conn if conn is not None else (job.value if job.successful() else None)
            if spare is not None:
                servers.discard([spare])
            self.slots.release()
        job.rawlink(lambda job: gevent.spawn(done, job))


class ServerSet:
    """The hosts, connections and threads that tables with the same Options share."""

    def __init__(self, options: Options):
        self.options = options
        self._pid = None

    def _fresh(self) -> None:
        # First use in this process (after a fork, what the parent held is not ours).
        self._pid = os.getpid()
        self.hosts = [HostState(h) for h in self.options.hosts]
        self._slots = BoundedSemaphore(self.options.pool_size)
        self._threads = ThreadPool(self.options.pool_size)
        interval = max(1.0, self.options.idle_interval / 2)
        self._sweeper = gevent.get_hub().loop.timer(interval, interval, ref=False)
        self._sweeper.start(lambda: gevent.spawn(self._sweep))

    def query(self, spec: str, sql_for, require_result_set: bool) -> tuple:
        """The rows for the query ``sql_for(conn)`` makes; TemporaryLookupError
        when no host answers."""
        if self._pid != os.getpid():
            self._fresh()
        if not self._slots.acquire(timeout=self.options.query_timeout):
            raise TemporaryLookupError(f"{spec}: all {self.options.pool_size} database "
                                       f"connections stayed busy")
        lease = _Lease(self._slots)
        try:
            tried: set[int] = set()
            while (host := self._pick(tried)) is not None:
                tried.add(id(host))
                rows = self._on_host(host, spec, sql_for, require_result_set, lease)
                if rows is not None:
                    return rows
            raise TemporaryLookupError(f"{spec}: no database server answered")
        finally:
            lease.release()

    def _pick(self, tried: set[int]) -> HostState | None:
        """A host with a working connection, else one not known down; UNIX sockets first."""
        now = time.monotonic()
        for states in ((ACTIVE,), (UNTRIED, FAILED)):
            for unix in (True, False):
                hosts = [h for h in self.hosts if h.state in states and h.host.is_unix == unix
                         and id(h) not in tried and h.usable(now)]
                if hosts:
                    return random.choice(hosts)
        return None

    def _on_host(self, host: HostState, spec, sql_for, require, lease) -> tuple | None:
        """The rows from *host*, or None when it failed (and is now skipped)."""
        conn = self._idle(host)
        pooled = conn is not None
        while True:
            if conn is None:
                try:
                    conn = self._run(lease, None, self.options.connect, host.host)
                except Exception as exc:
                    log.warning("connect to mysql server %s: %s", host.host.text, _reason(exc))
                    self._down(host)
                    return None
                host.state, host.failures = ACTIVE, 0
            host.busy += 1
            try:
                rows = self._run(lease, conn, execute, conn, sql_for, require)
            except Exception as exc:
                log.warning("%s: query failed: %s", spec, _reason(exc))
                answered = conn.open      # False: the connection broke (PyMySQL closed it)
                self.discard([conn])
                if answered:
                    # The server answered with an error: this lookup fails, the host stays
                    # in use (other tables share it; dict_mysql.c would skip it).
                    raise TemporaryLookupError(f"{spec}: query failed: {_reason(exc)}") from None
                if pooled and not isinstance(exc.__context__, TimeoutError):
                    # A pooled connection the server or the network closed: a new one, at
                    # once (not after a timeout: a server that hangs would hang it too).
                    self.discard([c for c, _ in host.idle])
                    host.idle.clear()
                    conn, pooled = None, False
                    continue
                self._down(host)
                return None
            finally:
                host.busy -= 1
            host.idle.append((conn, time.monotonic()))
            return rows

    def _run(self, lease: _Lease, conn, func, *args):
        """``func(*args)`` in a pool thread; the greenlet waits, the loop runs on."""
        job = self._threads.spawn(func, *args)
        try:
            return job.get()
        except BaseException:
            if not job.ready():       # stopped from outside while the thread still works
                lease.hand_to(job, conn, self)
            raise

    def _idle(self, host: HostState):
        """The most recently used idle connection, unless it idled too long."""
        limit = time.monotonic() - self.options.idle_interval
        while host.idle:
            conn, since = host.idle.pop()
            if since >= limit:
                return conn
            self.discard([conn])
        return None

    def _down(self, host: HostState) -> None:
        """Skip *host* for a while and close its connections (plmysql_down_host)."""
        host.failures = min(host.failures + 1, 32)
        skip = min(float(self.options.retry_interval), FIRST_RETRY * 2 ** (host.failures - 1))
        host.state, host.retry_at = FAILED, time.monotonic() + skip
        self.discard([c for c, _ in host.idle])
        host.idle.clear()

    def _sweep(self) -> None:
        """Close connections idle longer than idle_interval (dict_mysql_event)."""
        limit = time.monotonic() - self.options.idle_interval
        for host in self.hosts:
            old = [c for c, since in host.idle if since < limit]
            if old:
                host.idle = [(c, since) for c, since in host.idle if since >= limit]
                self.discard(old)
            if host.state == ACTIVE and not host.idle and not host.busy:
                host.state = UNTRIED

    def discard(self, conns: list) -> None:
        """Close *conns* in the pool, without waiting."""
        open_ones = [c for c in conns if c.open]
        if open_ones:
            gevent.spawn(lambda: [self._threads.spawn(_close, c) for c in open_ones])


_SETS: dict[Options, ServerSet] = {}


def server_set(options: Options) -> ServerSet:
    """The process's ServerSet for *options* (made on first use)."""
    found = _SETS.get(options)
    if found is None:
        found = _SETS[options] = ServerSet(options)
    return found


class MySQLTable(Table):
    """A mysql_table(5) file; every lookup is a query (see the module docstring).

    Keys are folded to lower case (``fold``), as Postfix's maps ask dict_mysql;
    the table answers partial keys too (``fixed``: db_common_dict_partial() is
    0 in Postfix, whatever the templates use), unless ``domain`` rules them out.
    """

    def __init__(self, spec: str, name: str, config=None):
        super().__init__(spec, name, config)
        if not name.startswith(("/", ".")):
            raise ConfigError(f"{spec}: relayd reads mysql: settings from a file; give its "
                              f"path (the main.cf form {name}_hosts, ... is not supported)")
        try:
            self.settings = read_settings(name)
        except FileNotFoundError as exc:
            raise TableUnavailable(f"open {name}: {exc.strerror}") from None
        except OSError as exc:
            raise ConfigError(f"open {name}: {exc.strerror}") from None
        try:
            charset_by_name(self.settings["charset"])
        except KeyError:
            raise ConfigError(f"charset: unknown character set: {self.settings['charset']}",
                              file=name, line=self.settings.lines.get("charset")) from None
        self.templates = self.settings.templates
        self.domain = self._domain_list(config)
        self.expansion_limit = self.settings.number("expansion_limit", 0)
        self.require_result_set = self.settings.flag("require_result_set")
        self.servers = server_set(Options.of(self.settings, config))
        self.cache_time = _param(config, "relayd_mysql_cache_time")
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def _domain_list(self, config):
        words = self.settings["domain"].replace(",", " ").split()
        if not words:
            return None
        from relayd.domains import DomainList   # here: relayd.domains imports relayd.tables
        try:
            return DomainList(config, f"{self.spec} domain", words=words)
        except ConfigError as exc:
            raise ConfigError(f"domain: {exc.message}", file=self.name,
                              line=self.settings.lines.get("domain")) from None

    def lookup(self, key: str) -> str | None:
        key = self.folded(key)
        if self.domain is not None and not self._in_domain(key):
            return None
        if not key:
            log.warning('table "%s": empty query string -- ignored', self.spec)
            return None
        if self.templates.expand_query(key, None) is None:
            return None
        if self.cache_time:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
        rows = self.servers.query(self.spec, lambda conn: self.templates.expand_query(
            key, lambda text: quote(conn, text)), self.require_result_set)
        value = self._result(rows, key)
        if self.cache_time:
            self._remember(key, value)
        return value

    def _in_domain(self, key: str) -> bool:
        """db_common_check_domain(): only user@domain keys of a listed domain are asked."""
        local, at, domain = key.rpartition("@")
        if not at or not local:
            return False
        try:
            return domain in self.domain
        except TemporaryLookupError:
            log.warning("%s 'domain' pattern match failed for '%s'", self.spec, key)
            raise

    def _result(self, rows, key: str) -> str | None:
        """Each non-NULL column of each row through result_format, joined with commas."""
        values: list[str] = []
        for row in rows:
            for column in row:
                if column is None:
                    continue
                text = (column.decode("utf-8", "replace") if isinstance(column, (bytes, bytearray))
                        else str(column))
                if not text:
                    log.warning('table "%s": empty lookup result for: "%s" -- ignored',
                                self.spec, key)
                    continue
                value = self.templates.expand_result(text, key)
                if value is None:
                    continue
                values.append(value)
                if self.expansion_limit and len(values) > self.expansion_limit:
                    log.warning("dict_mysql_lookup: %s: Expansion limit exceeded for key: '%s'",
                                self.name, key)
                    raise TemporaryLookupError(f"{self.spec}: expansion limit exceeded for {key}")
        return ",".join(values) or None

    def _remember(self, key: str, value: str | None) -> None:
        self._cache[key] = (time.monotonic() + self.cache_time, value)
        self._cache.move_to_end(key)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
