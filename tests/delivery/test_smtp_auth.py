"""SMTP AUTH towards the next hop: the recording sink checks the credentials
(AUTH PLAIN/LOGIN, offered only after STARTTLS unless a test says otherwise)."""
import logging
import pathlib

import pytest

from relayd.config import load_config
from relayd.delivery.route import parse_nexthop
from relayd.delivery.sasl import SaslClient
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT
from tests.delivery.conftest import deliver, log_lines, old_request


@pytest.fixture
def auth_sink(tls_sink):
    tls_sink.auth, tls_sink.auth_tls_only = {"joe": "s3cret", "alice": "pw1"}, True
    return tls_sink


@pytest.fixture
def passwords(tmp_path, auth_sink):
    """``passwords(text)``: a texthash smtp_sasl_password_maps with ``text``; the
    default entry is for the next hop as written."""
    def write(text=f"[localhost]:{auth_sink.port} joe:s3cret\n"):
        path = tmp_path / "sasl_passwd"
        path.write_text(text)
        return dict(smtp_sasl_auth_enable="yes", smtp_sasl_password_maps=f"texthash:{path}")
    return write


def test_auth_with_the_right_password_delivers(make_agent, auth_sink, passwords):
    assert deliver(make_agent(**passwords())).status == SENT
    [txn] = auth_sink.wait_for(1)
    assert (txn.tls, txn.user) == ("TLSv1.3", "joe")


def test_login_mechanism(make_agent, auth_sink, passwords):
    agent = make_agent(smtp_sasl_mechanism_filter="login", **passwords())
    assert deliver(agent).status == SENT
    assert auth_sink.wait_for(1)[0].user == "joe"


@pytest.mark.parametrize("key", ["localhost", "[localhost]:{port}"])
def test_keys_host_name_and_next_hop(make_agent, auth_sink, passwords, key):
    key = key.format(port=auth_sink.port)
    assert deliver(make_agent(**passwords(f"{key} joe:s3cret\n"))).status == SENT
    assert auth_sink.wait_for(1)[0].user == "joe"


def test_wrong_password_defers(make_agent, auth_sink, passwords):
    outcome = deliver(make_agent(**passwords(f"[localhost]:{auth_sink.port} joe:wrong\n")))
    assert (outcome.status, outcome.dsn) == (DEFERRED, "4.7.8")
    assert outcome.reason == ("SASL authentication failed; server localhost[127.0.0.1] said: "
                              "535 5.7.8 Error: authentication failed: authentication failure")
    assert auth_sink.messages == [] and "MAIL" not in auth_sink.verbs
    assert auth_sink.auth_failures == 1


def test_wrong_password_bounces_without_soft_bounce(make_agent, auth_sink, passwords):
    params = passwords(f"[localhost]:{auth_sink.port} joe:wrong\n")
    outcome = deliver(make_agent(smtp_sasl_auth_soft_bounce="no", **params))
    assert (outcome.status, outcome.dsn) == (BOUNCED, "5.7.8")


def test_no_auth_in_the_clear_by_default(make_agent, auth_sink, passwords, caplog):
    auth_sink.tls_context, auth_sink.auth_tls_only = None, False   # AUTH offered in plaintext
    outcome = deliver(make_agent(**passwords()))
    assert (outcome.status, outcome.dsn) == (DEFERRED, "4.7.0")
    assert outcome.reason == ("SASL authentication failed; cannot authenticate to server "
                              "localhost[127.0.0.1]: no mechanism available")
    assert "AUTH" not in auth_sink.verbs and "MAIL" not in auth_sink.verbs
    assert "SASL authentication failure: No worthy mechs found" in log_lines(caplog, "relayd.smtp")


def test_plaintext_auth_when_the_options_allow_it(make_agent, auth_sink, passwords):
    auth_sink.tls_context, auth_sink.auth_tls_only = None, False
    assert deliver(make_agent(smtp_sasl_security_options="noanonymous", **passwords())).status == SENT
    [txn] = auth_sink.wait_for(1)
    assert (txn.tls, txn.user) == (None, "joe")


def test_credentials_never_make_may_fall_back_to_plaintext(make_agent, auth_sink, old_tls_sink,
                                                          passwords):
    agent, dest = make_agent(**passwords())
    outcome = agent.deliver(dest, old_request()).outcomes[0]
    assert (outcome.status, outcome.reason) == (DEFERRED, "Cannot start TLS: handshake failure")
    assert "MAIL" not in old_tls_sink.verbs


def test_per_sender_credentials_and_no_sharing_of_connections(make_agent, auth_sink, passwords):
    params = passwords(f"alice@example.com alice:pw1\n[localhost]:{auth_sink.port} joe:s3cret\n")
    agent = make_agent(smtp_sender_dependent_authentication="yes", **params)
    assert deliver(agent, qid="Q1", sender="alice@example.com").status == SENT
    assert deliver(agent, qid="Q2", sender="bob@example.com").status == SENT
    assert deliver(agent, qid="Q3", sender="alice@example.com").status == SENT
    users = [(t.sender, t.user, t.session) for t in auth_sink.wait_for(3)]
    assert users == [("alice@example.com", "alice", 1), ("bob@example.com", "joe", 2),
                     ("alice@example.com", "alice", 1)]


def test_sender_domain_key(make_agent, auth_sink, passwords):
    params = passwords("@example.com alice:pw1\n")
    agent = make_agent(smtp_sender_dependent_authentication="yes", **params)
    assert deliver(agent, sender="carol@example.com").status == SENT
    assert auth_sink.wait_for(1)[0].user == "alice"


def test_a_reused_connection_keeps_tls_and_auth(make_agent, auth_sink, passwords, caplog):
    caplog.set_level(logging.INFO)
    agent = make_agent(**passwords())
    assert deliver(agent, qid="Q1").status == deliver(agent, qid="Q2").status == SENT
    first, second = auth_sink.wait_for(2)
    assert auth_sink.sessions == 1
    assert (first.tls, first.user) == (second.tls, second.user) == ("TLSv1.3", "joe")
    assert auth_sink.verbs.count("AUTH") == 1 and auth_sink.verbs.count("STARTTLS") == 1
    assert "conn_use=2" in log_lines(caplog, "relayd.smtp")[-1]


def test_no_credentials_no_auth(make_agent, auth_sink, passwords):
    assert deliver(make_agent(**passwords("[other.example] x:y\n"))).status == SENT
    assert auth_sink.wait_for(1)[0].user is None and "AUTH" not in auth_sink.verbs


def test_the_sample_password_table_is_valid():
    sample = pathlib.Path(__file__).resolve().parents[2] / "etc" / "sasl_passwd"
    sasl = SaslClient(load_config(smtp_sasl_auth_enable="yes", mydestination="",
                                  smtp_sender_dependent_authentication="yes",
                                  smtp_sasl_password_maps=f"texthash:{sample}"))
    dest = parse_nexthop("[mail.isp.example]:submission")
    assert sasl.credentials("bob@example.com", dest, "Q").user == "relay-account"
    assert sasl.credentials("alice@example.com", dest, "Q").user == "alice@isp.example"
    assert sasl.credentials("carol@example.net", dest, "Q").user == "example-net-relay"
