"""postqueue, mailq and postsuper (the console scripts, under Postfix's names)
against a real relayd queue, and their output compared with Debian's Postfix
listing the same messages."""
import json
import os
import re
import smtplib
import subprocess
import sys
import time

import pytest

from tests.integration.test_relay_path import send
from tests.support import postfix as pf
from tests.support.relayd_proc import RelaydProcess, free_port

BIN = os.path.dirname(sys.executable)
HELD = "minimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n"


def run(relayd, name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The installed console script ``name`` (relayd's postqueue, not /usr/sbin's)."""
    return subprocess.run([os.path.join(BIN, name), "-c", str(relayd.directory), *args],
                          input=stdin, capture_output=True, text=True, timeout=30)


def queue_the_pair(port: int) -> None:
    """Two messages: one with two recipients, one from the null sender."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("alice@example.org", ["bob@relay.example", "carol@relay.example"],
                        b"Subject: one\r\n\r\nfirst\r\n")
        client.sendmail("", ["dave@relay.example"], b"Subject: two\r\n\r\nsecond\r\n")


def ids_by_sender(records: list[dict]) -> dict[str, str]:
    return {r["sender"]: r["queue_id"] for r in records}


def test_postqueue_lists_flushes_and_postsuper_changes_the_queue(relayd_factory, sink):
    sink.stop()   # the smart host is down: both messages stay deferred
    relayd = relayd_factory(HELD)
    queue_the_pair(relayd.port)
    relayd.wait_log("status=deferred")
    records = [json.loads(line) for line in run(relayd, "postqueue", "-j").stdout.splitlines()]
    assert len(records) == 2 and {r["queue_name"] for r in records} == {"deferred"}
    alice = next(r for r in records if r["sender"] == "alice@example.org")
    assert [r["address"] for r in alice["recipients"]] == ["bob@relay.example",
                                                            "carol@relay.example"]
    assert "Connection refused" in alice["recipients"][0]["delay_reason"]
    ids = ids_by_sender(records)

    listing = run(relayd, "mailq").stdout
    assert listing.startswith("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n")
    assert listing.endswith("\n-- 0 Kbytes in 2 Requests.\n")
    assert run(relayd, "postqueue", "-p").stdout == listing

    hold = run(relayd, "postsuper", "-h", ids["MAILER-DAEMON"])
    assert hold.returncode == 0 and hold.stderr == (
        f"postsuper: {ids['MAILER-DAEMON']}: placed on hold\npostsuper: Placed on hold: 1 message\n")
    assert re.search(rf"^{ids['MAILER-DAEMON']}! +\d+ .* MAILER-DAEMON$", run(relayd, "mailq").stdout, re.M)
    # A queue filter: ALL in deferred leaves the held message alone.
    deleted = run(relayd, "postsuper", "-d", "ALL", "deferred")
    assert deleted.stderr == f"postsuper: {ids['alice@example.org']}: removed\npostsuper: Deleted: 1 message\n"
    remaining = [json.loads(line) for line in run(relayd, "postqueue", "-j").stdout.splitlines()]
    assert [(r["queue_id"], r["queue_name"]) for r in remaining] == [(ids["MAILER-DAEMON"], "hold")]

    released = run(relayd, "postsuper", "-H", "-", stdin=ids["MAILER-DAEMON"] + "\n")
    assert released.stderr.endswith("postsuper: Released from hold: 1 message\n")
    sink.start()
    assert run(relayd, "postqueue", "-s", "relay.example").returncode == 0
    (msg,) = sink.wait_for(1, timeout=15)
    assert msg.recipients == ["dave@relay.example"]
    relayd.wait_log(f"{ids['MAILER-DAEMON']}: removed")
    assert run(relayd, "mailq").stdout == "Mail queue is empty\n"


def test_postqueue_i_delivers_one_deferred_message_now(relayd_factory, sink):
    sink.stop()
    relayd = relayd_factory(HELD)
    queue_the_pair(relayd.port)
    relayd.wait_log("status=deferred")
    ids = ids_by_sender(json.loads(line) for line in
                        run(relayd, "postqueue", "-j").stdout.splitlines())
    sink.start()
    assert run(relayd, "postqueue", "-i", ids["alice@example.org"]).returncode == 0
    (msg,) = sink.wait_for(1, timeout=15)
    assert msg.sender == "alice@example.org"
    relayd.wait_log(f"{ids['alice@example.org']}: removed")
    assert list(ids_by_sender(json.loads(line) for line in run(
        relayd, "postqueue", "-j").stdout.splitlines())) == ["MAILER-DAEMON"]


