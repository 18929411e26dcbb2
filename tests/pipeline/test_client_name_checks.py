"""reject_unknown_client_hostname, reject_unknown_reverse_client_hostname and
check_reverse_client_hostname_access in scripted dialogues: what a client
sees for each outcome of the name lookup (the session records it as
smtpd_peer.c does; relayd.edge.peername)."""
import logging

import pytest

from relayd.pipeline.context import NAME_FORGED, NAME_OK, NAME_PERM, NAME_TEMP, SessionView
from relayd.smtp.replies import R450_UNKNOWN_CLIENT, R450_UNKNOWN_REVERSE_CLIENT
from tests.pipeline.dialogue import Dialogue, restrictions

ADDR = "198.51.100.7"

# (client name, its status, reverse name, its status) for each lookup outcome.
CONFIRMED = ("mail.example.test", NAME_OK, "mail.example.test", NAME_OK)
NO_PTR = ("unknown", NAME_PERM, "unknown", NAME_PERM)
PTR_FAILED = ("unknown", NAME_TEMP, "unknown", NAME_TEMP)
FORGED = ("unknown", NAME_FORGED, "forged.example.test", NAME_OK)
FORWARD_FAILED = ("unknown", NAME_TEMP, "slow.example.test", NAME_OK)


def dialogue(main_cf: str, peer) -> Dialogue:
    """A session of a client whose name lookup ended as ``peer`` says."""
    name, status, reverse, reverse_status = peer
    d = Dialogue(restrictions(main_cf), addr=ADDR, name=name)
    d.policy.update(client_name_status=status, reverse_client_name=reverse,
                    reverse_client_name_status=reverse_status)
    return d


def rcpt(main_cf: str, peer) -> str:
    return dialogue(main_cf, peer).mail("a@sender.example", "x@example.com")[0]


def reply(template, code: int) -> str:
    return str(template.format(ADDR).with_code(code))


@pytest.mark.parametrize("peer, code_550, expected", [
    (CONFIRMED, False, None),
    (NO_PTR, False, 450), (NO_PTR, True, 550),
    (FORGED, False, 450), (FORGED, True, 550),
    (PTR_FAILED, True, 450),          # a temporary failure: 450 whatever the code says
    (FORWARD_FAILED, True, 450),
])
def test_reject_unknown_client_hostname(peer, code_550, expected):
    main_cf = "smtpd_client_restrictions = reject_unknown_client_hostname\n"
    if code_550:
        main_cf += "unknown_client_reject_code = 550\n"
    want = "250 2.1.5 Ok" if expected is None else reply(R450_UNKNOWN_CLIENT, expected)
    assert rcpt(main_cf, peer) == want


def test_reject_unknown_client_is_the_old_name():
    assert rcpt("smtpd_client_restrictions = reject_unknown_client\n", NO_PTR) == \
        "450 4.7.25 Client host rejected: cannot find your hostname, [198.51.100.7]"


@pytest.mark.parametrize("peer, expected", [
    (CONFIRMED, None), (FORGED, None), (FORWARD_FAILED, None),   # a PTR name is enough
    (NO_PTR, 550), (PTR_FAILED, 450),
])
def test_reject_unknown_reverse_client_hostname(peer, expected):
    main_cf = ("smtpd_client_restrictions = reject_unknown_reverse_client_hostname\n"
               "unknown_client_reject_code = 550\n")
    want = "250 2.1.5 Ok" if expected is None else reply(R450_UNKNOWN_REVERSE_CLIENT, expected)
    assert rcpt(main_cf, peer) == want


def test_the_client_checks_defer_at_once_not_if_permitted():
    # A temporary failure is a 450 now, not "450 if permitted" (which a later
    # reject would turn into a 5xx): what a name-based list decides depends on
    # the name (smtpd_check.c).
    main_cf = "smtpd_client_restrictions = reject_unknown_client_hostname, reject\n"
    assert rcpt(main_cf, PTR_FAILED) == reply(R450_UNKNOWN_CLIENT, 450)


def test_the_log_names_the_client_as_it_was_found(caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    rcpt("smtpd_client_restrictions = reject_unknown_client_hostname\n", FORGED)
    assert ("NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 450 4.7.25 Client host "
            "rejected: cannot find your hostname, [198.51.100.7]; from=<a@sender.example> "
            "to=<x@example.com> proto=ESMTP helo=<client.example>") in caplog.messages


def test_check_reverse_client_hostname_access_looks_up_the_ptr_name():
    table = "inline:{ {forged.example.test = REJECT Go away} }"
    main_cf = f"smtpd_client_restrictions = check_reverse_client_hostname_access {table}\n"
    assert rcpt(main_cf, FORGED) == \
        "554 5.7.1 <forged.example.test>: Unverified Client host rejected: Go away"
    assert rcpt(main_cf, CONFIRMED) == "250 2.1.5 Ok"


def test_check_reverse_client_hostname_access_may_not_permit(caplog):
    # Anyone who owns an address block can write any PTR name: OK is an error.
    table = "inline:{ {forged.example.test = OK} }"
    main_cf = (f"smtpd_client_restrictions = check_reverse_client_hostname_access {table}, "
               "reject\n")
    assert rcpt(main_cf, FORGED) == "451 4.3.5 Server configuration error"
    assert "restriction check_reverse_client_hostname_access returns OK for " \
           "forged.example.test" in caplog.messages


def test_a_view_without_statuses_takes_them_from_its_names():
    # Plugins and the PluginHarness may give a name only.
    assert SessionView(ADDR, "mail.example.test").client_name_status == NAME_OK
    assert SessionView(ADDR, "mail.example.test").reverse_client_name == "mail.example.test"
    assert SessionView(ADDR).client_name_status == NAME_PERM
    assert SessionView(ADDR).reverse_client_name_status == NAME_PERM
