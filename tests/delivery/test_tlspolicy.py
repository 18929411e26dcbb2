"""smtp_tls_policy_maps entries and the policy each next hop gets (no peer needed)."""
import logging
import pathlib

import pytest

from relayd.config import load_config
from relayd.delivery.route import parse_nexthop
from relayd.delivery.tlspolicy import PolicyProblem, TLSPolicies, TLSPolicy


@pytest.fixture
def policies(tmp_path):
    def make(table: str, **params):
        path = tmp_path / "tls_policy"
        path.write_text(table)
        return TLSPolicies(load_config(smtp_tls_policy_maps=f"texthash:{path}", **params))
    return make


def policy_for(policies, nexthop):
    return policies.policy(parse_nexthop(nexthop))


def test_defaults_from_main_cf():
    policies = TLSPolicies(load_config())
    assert policy_for(policies, "[mail.example.com]:587") == TLSPolicy(
        "may", ">=TLSv1.2", "medium", (), (), "")
    policies = TLSPolicies(load_config(smtp_tls_security_level="secure",
                                       smtp_tls_mandatory_protocols=">=TLSv1.3",
                                       smtp_tls_servername="hostname"))
    policy = policy_for(policies, "[mail.example.com]")
    assert (policy.protocols, policy.match, policy.servername) == (
        ">=TLSv1.3", ("nexthop", "dot-nexthop"), "hostname")
    dest = parse_nexthop("[mail.example.com]")
    assert policy.names(dest) == ("mail.example.com", ".mail.example.com")
    assert policy.server_name(dest) == "mail.example.com"
    assert policy.server_name(parse_nexthop("[192.0.2.1]")) is None   # never SNI for an address


def test_lookup_keys_as_postfix(policies):
    table = ("[mail.example.com]:587 secure match=relay.example.com:.example.net\n"
             ".example.org verify\n"
             "example.com none\n")
    pol = policies(table)
    exact = policy_for(pol, "[mail.example.com]:587")
    assert (exact.level, exact.match) == ("secure", ("relay.example.com", ".example.net"))
    assert policy_for(pol, "[mail.example.com]").level == "may"          # the port is part of the key
    assert policy_for(pol, "sub.example.org").level == "verify"          # .parent of a domain
    assert policy_for(pol, "[sub.example.org]").level == "may"           # [host]: one lookup only
    assert policy_for(pol, "example.com").level == "none"
    assert policy_for(pol, "mx.example.com").level == "may"              # no parent without a dot


def test_attributes(policies):
    pol = policies("[a.example] encrypt protocols=>=TLSv1.3 ciphers=high exclude=CHACHA20 "
                   "servername=sni.example\n")
    policy = policy_for(pol, "[a.example]")
    assert policy == TLSPolicy("encrypt", ">=TLSv1.3", "high", ("CHACHA20",), (), "sni.example")


@pytest.mark.parametrize("entry, warning", [
    ("bogus", 'invalid security level "bogus"'),
    ("encrypt match=a.example", 'attribute "match" invalid at security level "encrypt"'),
    ("may protocols=>=TLSv1.2 protocols=TLSv1.3", 'attribute "protocols" is specified multiple times'),
    ("may color=blue", 'invalid attribute name: "color"'),
    ("may justaword", 'malformed attribute/value pair "justaword"'),
    ("may protocols=>=TLSv9", 'invalid "protocols" value'),
])
def test_a_bad_entry_is_a_problem_with_postfix_warning(policies, caplog, entry, warning):
    pol = policies(f"[a.example] {entry}\n")
    with pytest.raises(PolicyProblem):
        policy_for(pol, "[a.example]")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith('smtp_tls_policy_maps, next-hop destination "[a.example]": ' + warning)
               for m in messages), messages
    assert "TLS policy lookup for [a.example]/a.example: client TLS configuration problem" in messages


def test_the_sample_policy_table_is_valid():
    sample = pathlib.Path(__file__).resolve().parents[2] / "etc" / "tls_policy"
    policies = TLSPolicies(load_config(smtp_tls_policy_maps=f"texthash:{sample}"))
    smart_host = policy_for(policies, "[mail.isp.example]:submission")
    assert (smart_host.level, smart_host.protocols) == ("secure", ">=TLSv1.3")
    assert policy_for(policies, "mx.example.org").level == "verify"
    assert policy_for(policies, "[test.example]").level == "none"
