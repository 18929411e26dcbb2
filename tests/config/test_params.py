"""The parameter table: every default is a valid value of its own type."""
import ast
import pathlib
from collections import Counter

import pytest

from relayd.config import load_config
from relayd.params import _RELAYD, PARAMS, POSTFIX_DEFAULTS, typed_default
from relayd.paramtypes import TIME_UNITS, TYPES, BadValue, convert, split_list

SPEC_NAMES = """myhostname mydomain myorigin mydestination mynetworks mynetworks_style
relay_domains relayhost inet_interfaces inet_protocols message_size_limit smtpd_recipient_limit
smtpd_timeout smtpd_banner mail_name smtpd_helo_required disable_vrfy_command
smtpd_hard_error_limit smtpd_soft_error_limit smtpd_error_sleep_time hopcount_limit
smtpd_forbid_bare_newline smtpd_forbid_bare_newline_exclusions line_length_limit queue_directory
queue_run_delay minimal_backoff_time maximal_backoff_time maximal_queue_lifetime
bounce_queue_lifetime default_destination_concurrency_limit default_process_limit
smtp_connect_timeout smtp_helo_timeout smtp_mail_timeout smtp_rcpt_timeout smtp_data_init_timeout
smtp_data_xfer_timeout smtp_data_done_timeout smtp_quit_timeout smtp_connection_reuse_time_limit
smtp_connection_cache_time_limit smtpd_relay_restrictions smtpd_recipient_restrictions
smtpd_client_restrictions smtpd_helo_restrictions smtpd_sender_restrictions
smtpd_data_restrictions smtpd_end_of_data_restrictions smtpd_delay_reject
smtpd_client_connection_count_limit smtpd_session_limit smtpd_client_port_logging maillog_file
config_directory command_directory daemon_directory data_directory mail_owner default_privs
compatibility_level biff append_dot_mydomain recipient_delimiter smtpd_tls_security_level
smtpd_sasl_auth_enable alias_maps alias_database virtual_alias_maps relay_recipient_maps
transport_maps double_bounce_sender notify_classes queue_minfree smtputf8_enable
relayd_queue_fsync relayd_queue_segment_size readme_directory smtpd_tls_cert_file
smtpd_tls_key_file smtp_tls_CApath smtp_tls_security_level smtp_tls_session_cache_database
smtpd_tls_session_cache_database mailbox_size_limit home_mailbox""".split()


def test_every_parameter_the_spec_names_is_declared():
    assert [n for n in SPEC_NAMES if n not in PARAMS] == []


def test_each_parameter_is_declared_once():
    """A second declaration would silently replace the first in PARAMS."""
    twice = [name for name, n in Counter(p.name for p in _RELAYD).items() if n > 1]
    assert twice == []


@pytest.mark.parametrize("param", [p for p in PARAMS.values() if p.type != "str"],
                         ids=lambda p: p.name)
def test_typed_defaults_convert(param):
    assert param.type in TYPES
    default = load_config()[param.name]
    if param.type == "time":
        assert param.unit == param.default[-1] and param.unit in TIME_UNITS
        assert isinstance(default, int)


def test_postfix_defaults_an_admin_relies_on():
    config = load_config(myhostname="mx.example.com")
    assert config["message_size_limit"] == 10240000
    assert config["maximal_queue_lifetime"] == 5 * 86400
    assert config["smtpd_timeout"] == 300
    assert config["mydestination"] == ["mx.example.com", "localhost.example.com", "localhost"]
    assert config["mynetworks"] == ["127.0.0.0/8", "[::ffff:127.0.0.0]/104", "[::1]/128"]
    assert config["relay_domains"] == []
    assert config["smtpd_relay_restrictions"] == [
        "permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination"]
    assert config["smtpd_banner"] == "mx.example.com ESMTP relayd"
    assert config["smtpd_forbid_bare_newline"] == "normalize"
    assert config["smtpd_forbid_bare_newline_exclusions"] == config["mynetworks"]
    assert config["double_bounce_sender"] == "double-bounce"
    assert config["smtpd_delay_reject"] is True


def test_parameters_relayd_reads_have_postfix_types_and_defaults():
    config = load_config(myhostname="mx.example.com")
    assert config["smtp_rset_timeout"] == 20
    assert config["soft_bounce"] is False and config["smtpd_reject_unlisted_recipient"] is True
    assert config["header_size_limit"] == 102400 and config["body_checks_size_limit"] == 51200
    assert (config["access_map_reject_code"], config["access_map_defer_code"]) == (554, 450)
    assert config["unknown_local_recipient_reject_code"] == 550
    assert config["propagate_unmatched_extensions"] == ["canonical", "virtual"]
    assert config["local_transport"] == "local:mx.example.com"
    assert config["smtpd_client_event_limit_exceptions"] == config["mynetworks"]
    headers = load_config(header_checks="regexp:/etc/h", smtp_rset_timeout="2m")
    assert headers["mime_header_checks"] == headers["nested_header_checks"] == ["regexp:/etc/h"]
    assert headers["smtp_rset_timeout"] == 120
    assert load_config(virtual_maps="hash:/v")["virtual_alias_maps"] == ["hash:/v"]


