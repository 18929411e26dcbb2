"""Postfix's two lookup failures over real SMTP (smtpd_check.c): a table that
cannot answer (DICT_ERR_RETRY: here a hash: table whose FILE.db is missing,
which Postfix's dict_surrogate and relayd's UnavailableTable stand in for)
gets ``451 4.3.0 <address>: Temporary lookup failure``; a table that answers
something unusable (DICT_ERR_CONFIG: an access table entry naming another
table, an empty result) gets ``451 4.3.5 Server configuration error``."""
import smtplib

from relayd.smtp import replies as R


def rcpt(port: int, recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        return client.rcpt(recipient)


def test_a_table_that_cannot_answer_and_one_that_is_wrong_get_postfix_two_replies(
        relayd_factory, tmp_path):
    access = tmp_path / "access"
    access.write_text("wrong@relay.example   hash:/etc/relayd/other\n")
    relayd = relayd_factory(
        f"relay_recipient_maps = hash:{tmp_path}/missing\n"
        f"virtual_alias_maps = inline:{{ empty@relay.example= }}\n"
        f"smtpd_recipient_restrictions = check_recipient_access texthash:{access}, "
        f"permit_mynetworks, reject_unauth_destination\n")

    retry = R.R451_TEMPORARY_LOOKUP_FAILURE.format("ann@relay.example")
    assert rcpt(relayd.port, "ann@relay.example") == (retry.code, f"{retry.status} {retry.text}".encode())
    log = relayd.wait_log("Temporary lookup failure")
    assert f"hash:{tmp_path}/missing is unavailable. open database" in log
    assert f'hash:{tmp_path}/missing lookup error for "ann@relay.example"' in log
    assert ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 451 4.3.0 <ann@relay.example>: "
            "Temporary lookup failure; from=<a@example.org> to=<ann@relay.example>") in log

    config = R.R451_CONFIG_ERROR
    for recipient in ("wrong@relay.example", "empty@relay.example"):
        assert rcpt(relayd.port, recipient) == (config.code, f"{config.status} {config.text}".encode())
    log = relayd.wait_log("to=<empty@relay.example>")
    assert f"access table texthash:{access} has entry with lookup table" in log
    assert "virtual_alias_maps lookup of empty@relay.example returns an empty string result" in log
    assert ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 451 4.3.5 Server configuration error; "
            "from=<a@example.org> to=<wrong@relay.example>") in log
