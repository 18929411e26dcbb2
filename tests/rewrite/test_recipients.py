"""reject_unlisted_recipient / reject_unlisted_sender through the real pipeline."""
from relayd.checks.recipients import RecipientTables
from relayd.pipeline.context import SessionView
from relayd.pipeline.restrictions import Restrictions
from relayd.smtp.replies import R550_USER_MOVED, R550_USER_UNKNOWN

SESSION = SessionView("192.0.2.9", "client.example")


def check(make_config, rcpt, sender="someone@elsewhere.example", **params):
    params.setdefault("smtpd_recipient_restrictions",
                      "reject_unlisted_recipient, reject_unauth_destination")
    return Restrictions(make_config(**params)).check_recipient(SESSION, sender, rcpt)


def test_relay_recipient_table(make_config):
    params = {"relay_recipient_maps": "inline:{ ann@relay.example=x }"}
    assert check(make_config, "ann@relay.example", **params) is None
    assert check(make_config, "ann+tag@relay.example", **params) is None   # extension ignored
    assert check(make_config, "zed@relay.example", **params) == R550_USER_UNKNOWN.format(
        "zed@relay.example", "Recipient address", " in relay recipient table")
    assert str(check(make_config, "zed@relay.example", **params)) == (
        "550 5.1.1 <zed@relay.example>: Recipient address rejected: "
        "User unknown in relay recipient table")


def test_empty_relay_recipient_maps_accepts_everyone(make_config):
    assert check(make_config, "zed@relay.example") is None


def test_local_recipient_table_and_always_known_names(make_config):
    params = {"local_recipient_maps": "proxy:inline:{ bob=x }"}
    assert check(make_config, "bob@example.com", **params) is None
    assert check(make_config, "postmaster@example.com", **params) is None
    assert str(check(make_config, "eve@example.com", **params)) == (
        "550 5.1.1 <eve@example.com>: Recipient address rejected: "
        "User unknown in local recipient table")


def test_virtual_alias_domain(make_config):
    # Called directly: relay control does not count virtual alias domains as ours yet.
    config = make_config(
        virtual_alias_maps="inline:{ valias.example=x, info@valias.example=bob@example.com }")
    tables = RecipientTables.of(config)
    assert tables.unlisted_reply("info@valias.example") is None
    assert str(tables.unlisted_reply("nobody@valias.example")) == (
        "550 5.1.1 <nobody@valias.example>: Recipient address rejected: "
        "User unknown in virtual alias table")


def test_relocated(make_config):
    params = {"relocated_maps": "inline:{ {old@example.com = new@corp.example} }",
              "local_recipient_maps": "inline:{ old=x }"}
    assert check(make_config, "old+x@example.com", **params) == R550_USER_MOVED.format(
        "old+x@example.com", "Recipient address", "new@corp.example")


def test_reply_code_parameter_sets_the_dsn_class(make_config):
    reply = check(make_config, "zed@relay.example", unknown_relay_recipient_reject_code="450",
                  relay_recipient_maps="inline:{ ann@relay.example=x }")
    assert (reply.code, reply.status) == (450, "4.1.1")


def test_table_name_hidden(make_config):
    reply = check(make_config, "zed@relay.example", show_user_unknown_table_name="no",
                  relay_recipient_maps="inline:{ ann@relay.example=x }")
    assert reply.text == "<zed@relay.example>: Recipient address rejected: User unknown"


def test_reject_unlisted_sender(make_config):
    params = {"smtpd_sender_restrictions": "reject_unlisted_sender",
              "local_recipient_maps": "inline:{ bob=x }"}
    assert check(make_config, "x@relay.example", sender="bob@example.com", **params) is None
    assert check(make_config, "x@relay.example", sender="", **params) is None
    assert str(check(make_config, "x@relay.example", sender="eve@example.com", **params)) == (
        "550 5.1.0 <eve@example.com>: Sender address rejected: "
        "User unknown in local recipient table")


def test_lookup_failure_is_451(make_config, monkeypatch):
    """check_mail_addr_find(): a table that cannot answer is reject_dict_retry,
    naming the address validated."""
    from relayd.tables import base
    monkeypatch.setitem(base.BUILTIN_TYPES, "down", "tests.rewrite.test_rewriter:Down")
    reply = check(make_config, "ann@relay.example", relay_recipient_maps="down:x")
    assert str(reply) == "451 4.3.0 <ann@relay.example>: Temporary lookup failure"


def test_an_unusable_answer_is_a_server_configuration_error(make_config):
    """check_mail_addr_find(): an empty result (DICT_ERR_CONFIG) is reject_server_error."""
    reply = check(make_config, "ann@relay.example", relay_recipient_maps="inline:{ ann@relay.example= }")
    assert str(reply) == "451 4.3.5 Server configuration error"


def test_unlisted_sender_lookup_failure_names_the_sender(make_config, monkeypatch):
    from relayd.tables import base
    monkeypatch.setitem(base.BUILTIN_TYPES, "down", "tests.rewrite.test_rewriter:Down")
    reply = check(make_config, "x@relay.example", sender="eve@example.com",
                  smtpd_sender_restrictions="reject_unlisted_sender", local_recipient_maps="down:x")
    assert str(reply) == "451 4.3.0 <eve@example.com>: Temporary lookup failure"
