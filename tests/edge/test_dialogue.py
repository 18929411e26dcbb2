"""The SMTP dialogue without sockets: what the session driver, PluginHarness and
the tests all drive (relayd/edge/dialogue.py)."""
import ast
import logging
from pathlib import Path

import relayd.edge.dialogue
from relayd.edge.dialogue import CLOSE, NEED_DATA, DialogueSettings
from relayd.smtp.replies import R421_TIMEOUT, R421_TOO_MANY_ERRORS
from relayd.smtp.server import ServerSession
from tests.pipeline.dialogue import Dialogue, restrictions

IO_MODULES = {"socket", "ssl", "gevent", "time", "os", "select", "selectors", "threading"}


def steps(dialogue, data: bytes) -> list:
    """Feed ``data``; the steps up to NEED_DATA or CLOSE."""
    dialogue.receive_data(data)
    out = [dialogue.next_step()]
    while out[-1] is not NEED_DATA and out[-1] is not CLOSE:
        out.append(dialogue.next_step())
    return out


def test_the_dialogue_module_does_no_io():
    tree = ast.parse(Path(relayd.edge.dialogue.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & IO_MODULES


def test_session_log_lines_come_from_the_dialogue(caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = Dialogue(restrictions())
    d.dialogue.connect()
    assert d.say("EHLO client.example", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>",
                 "NOOP", "XYZZY").splitlines()[-1].startswith("500 5.5.2")
    assert steps(d.dialogue, b"")[-1] is CLOSE          # the client went away without QUIT
    d.dialogue.finish()
    assert caplog.messages[0] == "connect from unknown[198.51.100.7]"
    assert "lost connection after UNKNOWN from unknown[198.51.100.7]" in caplog.messages
    assert caplog.messages[-1] == ("disconnect from unknown[198.51.100.7] ehlo=1 mail=1 rcpt=1 "
                                   "noop=1 unknown=0/1 commands=4/5")


def test_inside_the_content_the_state_is_data_with_its_octets(caplog):
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = Dialogue(restrictions())
    d.mail("a@example.com", "b@example.com")
    assert d.say("DATA").startswith("354")
    steps(d.dialogue, b"Subject: x\r\n\r\nbody\r\n")
    assert d.dialogue.where() == "DATA (20 bytes)"
    assert d.dialogue.timed_out().endswith(R421_TIMEOUT.format("relay.test").to_bytes())
    assert "timeout after DATA (20 bytes) from unknown[198.51.100.7]" in caplog.messages


def test_error_limits_pause_then_disconnect():
    """Past smtpd_soft_error_limit each error reply comes with a delay for the
    driver to wait; at smtpd_hard_error_limit the dialogue ends with 421."""
    d = Dialogue(restrictions("smtpd_soft_error_limit = 2\nsmtpd_hard_error_limit = 4\n"
                              "smtpd_error_sleep_time = 2s\n"))
    assert steps(d.dialogue, b"XYZZY\r\n") == [None, NEED_DATA]
    assert steps(d.dialogue, b"XYZZY\r\nXYZZY\r\n") == [2, 2, NEED_DATA]
    assert steps(d.dialogue, b"XYZZY\r\nNOOP\r\n") == [CLOSE]
    assert d.dialogue.take_output().endswith(
        R421_TOO_MANY_ERRORS.format("relay.test").to_bytes())


def test_core_options_follow_the_configuration():
    config = restrictions("message_size_limit = 1000\nsmtpd_helo_required = yes\n").config
    core = ServerSession(**DialogueSettings.from_config(config).core_options(config))
    assert core.message_size_limit == 1000 and core.helo_required


def test_a_reject_in_a_later_transaction_is_noqueue(caplog):
    """smtpd's mail_reset() forgets the queue id: the next transaction's first
    rejected RCPT is logged NOQUEUE, not with the previous message's id."""
    caplog.set_level(logging.INFO, logger="relayd.smtpd")
    d = Dialogue(restrictions())
    d.mail("a@example.com", "b@example.com")
    assert d.message().startswith("250")
    assert d.mail("a@example.com", "c@elsewhere.example")[0].startswith("454")
    reject = next(m for m in caplog.messages if "reject: RCPT" in m)
    assert reject.startswith("NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 454 4.7.1 "
                             "<c@elsewhere.example>: Relay access denied"), reject


def test_replies_are_counted_by_command_code_and_enhanced_code():
    from relayd.metrics import METER
    key = ("smtpd_commands", ("RCPT", "454", "4.7.1"))
    before = METER.counters.get(key, 0)
    d = Dialogue(restrictions())
    d.mail("a@example.com", "c@elsewhere.example", "d@elsewhere.example")
    assert METER.counters.get(key) == before + 2
