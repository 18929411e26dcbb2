"""mysql_table(5) files and db_common.c's templates, without a server (sans-I/O)."""
import pytest

from relayd.config import ConfigError
from relayd.tables.mysql_cf import DEFAULT_SOCKET, Host, Templates, parse_host, read_settings


def brackets(text: str) -> str:
    """A visible quoting function: what the query would quote."""
    return "<" + text + ">"


@pytest.mark.parametrize("key, expected", [
    ("user@mail.example.com",
     "s=<user@mail.example.com> u=<user> d=<mail.example.com> 1=<com> 2=<example> %"),
    ("user@example.com", "s=<user@example.com> u=<user> d=<example.com> 1=<com> 2=<example> %"),
    ("user@com", None),            # %2 needs two labels
    ("user", None),                # %d needs a domain
    ("@example.com", None),        # %u needs a local part
    ("user@", None),               # an empty domain is none
])
def test_query_expansions_and_the_keys_that_send_no_query(key, expected):
    templates = Templates("s=%s u=%u d=%d 1=%1 2=%2 %%", "%s")
    assert templates.expand_query(key, brackets) == expected


def test_u_without_a_domain_is_the_whole_key_and_uppercase_is_the_same_in_a_query():
    templates = Templates("%u|%U|%S", "%s")
    assert templates.expand_query("ann", brackets) == "<ann>|<ann>|<ann>"
    assert templates.expand_query("ann@x.example", brackets) == "<ann>|<ann>|<ann@x.example>"


def test_result_format_expands_the_value_and_uppercase_expands_the_key():
    templates = Templates("%s", "smtp:[%s] %u %d %U %D %1 %%")
    assert (templates.expand_result("mx@inside.example", "Ann@relay.example")
            == "smtp:[mx@inside.example] mx inside.example Ann relay.example example %")


def test_result_values_without_the_parts_result_format_needs_are_skipped():
    templates = Templates("%s", "%d")
    assert templates.expand_result("no-domain", "k") is None
    assert Templates("%s", "%u").expand_result("@only.example", "k") is None
    # A %D in result_format: keys without a domain are not even queried.
    assert Templates("%s", "%D").expand_query("ann", brackets) is None


@pytest.mark.parametrize("template", ["%x", "tail %", "%0"])
def test_a_bad_template_is_an_error(template):
    with pytest.raises(ValueError, match="invalid query template"):
        Templates(template, "%s")


@pytest.mark.parametrize("text, host", [
    ("unix:/run/x.sock", Host("unix:/run/x.sock", unix_socket="/run/x.sock")),
    ("inet:db.example:3307", Host("inet:db.example:3307", host="db.example", port=3307)),
    ("db.example", Host("db.example", host="db.example", port=3306)),
    ("127.0.0.1:mysql", Host("127.0.0.1:mysql", host="127.0.0.1", port=3306)),
    ("localhost", Host("localhost", unix_socket=DEFAULT_SOCKET)),
    ("inet:localhost:3307", Host("inet:localhost:3307", unix_socket=DEFAULT_SOCKET)),
    ("inet:[::1]:3307", Host("inet:[::1]:3307", host="::1", port=3307)),
])
def test_hosts_are_read_as_dict_mysql_reads_them(text, host):
    assert parse_host(text) == host


def test_the_seed_legacy_settings_build_postfix_query(tmp_path):
    path = tmp_path / "relay.cf"
    path.write_text("user = relayd\npassword = pw\ndbname = mail\ntable = customers\n"
                    "select_field = email\nwhere_field = email\n"
                    "additional_conditions = and status = 'paid'\n"
                    "hosts = 127.0.0.1,\n  unix:/run/db.sock\n")
    settings = read_settings(str(path))
    assert settings.query == "SELECT email FROM customers WHERE email='%s' and status = 'paid'"
    assert [h.text for h in settings.hosts] == ["127.0.0.1", "unix:/run/db.sock"]
    assert settings.templates.expand_query("it's@x", brackets) == (
        "SELECT email FROM customers WHERE email='<it's@x>' and status = 'paid'")


def test_defaults(tmp_path):
    path = tmp_path / "t.cf"
    path.write_text("dbname = mail\nquery = SELECT 1\n")
    settings = read_settings(str(path))
    assert [h.text for h in settings.hosts] == ["localhost"]
    assert (settings["charset"], settings["result_format"], settings["option_group"]) == (
        "utf8mb4", "%s", "client")
    assert settings.number("retry_interval", 1) == settings.number("idle_interval", 1) == 60
    assert settings.flag("require_result_set") is True
    assert settings.flag("tls_verify_cert") is None


@pytest.mark.parametrize("text, line, message", [
    ("dbname = mail\nquery = SELECT 1\nqurey = x\n", 3, "unknown mysql_table(5) setting: qurey"),
    ("query = SELECT 1\n", None, "missing mysql_table(5) setting: dbname"),
    ("dbname = mail\ntable = t\nwhere_field = a\n", None,
     "missing mysql_table(5) setting: select_field"),
    ("dbname = mail\n\nquery = SELECT %x\n", 3, "invalid query template: SELECT %x"),
    ("dbname = mail\nquery = SELECT 1\nresult_format = %q\n", 3,
     "invalid result template: %q"),
    ("dbname = mail\nquery = SELECT 1\nexpansion_limit = lots\n", 3,
     "expansion_limit: bad numerical value: lots"),
    ("dbname = mail\nquery = SELECT 1\nretry_interval = 0\n", 3,
     "retry_interval: bad numerical value: 0"),
    ("dbname = mail\nquery = SELECT 1\nrequire_result_set = maybe\n", 3,
     "require_result_set: bad boolean value: maybe"),
    ("dbname = mail\nquery = SELECT 1\nhosts = db:nosuchservice\n", 3,
     "hosts: unknown service: nosuchservice/tcp"),
    ("dbname = mail\nnot a setting\n", 2, "missing '=' after attribute name"),
])
def test_bad_files_are_reported_by_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.cf"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_settings(str(path))
    assert (caught.value.file, caught.value.line) == (str(path), line)
    assert message in caught.value.message
