"""Fixtures shared by the integration tests: a recording sink and relayd processes."""
import pytest

from tests.support.relayd_proc import RelaydProcess
from tests.support.sink import Sink


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def relayd_factory(tmp_path, sink):
    """``relayd_factory(extra_main_cf="", master_cf=None)`` starts a relayd whose
    smart host is the ``sink``; every one started is stopped at the end."""
    started = []

    def make(extra_main_cf: str = "", master_cf: str | None = None, name: str = "relayd"):
        proc = RelaydProcess(tmp_path / name, sink.port, extra_main_cf, master_cf)
        started.append(proc)
        return proc.start()

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def relayd(relayd_factory):
    return relayd_factory()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """A CA, server and client certificates (tests/support/certs.py), made once per run."""
    from tests.support.certs import make_certs
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def dns_server(tmp_path_factory):
    """A real authoritative DNS server (Knot) for the whole run: tests add zones
    under .test and point relayd_dns_servers at ``dns_server.spec``
    (tests/support/dnsserver.py)."""
    from tests.support.dnsserver import DnsServer, knot_binaries
    if knot_binaries() is None:
        pytest.skip("knot (Knot DNS) is not installed: tools/setup-env installs it")
    server = DnsServer(tmp_path_factory.mktemp("knot")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_template():
    """An initialised MariaDB data directory, copied by each server (tests/support/mariadb.py)."""
    import shutil
    from tests.support.mariadb import mariadb_binaries, private_base, template_datadir
    if mariadb_binaries() is None:
        pytest.skip("mariadb-server is not installed (tools/setup-env installs it)")
    base = private_base()
    yield template_datadir(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb(mariadb_template, tls_certs):
    """One private MariaDB for the session, with the test schema and rows (TLS offered)."""
    from tests.support.mariadb import MariaDB
    server = MariaDB(mariadb_template, "main", certs=tls_certs).start().load()
    yield server
    server.stop()


@pytest.fixture
def black_hole():
    """A DNS server that reads every query and never answers (UDP and TCP)."""
    from tests.support.dnsserver import BlackHole
    hole = BlackHole().start()
    yield hole
    hole.stop()


@pytest.fixture(scope="session")
def _mariadb_pair(mariadb_template):
    from tests.support.mariadb import MariaDB
    pair = [MariaDB(mariadb_template, name).start().load() for name in ("first", "second")]
    yield pair
    for server in pair:
        server.stop()


@pytest.fixture
def mariadb_pair(_mariadb_pair):
    """Two independent servers with the same data (failover tests): both running
    when the test starts, whatever the previous test killed."""
    for server in _mariadb_pair:
        if server.proc.poll() is not None:
            server.start()
    return _mariadb_pair
