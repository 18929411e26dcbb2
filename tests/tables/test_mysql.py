"""mysql: tables against a real MariaDB (tests/support/mariadb.py), through
open_table as relayd's maps and postmap open them."""
import io
import logging

import pytest

from relayd.cli.postmap import main as postmap_main
from relayd.tables.base import TemporaryLookupError, open_table
from relayd.tables.maps import Maps
from tests.support.mariadb import DBNAME

SEED = ("table = relay_recipients\nselect_field = action\nwhere_field = address\n"
        "additional_conditions = and status = 'paid'\n")


@pytest.fixture
def table(mariadb, tmp_path):
    """``table(body, tcp=True)``: a mysql: table on the session's server."""
    opened = []

    def make(body: str, *, tcp: bool = True, name: str = "t.cf"):
        t = open_table("mysql:" + mariadb.table_file(tmp_path / name, body, tcp=tcp))
        opened.append(t)
        return t
    yield make
    for t in opened:
        t.close()


@pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "unix-socket"])
def test_the_seed_legacy_query_finds_paid_customers_only(table, tcp):
    t = table(SEED, tcp=tcp)
    assert t.lookup("ann@relay.example") == "OK"
    assert t.lookup("ANN@Relay.Example") == "OK"        # keys are folded, as Postfix's maps do
    assert t.lookup("bob@relay.example") is None        # status = 'unpaid'
    assert t.lookup("nobody@relay.example") is None


def test_query_with_each_expansion(table):
    t = table("query = SELECT transport FROM domains WHERE domain = '%d' AND '%u' <> ''"
              " AND '%s' LIKE '%%@%%' AND '%2.%1' = 'relay.example'\n")
    assert t.lookup("ann@relay.example") == "smtp:[inside.relay.example]"
    assert t.lookup("relay.example") is None             # no @: no query
    assert t.lookup("@relay.example") is None            # %u empty: no query
    assert t.lookup("ann@example") is None               # %2 missing: no query
    t3 = table("query = SELECT transport FROM domains WHERE domain = '%3.%2.%1'\n", name="3.cf")
    assert t3.lookup("x@mail.relay.example") == "sub"
    tu = table("query = SELECT goto FROM aliases WHERE alias = '%u'\n", name="u.cf")
    assert tu.lookup("ann") == "ann@relay.example"       # %u of a key without @: the key


def test_several_rows_are_joined_with_commas_through_result_format(table):
    t = table("query = SELECT goto, note FROM aliases WHERE alias = '%s'\n"
              "result_format = <%u> at %d for %U\n")
    # NULL columns are skipped silently; an empty one with a warning; 'x' has no @.
    assert t.lookup("info@relay.example") == "<ann> at relay.example for info"
    assert t.lookup("team@relay.example") == (
        "<ann> at relay.example for team,<carol> at relay.example for team")


def test_expansion_limit_is_a_temporary_error(table, caplog):
    t = table("query = SELECT goto FROM aliases WHERE alias = '%s'\nexpansion_limit = 1\n")
    assert t.lookup("info@relay.example") == "ann@relay.example"
    with pytest.raises(TemporaryLookupError):
        t.lookup("team@relay.example")
    assert "Expansion limit exceeded for key: 'team@relay.example'" in caplog.text


def test_domain_restricts_lookups_to_listed_domains(table, tmp_path):
    listed = tmp_path / "domains"
    listed.write_text("other.example\n")
    t = table(f"query = SELECT goto FROM aliases WHERE alias = '%s'\n"
              f"domain = relay.example, {listed}\n")
    assert t.lookup("team@relay.example") is not None
    assert t.lookup("ann") is None                       # unqualified: not asked
    assert t.lookup("@other.example") is None            # @domain: not asked
    assert t.lookup("x@unlisted.example") is None
    inline = table("query = SELECT goto FROM aliases WHERE alias = '%s'\n"
                   "domain = inline:{relay.example=yes}\n", name="inline.cf")
    assert inline.lookup("info@relay.example") == "ann@relay.example"
    assert inline.lookup("info@other.example") is None


@pytest.mark.parametrize("key", [
    "a'or'1'='1@relay.example", "x' OR '1'='1", "x'; DROP TABLE aliases; --",
    "a\\'@relay.example", "ann@relay.example\\", "ann@relay.example\x00", "%@relay.example",
    "____@relay.example", "ann@relay.example' -- ", '"ann@relay.example"',
    "team@relay.example' OR alias LIKE '%",
])
def test_sql_injection_attempts_find_nothing_and_change_nothing(table, mariadb, key):
    whole = table("query = SELECT goto FROM aliases WHERE alias = '%s'\n", name="s.cf")
    parts = table("query = SELECT goto FROM aliases WHERE alias = '%u@%d'\n", name="ud.cf")
    assert (whole.lookup(key), parts.lookup(key)) == (None, None)
    assert mariadb.sql(f"SELECT COUNT(*) FROM {DBNAME}.aliases") == [(5,)]


def test_a_backslash_in_an_address_is_data(table):
    t = table(SEED)
    assert t.lookup("a\\b@relay.example") == "OK"


