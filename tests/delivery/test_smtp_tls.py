"""Client TLS towards the next hop: real STARTTLS handshakes with the recording
sink (stdlib ssl, the test CA's server certificate for localhost) on 127.0.0.1."""
import logging
import re

import pytest

from relayd.config import ConfigError
from relayd.delivery.route import parse_nexthop
from relayd.delivery.smtp import SmtpDeliveryAgent
from relayd.queue.outcome import BOUNCED, DEFERRED, SENT
from tests.delivery.conftest import deliver, log_lines, old_request
from tests.support.sink import Sink

CIPHER = r"TLSv1\.3 with cipher TLS_\w+ \(\d+/\d+ bits\)"


def test_may_without_starttls_delivers_in_clear(make_agent, sink):
    assert deliver(make_agent(smtp_tls_security_level="may")).status == SENT
    assert sink.wait_for(1)[0].tls is None


def test_may_uses_starttls_when_offered_and_logs_it(make_agent, tls_sink, caplog):
    caplog.set_level(logging.INFO)
    assert deliver(make_agent(smtp_tls_loglevel="1")).status == SENT   # may is the default
    assert tls_sink.wait_for(1)[0].tls == "TLSv1.3"
    line = next(x for x in log_lines(caplog, "relayd.smtp") if "TLS connection" in x)
    assert re.fullmatch(
        rf"Untrusted TLS connection established to localhost\[127\.0\.0\.1\]:{tls_sink.port}: "
        + CIPHER, line), line


def test_trusted_with_the_ca_at_level_may(make_agent, tls_sink, tls_certs, caplog):
    caplog.set_level(logging.INFO)
    deliver(make_agent(smtp_tls_loglevel="1", smtp_tls_CAfile=tls_certs.cert("ca")))
    assert any(x.startswith("Trusted TLS connection established to localhost[127.0.0.1]")
               for x in log_lines(caplog, "relayd.smtp"))


def test_encrypt_without_starttls_defers_and_sends_nothing_in_clear(make_agent, sink):
    outcome = deliver(make_agent(smtp_tls_security_level="encrypt"))
    assert (outcome.status, outcome.dsn) == (DEFERRED, "4.7.4")
    assert outcome.reason == "TLS is required, but was not offered by host localhost[127.0.0.1]"
    assert "MAIL" not in sink.verbs and sink.verbs[:1] == ["EHLO"]


def test_encrypt_delivers_over_tls(make_agent, tls_sink):
    assert deliver(make_agent(smtp_tls_security_level="encrypt")).status == SENT
    assert tls_sink.wait_for(1)[0].tls == "TLSv1.3"


def test_may_after_a_failed_handshake_defers_a_fresh_message(make_agent, old_tls_sink, caplog):
    caplog.set_level(logging.INFO)
    outcome = deliver(make_agent())
    assert (outcome.status, outcome.dsn) == (DEFERRED, "4.7.5")
    assert outcome.reason == "Cannot start TLS: handshake failure"
    assert outcome.relay == f"localhost[127.0.0.1]:{old_tls_sink.port}"
    assert f"SSL_connect error to localhost[127.0.0.1]:{old_tls_sink.port}: -1" in log_lines(
        caplog, "relayd.smtp")
    assert "MAIL" not in old_tls_sink.verbs


def test_may_falls_back_to_plaintext_for_a_message_that_waited(make_agent, old_tls_sink, caplog):
    caplog.set_level(logging.INFO)
    agent, dest = make_agent()
    assert agent.deliver(dest, old_request()).outcomes[0].status == SENT
    [txn] = old_tls_sink.wait_for(1)
    assert txn.tls is None and old_tls_sink.sessions == 2
    assert "QID1: Cannot start TLS: handshake failure" in log_lines(caplog, "relayd.smtp")


def test_encrypt_never_falls_back(make_agent, old_tls_sink):
    agent, dest = make_agent(smtp_tls_security_level="encrypt")
    outcome = agent.deliver(dest, old_request()).outcomes[0]
    assert (outcome.status, outcome.reason) == (DEFERRED, "Cannot start TLS: handshake failure")
    assert "MAIL" not in old_tls_sink.verbs


