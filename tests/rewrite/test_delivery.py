"""Routing by address class, local Maildir delivery through the QueueManager with a
real queue store, error/discard transports, and smtp_generic_maps."""
import logging
import os
import pwd

import pytest

from relayd.delivery.local import LocalDeliveryAgent
from relayd.delivery.qmgr import QueueManager
from relayd.delivery.route import Router
from relayd.rewrite import GenericMaps
from tests.delivery.conftest import CONTENT, log_lines, queue_message, store, wait_until  # noqa: F401 (fixture)


@pytest.fixture
def relay_config(make_config, sink, tmp_path):
    def make(**params):
        params.setdefault("relayhost", f"[127.0.0.1]:{sink.port}")
        return make_config(relayd_queue_fsync="no", relayd_maildir_base=str(tmp_path / "mail"),
                           **params)
    return make


@pytest.fixture
def run_qmgr(store):
    started = []

    def run(config):
        qmgr = QueueManager(store, config)
        qmgr.start()
        started.append(qmgr)
        return qmgr
    yield run
    for qmgr in started:
        qmgr.stop(timeout=2)


def maildir_messages(tmp_path, user):
    new = tmp_path / "mail" / user / "Maildir" / "new"
    return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []


def test_router_by_address_class(make_config):
    router = Router(make_config(relayhost="[smart.example]", relay_transport="smtp:[inside.example]:2525",
                                relocated_maps="inline:{ old@example.com=new@corp.example }",
                                virtual_alias_domains="valias.example"))
    assert (router.resolve("bob@example.com").kind, router.resolve("bob@localhost").name) == ("local", "local")
    assert router.resolve("x@relay.example").nexthop == "[inside.example]:2525"
    assert router.resolve("x@elsewhere.example").nexthop == "[smart.example]"
    assert router.resolve("old@example.com").nexthop == "5.1.6 User has moved to new@corp.example"
    assert router.resolve("x@valias.example").nexthop == "5.1.1 User unknown in virtual alias table"
    assert router.resolve("x@[127.0.0.1]").kind == "local"


