"""main.cf syntax, $name expansion and validation, as postconf(5) describes them."""
import logging

import pytest

from relayd.config import ConfigError, load_config


def test_syntax_continuation_comments_blank_lines_and_override(confdir):
    config = load_config(confdir(main_cf=(
        "# a comment\n"
        "\n"
        "mydestination = a.example,\n"
        "    b.example\n"
        "\n"
        "  # an indented comment inside the logical line\n"
        "\tc.example\n"
        "myorigin=first\n"
        "myorigin   =   second   \n"
        "relayhost =\n"
        "smtpd_banner = $myhostname ESMTP # not a comment\n")))
    assert config.raw("mydestination") == "a.example, b.example c.example"
    assert config["mydestination"] == ["a.example", "b.example", "c.example"]
    assert config["myorigin"] == "second"
    assert config["relayhost"] == ""
    assert config.raw("smtpd_banner") == "$myhostname ESMTP # not a comment"


def test_leading_whitespace_before_any_setting_is_ignored_with_a_warning(confdir, caplog):
    config = load_config(main_cf="  myorigin = lost\nrelayhost = [smart.example]\n")
    assert config["relayhost"] == "[smart.example]"
    assert config.raw("myorigin") == "$myhostname"
    assert "logical line must not start with whitespace" in caplog.text