def test_mydomain_follows_myhostname():
    assert load_config(myhostname="mx.example.com")["mydomain"] == "example.com"
    assert load_config(myhostname="standalone")["mydomain"] == "localdomain"
    assert load_config(myhostname="a.b.c", mydomain="b.c")["mydomain"] == "b.c"


@pytest.mark.parametrize("text, seconds", [
    ("7", 7 * 86400), ("12h", 12 * 3600), ("30m", 1800), ("90s", 90), ("1w", 604800),
    ("2D", 2 * 86400)])
def test_time_units_with_the_parameters_default_unit(text, seconds):
    # maximal_queue_lifetime's default unit is days, as in Postfix.
    assert convert(PARAMS["maximal_queue_lifetime"], text) == seconds


def test_time_without_unit_in_seconds_for_seconds_parameters():
    assert convert(PARAMS["smtpd_timeout"], "60") == 60


@pytest.mark.parametrize("name, text, message", [
    ("message_size_limit", "10M", "bad numerical value: 10M"),
    ("smtpd_recipient_limit", "-1", "bad numerical value: -1"),
    ("smtpd_timeout", "5x", "bad time value or unit: 5x"),
    ("smtpd_timeout", "1.5s", "bad time value or unit: 1.5s"),
    ("smtpd_helo_required", "maybe", "bad boolean value: maybe"),
    ("mynetworks_style", "world", "bad value: 'world'"),
    ("inet_protocols", "ipv5", "bad value: 'ipv5'"),
    ("header_size_limit", "100k", "bad numerical value: 100k"),
    ("access_map_reject_code", "5xx", "bad numerical value: 5xx"),
    ("soft_bounce", "maybe", "bad boolean value: maybe"),
    ("smtp_rset_timeout", "20x", "bad time value or unit: 20x"),
    ("masquerade_classes", "envelope_sender, sender", "bad value: 'sender'"),
    ("receive_override_options", "no_header_checks", "bad value: 'no_header_checks'"),
])
def test_bad_values(name, text, message):
    with pytest.raises(BadValue, match=message):
        convert(PARAMS[name], text)


@pytest.mark.parametrize("text", ["yes", "YES", "true", "True"])
def test_bool_yes(text):
    assert convert(PARAMS["smtpd_helo_required"], text) is True


@pytest.mark.parametrize("text", ["no", "No", "false"])
def test_bool_no(text):
    assert convert(PARAMS["smtpd_helo_required"], text) is False


def test_lists_split_on_commas_and_blanks_and_keep_braced_groups():
    assert split_list("a,b  c ,\td,, e") == ["a", "b", "c", "d", "e"]
    assert split_list("permit_mynetworks, { check_sender_access hash:/x }, reject") == [
        "permit_mynetworks", "check_sender_access hash:/x", "reject"]
    assert split_list("") == []


def test_debian_stock_main_cf_names_are_all_known():
    text = (pathlib.Path(__file__).parent / "data" / "debian-main.cf").read_text()
    names = [line.split("=")[0].strip() for line in text.splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(names) > 15
    assert [n for n in names if n not in PARAMS] == []


def test_docs_list_every_parameter_relayd_declares():
    docs = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    declared = set(PARAMS) - set(POSTFIX_DEFAULTS)
    assert [n for n in sorted(declared) if f"| `{n}` |" not in docs] == []


def _relayd_imports(module: str) -> list[str]:
    source = (pathlib.Path(__file__).resolve().parents[2] / "relayd" / module).read_text()
    imported = [alias.name for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom)]
    return [name for name in imported if name.split(".")[0] == "relayd"]


def test_params_is_the_leaf_the_configuration_builds_on():
    # relayd.config converts through relayd.params and relayd.paramtypes; neither
    # may import back (params did, for the compat list, which made an import cycle).
    assert _relayd_imports("params.py") == ["relayd.paramtypes"]
    assert _relayd_imports("paramtypes.py") == []


def test_postfix_defaults_are_read_from_the_data_file():
    # Spot checks of relayd/postfix-defaults.cf (postconf -d of Postfix 3.7):
    # an empty default, a $name default and one with blanks inside.
    assert POSTFIX_DEFAULTS["always_bcc"] == ""
    assert POSTFIX_DEFAULTS["address_verify_relayhost"] == "$relayhost"
    assert POSTFIX_DEFAULTS["allow_mail_to_commands"] == "alias, forward"
    assert len(POSTFIX_DEFAULTS) > 800 and not any(n.startswith("#") for n in POSTFIX_DEFAULTS)
    assert load_config().raw("virtual_mailbox_limit") == "51200000"


def test_typed_default_is_the_declared_default_converted():
    # For code without a configuration (postmap without -c): no second default table.
    assert typed_default("header_size_limit") == 102400
    assert typed_default("smtpd_timeout") == 300
    assert typed_default("smtpd_helo_required") is False
    for name in ("mydestination", "myhostname"):   # $name and computed defaults need a Config
        with pytest.raises(ValueError, match=f"default of {name} needs a configuration"):
            typed_default(name)
