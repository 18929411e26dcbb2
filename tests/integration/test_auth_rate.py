"""smtpd_client_auth_rate_limit over real sockets: AUTH commands counted per client
address across connections and across the two workers of one relayd, in windows
of anvil_rate_time_unit (anvil(8)'s rates)."""
import base64
import smtplib
import time

from tests.integration.test_anvil import worker_of
from tests.sasl.conftest import PASSWORD, sasl_hash, sasl_table  # noqa: F401 (fixtures)

LIMITED = "127.0.0.1"
OTHER = "127.0.0.2"
UNIT = 5   # seconds: the steps before the refusal take far less; waited for below
REFUSAL = (450, b"4.7.1 Error: too many AUTH commands from 127.0.0.1")


def session(relayd, source: str = LIMITED) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", relayd.port, timeout=10, source_address=(source, 0))
    smtp.ehlo("client.example")
    return smtp


def auth(smtp: smtplib.SMTP, password: str) -> tuple[int, bytes]:
    plain = base64.b64encode(f"\0alice\0{password}".encode()).decode()
    return smtp.docmd("AUTH", f"PLAIN {plain}")


def test_auth_rate_limit_across_connections_and_workers(relayd_factory, sasl_table):  # noqa: F811
    relayd = relayd_factory("mynetworks =\nsmtpd_tls_auth_only = no\n" + sasl_table +
                            "relayd_worker_processes = 2\n"
                            "smtpd_client_auth_rate_limit = 3\n"
                            f"anvil_rate_time_unit = {UNIT}s\n")
    by_worker: dict[int, smtplib.SMTP] = {}
    deadline = time.monotonic() + 20   # the second worker may still be starting
    while len(by_worker) < 2:   # connections until both workers hold one
        assert time.monotonic() < deadline, "one worker took every connection"
        smtp = session(relayd)
        worker = worker_of(smtp.sock)
        if worker in by_worker:
            smtp.close()
            time.sleep(0.05)
        else:
            by_worker[worker] = smtp
    opened = list(by_worker.values())
    one, two = opened
    try:
        # Three AUTH commands in the window, alternating workers, then the fourth is refused.
        assert auth(one, "wrong")[0] == 535
        assert auth(two, "wrong")[0] == 535
        assert auth(one, "wrong")[0] == 535
        assert auth(two, PASSWORD) == REFUSAL
        # A new connection is no way around it, not even with the right password.
        with session(relayd) as again:
            assert auth(again, PASSWORD) == REFUSAL
        # Another client address has its own count.
        with session(relayd, OTHER) as other:
            assert auth(other, PASSWORD)[0] == 235
    finally:
        for smtp in opened:
            smtp.close()
    relayd.wait_log("warning: AUTH command rate limit exceeded: 4 from unknown[127.0.0.1] "
                    f"for service 127.0.0.1:{relayd.port}")   # the master.cf service name

    # After the time unit a new window opens: the right password works again.
    deadline = time.monotonic() + 3 * UNIT
    while True:
        with session(relayd) as later:
            reply = auth(later, PASSWORD)
        if reply[0] == 235 or time.monotonic() > deadline:
            break
        assert reply == REFUSAL
        time.sleep(0.2)
    assert reply[0] == 235