@pytest.mark.parametrize("level", ["verify", "secure"])
def test_verify_and_secure_with_the_test_ca(make_agent, tls_sink, tls_certs, caplog, level):
    caplog.set_level(logging.INFO)
    outcome = deliver(make_agent(smtp_tls_security_level=level, smtp_tls_loglevel="1",
                                 smtp_tls_CAfile=tls_certs.cert("ca")))
    assert outcome.status == SENT
    assert tls_sink.wait_for(1)[0].tls == "TLSv1.3"
    assert any(x.startswith("Verified TLS connection established to localhost[127.0.0.1]")
               for x in log_lines(caplog, "relayd.smtp"))


def test_unknown_ca_is_deferred(make_agent, tls_sink, tls_certs, caplog):
    caplog.set_level(logging.INFO)
    outcome = deliver(make_agent(smtp_tls_security_level="verify",
                                 smtp_tls_CAfile=tls_certs.cert("stranger")))
    assert (outcome.status, outcome.dsn, outcome.reason) == (
        DEFERRED, "4.7.5", "Server certificate not verified")
    assert (f"certificate verification failed for localhost[127.0.0.1]:{tls_sink.port}: "
            "untrusted issuer /CN=relayd test CA") in log_lines(caplog, "relayd.smtp")
    assert "MAIL" not in tls_sink.verbs


def test_no_ca_at_all_is_deferred_at_secure(make_agent, tls_sink):
    outcome = deliver(make_agent(smtp_tls_security_level="secure"))
    assert (outcome.status, outcome.reason) == (DEFERRED, "Server certificate not verified")


def test_wrong_name_is_deferred(make_agent, tls_sink, tls_certs, caplog):
    caplog.set_level(logging.INFO)
    outcome = deliver(make_agent(smtp_tls_security_level="secure",
                                 smtp_tls_secure_cert_match="mail.example.com",
                                 smtp_tls_CAfile=tls_certs.cert("ca")))
    assert (outcome.status, outcome.reason) == (DEFERRED, "Server certificate not verified")
    assert (f"server certificate verification failed for localhost[127.0.0.1]:{tls_sink.port}: "
            "num=62:hostname mismatch") in log_lines(caplog, "relayd.smtp")
    assert "MAIL" not in tls_sink.verbs


def test_policy_maps_choose_per_next_hop(make_agent, tls_sink, tls_certs, tmp_path):
    plain = Sink().start()   # a second next hop, without STARTTLS
    try:
        policy = tmp_path / "tls_policy"
        policy.write_text(f"[localhost]:{tls_sink.port}  secure match=relayd.test\n"
                          f"[localhost]:{plain.port}  none\n")
        common = dict(smtp_tls_security_level="encrypt", smtp_tls_CAfile=tls_certs.cert("ca"),
                      smtp_tls_policy_maps=f"texthash:{policy}")
        assert deliver(make_agent(**common)).status == SENT
        assert deliver(make_agent(relayhost=f"[localhost]:{plain.port}", **common)).status == SENT
        assert tls_sink.wait_for(1)[0].tls == "TLSv1.3"
        assert plain.wait_for(1)[0].tls is None
    finally:
        plain.stop()


def test_a_bad_policy_entry_defers(make_agent, tls_sink, tmp_path, caplog):
    policy = tmp_path / "tls_policy"
    policy.write_text(f"[localhost]:{tls_sink.port}  encrypt match=relayd.test\n")
    outcome = deliver(make_agent(smtp_tls_policy_maps=f"texthash:{policy}"))
    assert (outcome.status, outcome.dsn, outcome.reason) == (
        DEFERRED, "4.7.5", "client TLS configuration problem")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (f'smtp_tls_policy_maps, next-hop destination "[localhost]:{tls_sink.port}": '
            'attribute "match" invalid at security level "encrypt"') in warnings
    assert tls_sink.sessions == 0


def test_a_reused_connection_keeps_tls(make_agent, tls_sink):
    agent = make_agent(smtp_tls_security_level="encrypt")
    assert deliver(agent, qid="Q1").status == deliver(agent, qid="Q2").status == SENT
    first, second = tls_sink.wait_for(2)
    assert tls_sink.sessions == 1 and first.tls == second.tls == "TLSv1.3"
    assert tls_sink.verbs.count("STARTTLS") == 1


