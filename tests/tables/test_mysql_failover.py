"""mysql: failover and recovery against two real MariaDB servers with the same
data (tests/support/mariadb.py), killed with SIGKILL as in a crash."""
import os
import signal
import time

import gevent
import pytest
from gevent.event import Event

from relayd.config import load_config
from relayd.tables.base import TemporaryLookupError, open_table
from relayd.tables.mysql import ACTIVE
from tests.support.mariadb import DBNAME, PASSWORD, USER

SEED = ("table = relay_recipients\nselect_field = action\nwhere_field = address\n"
        "additional_conditions = and status = 'paid'\n")


def table_on(servers, path, extra: str = "", config=None):
    hosts = " ".join(f"inet:127.0.0.1:{s.port}" for s in servers)
    path.write_text(f"hosts = {hosts}\nuser = {USER}\npassword = {PASSWORD}\n"
                    f"dbname = {DBNAME}\n{SEED}{extra}")
    return open_table(f"mysql:{path}", config)


def wait_until(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        gevent.sleep(0.02)


def answers(t, key="ann@relay.example"):
    try:
        return t.lookup(key)
    except TemporaryLookupError:
        return "failed"


def test_losing_one_server_mid_load_costs_no_lookup(mariadb_pair, tmp_path):
    t = table_on(mariadb_pair, tmp_path / "pair.cf")
    results, failures, stop = [], [], Event()

    def client(key):
        while not stop.is_set():
            try:
                results.append(t.lookup(key))
            except TemporaryLookupError as exc:
                failures.append(exc)
    clients = [gevent.spawn(client, key) for key in ["ann@relay.example", "carol@relay.example"] * 4]
    wait_until(lambda: len(results) > 300, what="300 lookups")
    used = [h for h in t.servers.hosts if h.state == ACTIVE][0]
    victim = next(s for s in mariadb_pair if s.port == used.host.port)
    victim.kill()
    after = len(results)
    wait_until(lambda: len(results) > after + 300, what="300 lookups after the kill")
    stop.set()
    gevent.joinall(clients, timeout=20)
    assert failures == []
    assert set(results) == {"OK"}
    assert [h.host.port for h in t.servers.hosts if h.state == ACTIVE] != [victim.port]


def test_all_down_is_a_temporary_failure_and_one_back_answers_again(mariadb_pair, tmp_path):
    t = table_on(mariadb_pair, tmp_path / "pair.cf")
    assert t.lookup("ann@relay.example") == "OK"
    for server in mariadb_pair:
        server.kill()
    with pytest.raises(TemporaryLookupError):
        t.lookup("ann@relay.example")
    assert answers(t) == "failed"            # skipped hosts: failing fast, no connect
    mariadb_pair[1].start()
    # A host is skipped 1 s after its first failure, then 2, 4... (at most
    # retry_interval): a restarted server is asked again within seconds.
    wait_until(lambda: answers(t) == "OK", timeout=15, what="an answer after the restart")


def test_a_stale_pooled_connection_is_reopened_at_once(mariadb_pair, tmp_path):
    server = mariadb_pair[0]
    t = table_on([server], tmp_path / "one.cf")
    assert t.lookup("ann@relay.example") == "OK"          # a pooled connection now
    server.kill()
    server.start()
    # The pooled connection is dead; the lookup reconnects at once instead of failing.
    assert t.lookup("ann@relay.example") == "OK"


def test_idle_connections_are_closed_after_idle_interval(mariadb_pair, tmp_path):
    server = mariadb_pair[0]
    t = table_on([server], tmp_path / "idle.cf", "idle_interval = 1\n")
    assert t.lookup("ann@relay.example") == "OK"
    (pooled,) = [conn.thread_id() for host in t.servers.hosts for conn, _ in host.idle]

    def connected() -> bool:
        return server.sql(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                          f" WHERE ID = {pooled}")[0][0] == 1
    assert connected()
    wait_until(lambda: not connected(), timeout=15, what="the idle connection closed")
    assert t.lookup("ann@relay.example") == "OK"


def test_a_dead_host_in_the_list_costs_no_lookup(mariadb_pair, tmp_path):
    dead, alive = mariadb_pair
    dead.kill()
    for attempt in range(5):      # hosts are tried in random order: the dead one first, or not
        t = table_on([dead, alive], tmp_path / "skip.cf", f"retry_interval = {30 + attempt}\n")
        assert [answers(t) for _ in range(5)] == ["OK"] * 5


def test_a_server_that_hangs_costs_a_timeout_then_the_other_answers(mariadb_pair, tmp_path):
    config = load_config(main_cf="relayd_mysql_query_timeout = 1s\n"
                                 "relayd_mysql_connect_timeout = 1s\n")
    t = table_on(mariadb_pair, tmp_path / "hang.cf", config=config)
    assert t.lookup("ann@relay.example") == "OK"
    used = [h for h in t.servers.hosts if h.state == ACTIVE][0]
    hung = next(s for s in mariadb_pair if s.port == used.host.port)
    os.kill(hung.proc.pid, signal.SIGSTOP)     # alive, listening, answering nothing
    try:
        results = [answers(t) for _ in range(5)]
    finally:
        os.kill(hung.proc.pid, signal.SIGCONT)
    assert results == ["OK"] * 5


def test_a_lookup_stopped_by_a_timeout_leaks_no_connection(mariadb, tmp_path):
    config = load_config(main_cf="relayd_mysql_pool_size = 1\n")
    path = tmp_path / "slow.cf"
    path.write_text(f"hosts = inet:127.0.0.1:{mariadb.port}\nuser = {USER}\n"
                    f"password = {PASSWORD}\ndbname = {DBNAME}\n"
                    "query = SELECT goto FROM aliases WHERE alias = '%s' AND SLEEP(0.5) = 0\n")
    t = open_table(f"mysql:{path}", config)
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.1):             # a check's timeout (relayd.pipeline.dispatcher)
            t.lookup("info@relay.example")
    # The one connection is busy until the abandoned query ends, then free again.
    assert t.lookup("info@relay.example") == "ann@relay.example"
    assert t.lookup("info@relay.example") == "ann@relay.example"