def test_a_row_changed_in_the_database_is_used_by_the_next_lookup(table, mariadb):
    t = table(SEED)
    assert t.lookup("dave@relay.example") is None
    mariadb.sql(f"INSERT INTO {DBNAME}.relay_recipients VALUES ('dave@relay.example', 'paid', 'OK')")
    try:
        assert t.lookup("dave@relay.example") == "OK"
        mariadb.sql(f"UPDATE {DBNAME}.relay_recipients SET status = 'unpaid'"
                    " WHERE address = 'dave@relay.example'")
        assert t.lookup("dave@relay.example") is None
    finally:
        mariadb.sql(f"DELETE FROM {DBNAME}.relay_recipients WHERE address = 'dave@relay.example'")


def test_the_optional_cache_answers_until_it_expires(mariadb, tmp_path):
    from relayd.config import load_config
    config = load_config(main_cf="relayd_mysql_cache_time = 1h\n")
    t = open_table("mysql:" + mariadb.table_file(tmp_path / "c.cf", SEED), config)
    assert t.lookup("erin@relay.example") is None
    mariadb.sql(f"INSERT INTO {DBNAME}.relay_recipients VALUES ('erin@relay.example', 'paid', 'OK')")
    try:
        assert t.lookup("erin@relay.example") is None      # the cached "not found"
        t._cache.clear()                                  # the hour has passed
        assert t.lookup("erin@relay.example") == "OK"
    finally:
        mariadb.sql(f"DELETE FROM {DBNAME}.relay_recipients WHERE address = 'erin@relay.example'")


def test_a_query_the_server_refuses_is_a_temporary_error(table, caplog):
    t = table("query = SELECT nosuchcolumn FROM aliases WHERE alias = '%s'\n")
    with pytest.raises(TemporaryLookupError):
        t.lookup("team@relay.example")
    assert "query failed: Unknown column 'nosuchcolumn'" in caplog.text


def test_wrong_password_is_a_temporary_error_naming_the_server(mariadb, tmp_path, caplog):
    path = tmp_path / "bad.cf"
    path.write_text(f"hosts = 127.0.0.1:{mariadb.port}\nuser = relayd\npassword = wrong\n"
                    f"dbname = {DBNAME}\n{SEED}")
    t = open_table(f"mysql:{path}")
    with pytest.raises(TemporaryLookupError):
        Maps("relay_recipient_maps", [t]).find("ann@relay.example")
    assert f"connect to mysql server 127.0.0.1:{mariadb.port}: Access denied" in caplog.text
    assert f'mysql:{path} lookup error for "ann@relay.example"' in caplog.text


def test_postmap_q_queries_a_mysql_table(mariadb, tmp_path, capsys, monkeypatch):
    path = mariadb.table_file(tmp_path / "p.cf", SEED)
    assert postmap_main(["-q", "ann@relay.example", f"mysql:{path}"]) == 0
    assert capsys.readouterr().out == "OK\n"
    assert postmap_main(["-q", "bob@relay.example", f"mysql:{path}"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("ann@relay.example\nbob@relay.example\n"
                                                 "carol@relay.example\n"))
    capsys.readouterr()
    assert postmap_main(["-q", "-", f"mysql:{path}"]) == 0
    assert capsys.readouterr().out == "ann@relay.example\tOK\ncarol@relay.example\tOK\n"


def test_the_event_loop_runs_while_a_query_waits(table):
    """A slow query (SLEEP on the server) does not stop other greenlets."""
    import gevent
    t = table("query = SELECT goto FROM aliases WHERE alias = '%s' AND SLEEP(0.5) = 0\n")
    ticks = []

    def ticker():
        for _ in range(20):
            ticks.append(1)
            gevent.sleep(0.01)
    tick = gevent.spawn(ticker)
    assert t.lookup("info@relay.example") == "ann@relay.example"
    assert len(ticks) == 20          # all while the query ran (blocked: one)
    tick.join()


def test_option_file_supplies_what_the_table_file_leaves_out(mariadb, tmp_path):
    options = tmp_path / "my.cnf"
    options.write_text("[relayd]\nuser = relayd\npassword = s3cret\n")
    path = tmp_path / "o.cf"
    path.write_text(f"hosts = inet:127.0.0.1:{mariadb.port}\ndbname = {DBNAME}\n"
                    f"option_file = {options}\noption_group = relayd\n{SEED}")
    assert open_table(f"mysql:{path}").lookup("ann@relay.example") == "OK"


SSL_VERSION = ("query = SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS"
               " WHERE VARIABLE_NAME = 'Ssl_version' AND '%s' <> ''\n")


def test_tls_settings_encrypt_and_check_the_server(table, tls_certs):
    verified = table(f"{SSL_VERSION}tls_CAfile = {tls_certs.cert('ca')}\ntls_verify_cert = yes\n",
                     name="tls.cf")
    assert verified.lookup("x").startswith("TLSv1.")
    # Without a tls_* setting: no TLS (Ssl_version is empty, an empty result: not found).
    assert table(SSL_VERSION, name="plain.cf").lookup("x") is None
    wrong_ca = table(f"{SSL_VERSION}tls_CAfile = {tls_certs.cert('other')}\n", name="bad.cf")
    with pytest.raises(TemporaryLookupError):
        wrong_ca.lookup("x")


def test_a_missing_file_is_an_unavailable_table(tmp_path):
    from relayd.tables.base import open_table_or_surrogate
    t = open_table_or_surrogate(f"mysql:{tmp_path}/none.cf", log=logging.getLogger("x"))
    with pytest.raises(TemporaryLookupError):
        t.lookup("ann@relay.example")