def test_a_new_connection_resumes_the_tls_session(make_agent, tls_sink, caplog):
    caplog.set_level(logging.INFO)
    agent = make_agent(smtp_tls_security_level="encrypt", smtp_tls_loglevel="2")
    deliver(agent, qid="Q1")
    agent[0].cache.close()          # the next message needs a new connection
    deliver(agent, qid="Q2")
    first, second = tls_sink.wait_for(2)
    assert tls_sink.sessions == 2
    assert (first.tls_resumed, second.tls_resumed) == (False, True)
    assert f"localhost[127.0.0.1]:{tls_sink.port}: Reusing old session" in log_lines(
        caplog, "relayd.smtp")


def test_sni_from_smtp_tls_servername(make_agent, tls_sink):
    seen = []
    tls_sink.tls_context.sni_callback = lambda sock, name, ctx: seen.append(name)
    deliver(make_agent(smtp_tls_servername="hostname"))
    deliver(make_agent(smtp_tls_servername="relayd.test"))
    assert seen == ["localhost", "relayd.test"]


def test_an_unreadable_ca_file_stops_startup(config, tmp_path):
    with pytest.raises(ConfigError, match="smtp_tls_CAfile"):
        SmtpDeliveryAgent(config.with_overrides({"smtp_tls_CAfile": str(tmp_path / "none.pem")}))


def test_a_stale_tls_connection_is_not_reused(make_agent, tls_sink):
    agent = make_agent(smtp_tls_security_level="encrypt")
    assert deliver(agent, qid="Q1").status == SENT
    tls_sink.stop()            # drops the idle TLS connection without close_notify
    tls_sink.start()
    assert deliver(agent, qid="Q2").status == SENT
    assert tls_sink.sessions == 2 and tls_sink.wait_for(2)[1].tls == "TLSv1.3"


@pytest.mark.parametrize("reply, status, dsn", [("454 4.7.0 TLS not available", DEFERRED, "4.7.0"),
                                                ("554 5.7.3 no TLS for you", BOUNCED, "5.7.3")])
def test_starttls_refused(make_agent, tls_sink, reply, status, dsn):
    tls_sink.starttls_reply = reply
    outcome = deliver(make_agent(smtp_tls_security_level="encrypt"))
    assert (outcome.status, outcome.dsn) == (status, dsn)
    assert outcome.reason == f"TLS is required, but host localhost[127.0.0.1] refused to start TLS: {reply}"
    assert "MAIL" not in tls_sink.verbs
    assert deliver(make_agent(smtp_tls_security_level="may")).status == SENT   # may: in the clear
    assert tls_sink.wait_for(1)[0].tls is None


def test_plaintext_injected_after_the_starttls_reply_is_refused(make_agent, tls_sink):
    # CVE-2011-0411, client side: a line after "220" came before TLS and must not count.
    tls_sink.starttls_reply = "220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected"
    outcome = deliver(make_agent(smtp_tls_security_level="encrypt"))
    # Read with the 220 (one write on loopback): refused by the protocol core; read
    # after it: fed to the TLS handshake, which fails. Never taken as a reply.
    assert outcome.status == DEFERRED
    assert ("plaintext received after the STARTTLS reply" in outcome.reason
            or outcome.reason == "Cannot start TLS: handshake failure"), outcome.reason
    assert "MAIL" not in tls_sink.verbs


def test_wrapper_mode_handshake_before_the_greeting(make_agent, tls_sink, tls_certs):
    tls_sink.wrapper = True
    agent = make_agent(smtp_tls_wrappermode="yes", smtp_tls_security_level="secure",
                       smtp_tls_CAfile=tls_certs.cert("ca"))
    assert deliver(agent).status == SENT
    [txn] = tls_sink.wait_for(1)
    assert txn.tls == "TLSv1.3" and "STARTTLS" not in tls_sink.verbs


def test_wrapper_mode_needs_encrypt(make_agent, tls_sink, caplog):
    tls_sink.wrapper = True
    outcome = deliver(make_agent(smtp_tls_wrappermode="yes"))     # level may
    assert (outcome.status, outcome.reason) == (DEFERRED, "client TLS configuration problem")
    assert tls_sink.sessions == 0
    assert ('smtp_tls_wrappermode requires "smtp_tls_security_level = encrypt" (or stronger)'
            in log_lines(caplog, "relayd.smtp"))
