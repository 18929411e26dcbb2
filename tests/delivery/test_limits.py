"""qmgr's _destination_ knobs per transport and worker, and the rate gate."""
import pytest

from relayd.anvil import Anvil
from relayd.config import ConfigError, load_config
from relayd.delivery.limits import RateGate, TransportLimits

MASTER_CF = """\
smtp      inet  n  -  n  -  -  smtpd
smtp      unix  -  -  n  -  -  smtp
relay     unix  -  -  n  -  -  smtp
slow      unix  -  -  n  -  -  smtp
local     unix  -  n  n  -  -  local
"""


def limits(workers=1, **params):
    return TransportLimits(load_config(master_cf=MASTER_CF, **params), workers, 100)


def test_defaults_and_postfix_own_local_defaults():
    smtp, local = limits().of("smtp"), limits().of("local")
    assert (smtp.concurrency, smtp.rate_delay, smtp.recipient_limit) == (20, 0, 50)
    assert (local.concurrency, local.recipient_limit, local.per_recipient) == (2, 1, True)


def test_per_transport_values_override_the_default_ones():
    got = limits(default_destination_concurrency_limit=7, slow_destination_concurrency_limit=3,
                 slow_destination_recipient_limit=5, relay_destination_rate_delay="2s")
    assert got.of("smtp").concurrency == 7
    assert (got.of("slow").concurrency, got.of("slow").recipient_limit) == (3, 5)
    assert (got.of("relay").rate_delay, got.of("relay").concurrency) == (2.0, 1)   # rate delay: 1
    assert got.of("unknown-service").concurrency == 7


@pytest.mark.parametrize("limit, workers, each", [(20, 2, 10), (5, 2, 3), (1, 4, 1), (0, 2, 50)])
def test_the_concurrency_limit_is_divided_among_the_workers(limit, workers, each):
    # 0 is "no limit but the process limit" (100 here, halved).
    assert limits(workers, smtp_destination_concurrency_limit=limit).of("smtp").concurrency == each


def test_a_bad_per_transport_value_stops_startup():
    with pytest.raises(ConfigError) as info:
        limits(slow_destination_rate_delay="soon")
    assert info.value.parameter == "slow_destination_rate_delay"


@pytest.mark.parametrize("gate", [RateGate(), RateGate(Anvil(workers=2))], ids=["process", "anvil"])
def test_the_rate_gate_spaces_deliveries_to_one_destination(gate):
    assert gate.wait("smtp:a.test", 10) == 0                 # the first goes at once
    assert 9 < gate.wait("smtp:a.test", 10) <= 10            # the next one 10 s after it
    assert gate.wait("smtp:b.test", 10) == 0                 # another destination is free
    gate.finished("smtp:b.test", 10)
    assert 9 < gate.wait("smtp:b.test", 10) <= 10            # 10 s after the last one ended


def test_the_anvil_rate_slot_is_shared_by_the_workers():
    """Two workers' gates on one anvil (the daemon forks after creating it: the
    table is shared memory) see each other's deliveries."""
    anvil = Anvil(workers=2)
    first, second = RateGate(anvil), RateGate(anvil)
    assert first.wait("smtp:a.test", 5) == 0
    assert 4 < second.wait("smtp:a.test", 5) <= 5


def test_the_knobs_of_a_master_cf_service_are_no_unused_parameters(tmp_path, caplog):
    (tmp_path / "main.cf").write_text("slow_destination_rate_delay = 1s\nnosuch_thing = 1\n")
    (tmp_path / "master.cf").write_text(MASTER_CF)
    config = load_config(str(tmp_path))
    assert "unused parameter: nosuch_thing=1" in caplog.text
    assert "slow_destination_rate_delay" not in caplog.text
    assert TransportLimits(config).of("slow").rate_delay == 1
