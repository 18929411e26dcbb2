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


@pytest.fixture
def black_hole():
    """A DNS server that reads every query and never answers (UDP and TCP)."""
    from tests.support.dnsserver import BlackHole
    hole = BlackHole().start()
    yield hole
    hole.stop()
