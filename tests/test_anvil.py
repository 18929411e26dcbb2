"""The anvil table against a model: exact counts whatever the order of events.

Shared memory, no sockets: the workers are simulated by switching the
table's worker column in one process (tests/integration/test_anvil.py runs
it in a real two-worker relayd).
"""
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from relayd.anvil import TOO_MANY_FROM_CLIENT, TOO_MANY_SESSIONS, Anvil

CLIENTS = [f"192.0.2.{n}" for n in range(40)] + [None]
events = st.lists(st.tuples(st.sampled_from(["connect", "disconnect", "reset"]),
                            st.integers(0, 1), st.sampled_from(CLIENTS)), max_size=200)


@settings(max_examples=400, deadline=None)
@given(events)
def test_counts_match_a_model(script):
    anvil = Anvil(workers=2, capacity=8)  # 16 slots: probe runs collide and wrap
    open_: list[Counter] = [Counter(), Counter()]  # per worker: client -> sessions
    for op, worker, client in script:
        anvil.use_worker(worker)
        if op == "connect":
            total = sum(sum(c.values()) for c in open_)
            mine = open_[0][client] + open_[1][client]
            verdict, count = anvil.connect("smtp", client, 12, 3)
            if total >= 12:
                assert verdict == TOO_MANY_SESSIONS
            elif client is not None and mine >= 3:
                assert (verdict, count) == (TOO_MANY_FROM_CLIENT, mine + 1)
            elif client is not None and mine == 0 and \
                    len({k for c in open_ for k, v in c.items() if v and k}) >= 8:
                assert verdict == TOO_MANY_SESSIONS  # the table is at capacity
            else:
                assert verdict is None
                open_[worker][client] += 1
        elif op == "disconnect" and open_[worker][client]:
            anvil.disconnect("smtp", client)
            open_[worker][client] -= 1
        elif op == "reset":
            anvil.reset_worker(worker)
            open_[worker].clear()
        for client in CLIENTS[:-1]:
            assert anvil.client_sessions("smtp", client) == open_[0][client] + open_[1][client]
        assert anvil.sessions() == sum(sum(c.values()) for c in open_)


def test_services_are_counted_apart():
    anvil = Anvil()
    assert anvil.connect("smtp", "192.0.2.1", 10, 1) == (None, 1)
    assert anvil.connect("submission", "192.0.2.1", 10, 1) == (None, 1)
    assert anvil.connect("smtp", "192.0.2.1", 10, 1) == (TOO_MANY_FROM_CLIENT, 2)


def test_dense_table_with_wrapping_probe_runs():
    # Many clients coming and going in a 16-slot table at its capacity: probe
    # runs wrap around the end, and deletions must keep every entry findable.
    import random
    rnd = random.Random(7)
    anvil = Anvil(capacity=8)
    model: Counter = Counter()
    for _ in range(20000):
        client = f"198.51.100.{rnd.randrange(64)}"
        if model[client] and rnd.random() < 0.5:
            anvil.disconnect("smtp", client)
            model[client] -= 1
        elif anvil.connect("smtp", client, 100, 2)[0] is None:
            model[client] += 1
        assert anvil.client_sessions("smtp", client) == model[client]
    assert all(anvil.client_sessions("smtp", c) == n for c, n in model.items())


def test_auth_rates_per_client_and_service_across_workers():
    anvil = Anvil(workers=2)
    for n in range(1, 5):   # one client's AUTH commands, alternately in each worker
        anvil.use_worker(n % 2)
        assert anvil.auth("smtp", "192.0.2.1", 60) == n
    assert anvil.auth("smtp", "192.0.2.2", 60) == 1
    assert anvil.auth("submission", "192.0.2.1", 60) == 1
    anvil.reset_worker(0)   # a dead worker's sessions are forgotten, the rates are not
    assert anvil.auth("smtp", "192.0.2.1", 60) == 5
    assert anvil.auth("smtp", "192.0.2.1", -1) == 1   # its window is over: a new one opens
    assert anvil.auth("smtp", "192.0.2.1", 60) == 2


def test_auth_rates_of_many_clients_take_fixed_room():
    # 16 rate slots: thousands of clients evict each other, counting goes on.
    anvil = Anvil(capacity=8)
    for n in range(5000):
        assert anvil.auth("smtp", f"198.51.{n // 256}.{n % 256}", 60) == 1
    assert [anvil.auth("smtp", "203.0.113.9", 60) for _ in range(3)] == [1, 2, 3]
    assert anvil.sessions() == 0 and anvil.connect("smtp", "203.0.113.9", 10, 1) == (None, 1)