def test_postsuper_works_on_a_stopped_relayd_and_refuses_bad_input(relayd_factory, sink):
    sink.stop()
    relayd = relayd_factory(HELD)
    queue_the_pair(relayd.port)
    relayd.wait_log("status=deferred")
    relayd.stop()
    listing = run(relayd, "mailq")
    assert "Mail system is down -- accessing queue directly" in listing.stderr
    assert listing.stdout.endswith("in 2 Requests.\n")
    bad = run(relayd, "postsuper", "-d", "../etc")
    assert bad.returncode != 0 and "invalid mail queue id: ../etc" in bad.stderr
    assert "invalid directory name: nosuch" in run(relayd, "postsuper", "-d", "ALL", "nosuch").stderr
    assert run(relayd, "postsuper", "-d", "ALL").stderr.endswith(
        "postsuper: Deleted: 2 messages\n")
    relayd.start()   # the deletions are in the journal: a restart does not bring them back
    assert run(relayd, "mailq").stdout == "Mail queue is empty\n"
    assert run(relayd, "postqueue", "-f").returncode == 0


# -- the same messages in Postfix and in relayd ----------------------------------------------

_SENDER_LINE = re.compile(r"^(\S+?)([*!#]?)( +)(\d+) (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d)  (.*)$")


def normalized_blocks(listing: str) -> list[list[str]]:
    """mailq output with ids, sizes and times replaced, each line's columns
    checked against showq_compat's "%-11s %7ld %20.20s %s"; message blocks
    sorted (Postfix lists in its directory order)."""
    lines = listing.rstrip("\n").split("\n")
    head, body, trailer = lines[0], lines[1:-2], lines[-1]
    blocks, block = [], []
    for line in body + [""]:
        m = _SENDER_LINE.match(line)
        if m:
            qid, mark, pad, size = m.group(1), m.group(2), m.group(3), m.group(4)
            assert len(qid + mark + pad + size) == max(11, len(qid + mark)) + 1 + max(7, len(size)), line
            line = f"ID{mark} SIZE TIME  {m.group(6)}"
        if line:
            block.append(line)
        else:
            blocks.append(block)
            block = []
    return [[head]] + sorted(blocks) + [[re.sub(r"^-- \d+ Kbytes", "-- N Kbytes", trailer)]]


def json_shape(output: str) -> list[tuple]:
    """postqueue -j lines without ids, times and sizes: key order, types, the rest as is."""
    out = []
    for line in output.splitlines():
        rec = json.loads(line)
        assert list(rec) == ["queue_name", "queue_id", "arrival_time", "message_size",
                             "forced_expire", "sender", "recipients"], line
        assert isinstance(rec["arrival_time"], int) and isinstance(rec["message_size"], int)
        out.append((rec["queue_name"], rec["forced_expire"], rec["sender"],
                    json.dumps(rec["recipients"])))
    return sorted(out)


def wait_deferred(command, count: int = 2, timeout: float = 30.0) -> None:
    """Until ``postqueue -j`` shows ``count`` messages, each deferred with its reason."""
    deadline = time.monotonic() + timeout
    while True:
        records = [json.loads(line) for line in command("postqueue", "-j").stdout.splitlines()]
        if len(records) == count and all(
                r["queue_name"] == "deferred" and all("delay_reason" in x for x in r["recipients"])
                for r in records):
            return
        assert time.monotonic() < deadline, records
        time.sleep(0.1)


@pytest.fixture
def postfix_and_relayd(tmp_path):
    """Postfix and relayd with the same messages deferred, relaying to the same dead port."""
    if pf.available():
        pytest.skip(pf.available())
    dead = free_port()
    postfix = pf.PrivatePostfix(dead).start()
    relayd = RelaydProcess(tmp_path / "relayd", dead, HELD)
    try:
        relayd.start()
        for port in (postfix.port, relayd.port):
            queue_the_pair(port)
        wait_deferred(postfix.command)
        wait_deferred(lambda name, *a: run(relayd, name, *a))
        yield postfix, relayd
    finally:
        relayd.stop()
        postfix.stop()


def test_mailq_and_json_match_postfix(postfix_and_relayd):
    postfix, relayd = postfix_and_relayd
    theirs, ours = postfix.command("postqueue", "-p"), run(relayd, "postqueue", "-p")
    assert normalized_blocks(ours.stdout) == normalized_blocks(theirs.stdout), (
        ours.stdout, theirs.stdout)
    assert json_shape(run(relayd, "postqueue", "-j").stdout) == json_shape(
        postfix.command("postqueue", "-j").stdout)


def test_postsuper_messages_and_marks_match_postfix(postfix_and_relayd):
    postfix, relayd = postfix_and_relayd
    results = []
    for command in (postfix.command, lambda name, *a, **kw: run(relayd, name, *a, **kw)):
        ids = ids_by_sender(json.loads(line) for line in
                            command("postqueue", "-j").stdout.splitlines())
        held = command("postsuper", "-h", ids["alice@example.org"])
        listing = command("postqueue", "-p").stdout
        deleted = command("postsuper", "-d", "-", stdin="\n".join(ids.values()) + "\n")
        empty = command("postqueue", "-p").stdout
        results.append((held.stderr.replace(ids["alice@example.org"], "ID"), normalized_blocks(listing),
                        sorted(deleted.stderr.replace(ids["alice@example.org"], "ID1").replace(
                            ids["MAILER-DAEMON"], "ID2").splitlines()), empty))
    assert results[1] == results[0]