@pytest.mark.parametrize("line, message", [
    ("foo bar = x", "missing '=' after attribute name: \"foo bar = x\""),
    ("= x", "missing attribute name: \"= x\""),
    ("just_a_name", "missing '=' after attribute name: \"just_a_name\""),
])
def test_syntax_errors_name_the_line(confdir, line, message):
    directory = confdir(main_cf=f"relayhost = x\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_config(directory)
    # Postfix: "postconf: fatal: /etc/postfix/main.cf, line 2: missing '=' ..."
    assert str(err.value) == f"{directory}/main.cf, line 2: {message}"


EXPANSIONS = [
    ("$a", "A"), ("${a}", "A"), ("x${a}y", "xAy"), ("$a.$b", "A."),
    ("${a?set}", "set"), ("${b?set}", ""), ("${a:unset}", ""), ("${b:unset}", "unset"),
    ("${a?{with blanks}}", "with blanks"), ("${b:{with blanks}}", "with blanks"),
    ("${a?{yes}:{no}}", "yes"), ("${b?{yes}:{no}}", "no"),
    ("${a?$c}", "A"), ("${a?{${c}-${b:z}}}", "A-z"),
    ("$$a", "$a"), ("cost: 5$", "cost: 5$"), ("$undefined!", "!"),
    ("$indirect", "A"),
]


@pytest.mark.parametrize("text, expected", EXPANSIONS)
def test_expansion_forms(text, expected):
    config = load_config(main_cf="a = A\nb =\nc = $a\nindirect = ${c}\n")
    assert config.expand(text) == expected


def test_expansion_is_used_in_typed_values():
    config = load_config(main_cf="limit = 2048\nmessage_size_limit = $limit\n"
                                 "myhostname = mx.example.net\n")
    assert config["message_size_limit"] == 2048
    assert config["myorigin"] == "mx.example.net"
    assert config.raw("message_size_limit") == "$limit"


def test_expansion_loop_is_an_error_naming_the_parameter(confdir):
    directory = confdir(main_cf="relayhost = x\nmyorigin = $a\na = $b\nb = ${a}\n")
    with pytest.raises(ConfigError) as err:
        load_config(directory)
    assert err.value.file == f"{directory}/main.cf"
    assert err.value.line == 2 and err.value.parameter == "myorigin"
    assert "recursive parameter expansion: $a -> $b -> $a" in str(err.value)


def test_self_reference_is_a_loop():
    with pytest.raises(ConfigError, match=r"recursive parameter expansion: \$myhostname"):
        load_config(main_cf="myhostname = $myhostname.example\n")


def test_unbalanced_brace_is_an_error():
    with pytest.raises(ConfigError, match="unmatched"):
        load_config(main_cf="myorigin = ${myhostname\n")


@pytest.mark.parametrize("setting, parameter, message", [
    ("message_size_limit = 10M", "message_size_limit", "bad numerical value: 10M"),
    ("maximal_queue_lifetime = 5y", "maximal_queue_lifetime", "bad time value or unit: 5y"),
    ("smtpd_helo_required = maybe", "smtpd_helo_required", "bad boolean value: maybe"),
    ("smtpd_forbid_bare_newline = sometimes", "smtpd_forbid_bare_newline", "bad value"),
])
def test_bad_value_names_file_line_and_parameter(confdir, setting, parameter, message):
    directory = confdir(main_cf=f"# header\nrelayhost = [smart.example]\n\n{setting}\n")
    with pytest.raises(ConfigError) as err:
        load_config(directory)
    assert str(err.value).startswith(f"{directory}/main.cf, line 4: parameter {parameter}: ")
    assert message in err.value.message


def test_bad_value_reached_through_a_reference_names_the_setting_line(confdir):
    directory = confdir(main_cf="size = big\nmessage_size_limit = $size\n")
    with pytest.raises(ConfigError) as err:
        load_config(directory)
    assert (err.value.line, err.value.parameter) == (2, "message_size_limit")
    assert err.value.message == "bad numerical value: big"


def test_unknown_parameter_is_a_warning_not_an_error(confdir, caplog):
    directory = confdir(main_cf="relayhost = x\nfoo = bar\n")
    with caplog.at_level(logging.WARNING, logger="relayd.config"):
        config = load_config(directory)
    assert f"{directory}/main.cf, line 2: unused parameter: foo=bar" in caplog.messages
    assert config["foo"] == "bar"
    with pytest.raises(KeyError):
        config["never_heard_of_it"]


def test_referenced_and_restriction_class_names_are_not_unused(caplog):
    with caplog.at_level(logging.WARNING, logger="relayd.config"):
        load_config(main_cf=(
            "my_nets = 10.0.0.0/8\nmynetworks = $my_nets\n"
            "smtpd_restriction_classes = strict\nstrict = reject\n"), master_cf=(
            "smtp inet n - n - - smtpd -o smtpd_client_restrictions=$mua_client\n"),
            mua_client="permit")
        load_config(main_cf="mua_client = permit_sasl_authenticated, reject\n", master_cf=(
            "smtp inet n - n - - smtpd -o smtpd_client_restrictions=$mua_client\n"))
    assert "unused parameter" not in caplog.text


def test_keyword_overrides_accept_python_values():
    config = load_config(main_cf="message_size_limit = 1\n", message_size_limit=5000,
                         smtpd_helo_required=True, mynetworks=["10.0.0.0/8", "[::1]/128"])
    assert config["message_size_limit"] == 5000
    assert config["smtpd_helo_required"] is True
    assert config["mynetworks"] == ["10.0.0.0/8", "[::1]/128"]
    assert config.explicit()["smtpd_helo_required"] == "yes"


def test_with_overrides_is_a_checked_copy():
    base = load_config(main_cf="myhostname = mx.example.com\n")
    copy = base.with_overrides({"myhostname": "other.example.com", "smtpd_timeout": "1m"})
    assert copy["smtpd_banner"] == "other.example.com ESMTP relayd"
    assert copy["smtpd_timeout"] == 60
    assert base["smtpd_banner"] == "mx.example.com ESMTP relayd"
    with pytest.raises(ConfigError, match="^cli: parameter smtpd_timeout: bad time"):
        base.with_overrides({"smtpd_timeout": "soon"}, source="cli")
    with pytest.raises(AttributeError):
        base.services = ()


def test_config_directory_is_explicit_as_with_postconf_c(confdir):
    directory = confdir(main_cf="relayhost = x\n")
    config = load_config(directory)
    assert config.config_directory == directory
    assert config.explicit() == {"config_directory": directory, "relayhost": "x"}


def test_missing_directory_files_give_defaults(tmp_path):
    config = load_config(str(tmp_path))
    assert config["message_size_limit"] == 10240000
    assert [s.name for s in config.services] == ["smtp"]