def test_local_delivery_into_maildir_with_aliases(relay_config, run_qmgr, store, sink, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    config = relay_config(alias_maps=("inline:{ {staff = ann, bob, carl@corp.example}, "
                                      "{ann = ann, \"|/usr/bin/vacation\"}, root=bob }"))
    run_qmgr(config)
    qid = queue_message(store, "alice@elsewhere.example", ["staff@example.com", "root+x@localhost"])
    # Done when the message is gone and both the forward and the bounce (a new message) arrived.
    wait_until(lambda: store.get(qid) is None and {tuple(t.recipients) for t in sink.messages}
               >= {("carl@corp.example",), ("alice@elsewhere.example",)}, what="delivery")
    # local_destination_recipient_limit = 1: the two recipients are two deliveries, in any order.
    [bob_staff, bob_root] = sorted(maildir_messages(tmp_path, "bob"),
                                   key=lambda m: b"X-Original-To: staff@" not in m)
    assert bob_staff.startswith(b"Return-Path: <alice@elsewhere.example>\nX-Original-To: staff@example.com\n"
                                b"Delivered-To: staff@example.com\nFrom: alice@example.com\n")
    assert b"\n.a dot-stuffed line\n" in bob_staff and b"\r" not in bob_staff
    assert b"Delivered-To: root+x@localhost\n" in bob_root
    # ann is in her own expansion: her mailbox gets it; her "|command" is refused, so staff bounces
    assert len(maildir_messages(tmp_path, "ann")) == 1
    [forward] = [t for t in sink.messages if t.recipients == ["carl@corp.example"]]
    assert forward.sender == "alice@elsewhere.example"
    [dsn] = [t for t in sink.messages if t.recipients == ["alice@elsewhere.example"]]
    assert b"mail to command is restricted" in dsn.data
    local = log_lines(caplog, "relayd.local")
    assert any(line.startswith(f"{qid}: to=<staff@example.com>, relay=local,")
               and "status=bounced (|/usr/bin/vacation: mail to command is restricted" in line
               for line in local)
    assert any(line.startswith(f"{qid}: to=<root+x@localhost>, relay=local,")
               and "status=sent (delivered to maildir)" in line for line in local)


def test_local_transport_can_be_smtp_to_an_inside_host(relay_config, run_qmgr, store, sink, tmp_path):
    config = relay_config(relayhost="[192.0.2.1]:9", local_transport=f"smtp:[127.0.0.1]:{sink.port}")
    run_qmgr(config)
    qid = queue_message(store, "alice@elsewhere.example", ["bob@example.com"])
    wait_until(lambda: store.get(qid) is None, what="delivery")
    assert sink.messages[0].recipients == ["bob@example.com"]
    assert not (tmp_path / "mail").exists()


def test_split_message_error_and_discard(relay_config, run_qmgr, store, sink, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    config = relay_config(relocated_maps="inline:{ old@example.com=new@corp.example }",
                          relay_transport="discard:silently dropped")
    run_qmgr(config)
    qid = queue_message(store, "alice@elsewhere.example",
                        ["bob@example.com", "old@example.com", "x@relay.example", "y@remote.example"])
    wait_until(lambda: store.get(qid) is None and len(sink.messages) == 2, what="delivery")
    assert len(maildir_messages(tmp_path, "bob")) == 1
    remote = [t for t in sink.messages if t.recipients == ["y@remote.example"]]
    assert remote and b"Subject: test" in remote[0].data
    dsn = next(t for t in sink.messages if t.recipients == ["alice@elsewhere.example"])
    assert b"User has moved to new@corp.example" in dsn.data
    assert any("to=<old@example.com>, relay=none," in line and "dsn=5.1.6, status=bounced" in line
               for line in log_lines(caplog, "relayd.error"))
    assert any("to=<x@relay.example>" in line and "status=sent (silently dropped)" in line
               for line in log_lines(caplog, "relayd.discard"))


def test_maildir_refuses_unsafe_names(relay_config, tmp_path):
    agent = LocalDeliveryAgent(relay_config(), forward=None)
    from relayd.delivery.status import DeliveryRequest, RecipientRef
    request = DeliveryRequest("Q1", "a@b.example", [RecipientRef(0, "../etc@example.com")],
                              CONTENT, 0.0, 0.0)
    outcome = agent.deliver(request).outcomes[0]
    assert (outcome.status, outcome.dsn) == ("bounced", "5.1.3")
    assert not os.path.exists(tmp_path / "etc")


def _deliver_to(agent, address):
    from relayd.delivery.status import DeliveryRequest, RecipientRef
    request = DeliveryRequest("Q1", "a@b.example", [RecipientRef(0, address)], CONTENT, 0.0, 0.0)
    return agent.deliver(request).outcomes[0]


def test_written_here_a_symlink_in_the_maildir_path_is_not_followed(relay_config, tmp_path):
    """Without the privileged local process (relayd not started as root) the
    worker writes the Maildir itself, through the same O_NOFOLLOW walk."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "mail" / "bob").mkdir(parents=True)
    (tmp_path / "mail" / "bob" / "Maildir").symlink_to(elsewhere)
    outcome = _deliver_to(LocalDeliveryAgent(relay_config(), forward=None), "bob@example.com")
    assert (outcome.status, outcome.dsn) == ("deferred", "4.2.0")
    assert outcome.reason == (f"maildir delivery failed: open {tmp_path}/mail/bob/Maildir: "
                              "is a symbolic link, which local delivery never follows")
    assert list(elsewhere.iterdir()) == []


def test_written_here_home_mailbox_of_another_account_defers(relay_config):
    agent = LocalDeliveryAgent(relay_config(home_mailbox="Maildir/"), forward=None)
    other = "nobody" if os.geteuid() != pwd.getpwnam("nobody").pw_uid else "root"
    outcome = _deliver_to(agent, f"{other}@example.com")
    assert (outcome.status, outcome.dsn) == ("deferred", "4.3.0")
    assert "relayd must start as root to write as the recipient" in outcome.reason


def test_generic_maps(make_config):
    generic = GenericMaps(make_config(
        smtp_generic_maps="inline:{ bob@localdomain.local=bob@example.com, @localdomain.local=hq@example.com }"))
    assert generic.rewrite("bob@localdomain.local") == "bob@example.com"
    assert generic.rewrite("eve@localdomain.local") == "hq@example.com"
    assert generic.rewrite("bob@example.org") == "bob@example.org"
    assert generic.rewrite("") == ""
    bare = GenericMaps(make_config(smtp_generic_maps="inline:{ bob@example.com=robert@example.net }"))
    assert bare.rewrite("bob+x@example.com") == "robert@example.net"       # generic: no propagation


def test_generic_maps_rewrite_the_envelope_on_the_way_out(relay_config, run_qmgr, store, sink):
    run_qmgr(relay_config(smtp_generic_maps="inline:{ bob@localdomain.local=bob@example.net }"))
    qid = queue_message(store, "bob@localdomain.local", ["x@remote.example"])
    wait_until(lambda: store.get(qid) is None and sink.messages, what="delivery")
    assert sink.messages[0].sender == "bob@example.net"
