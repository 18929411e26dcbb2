"""mysql: tables in a real relayd process, over SMTP (smtplib), against real
MariaDB servers: relay_recipient_maps (the seed's legacy query), an access
map, virtual_alias_maps; a row changed while relayd runs; both servers down
(451) and one back (250) in the same SMTP session; config check."""
import os
import pwd
import smtplib
import subprocess
import sys
import time

from relayd.smtp import replies as R
from tests.support.mariadb import DBNAME, PASSWORD, USER

SEED = ("table = relay_recipients\nselect_field = action\nwhere_field = address\n"
        "additional_conditions = and status = 'paid'\n")
ACCESS = "query = SELECT action FROM access WHERE client = '%s'\n"
ALIASES = "query = SELECT goto FROM aliases WHERE alias = '%s'\n"


def reply(r) -> tuple[int, bytes]:
    return r.code, f"{r.status} {r.text}".encode()


def test_recipients_access_and_aliases_from_mysql(relayd_factory, sink, mariadb, tmp_path):
    recipients = mariadb.table_file(tmp_path / "recipients.cf", SEED)
    access = mariadb.table_file(tmp_path / "access.cf", ACCESS, tcp=False)
    aliases = mariadb.table_file(tmp_path / "aliases.cf", ALIASES)
    relayd = relayd_factory(
        f"relay_recipient_maps = mysql:{recipients}\n"
        f"virtual_alias_maps = proxy:mysql:{aliases}\n"
        f"smtpd_recipient_restrictions = check_sender_access mysql:{access},\n"
        "    permit_mynetworks, reject_unauth_destination\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=20) as client:
        client.ehlo("client.example")
        client.mail("someone@evil.example")
        assert client.rcpt("ann@relay.example") == (
            550, b"5.7.1 <someone@evil.example>: Sender address rejected: no thanks")
        client.rset()
        client.mail("blocked@evil.example")
        assert client.rcpt("ann@relay.example") == (
            554, b"5.7.1 <blocked@evil.example>: Sender address rejected: go away")
        client.rset()
        client.mail("a@example.org")
        assert client.rcpt("bob@relay.example") == reply(
            R.R550_USER_UNKNOWN.format("bob@relay.example", "Recipient address",
                                       " in relay recipient table"))
        assert client.rcpt("team@relay.example")[0] == 250
        client.data(b"Subject: to the team\r\n\r\nhello\r\n")
    (msg,) = sink.wait_for(1, timeout=15)
    assert sorted(msg.recipients) == ["ann@relay.example", "carol@relay.example"]


def test_relocated_and_canonical_maps_from_mysql(relayd_factory, sink, mariadb, tmp_path):
    aliases = mariadb.table_file(tmp_path / "aliases.cf", ALIASES + "expansion_limit = 1\n")
    relayd = relayd_factory(f"relocated_maps = mysql:{aliases}\n"
                            f"sender_canonical_maps = mysql:{aliases}\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=20) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        assert client.rcpt("info@relay.example") == reply(
            R.R550_USER_MOVED.format("info@relay.example", "Recipient address",
                                     "ann@relay.example"))
        client.rset()
        client.sendmail("info@relay.example", ["someone@relay.example"],
                        b"From: info@relay.example\r\nSubject: canonical\r\n\r\nhi\r\n")
    (msg,) = sink.wait_for(1, timeout=15)
    assert msg.sender == "ann@relay.example"
    assert b"From: ann@relay.example\r\n" in msg.data


def test_a_row_added_while_relayd_runs_is_used_by_the_next_rcpt(relayd_factory, mariadb, tmp_path):
    recipients = mariadb.table_file(tmp_path / "recipients.cf", SEED)
    relayd = relayd_factory(f"relay_recipient_maps = mysql:{recipients}\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=20) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        assert client.rcpt("frank@relay.example")[0] == 550
        mariadb.sql(f"INSERT INTO {DBNAME}.relay_recipients"
                    " VALUES ('frank@relay.example', 'paid', 'OK')")
        try:
            assert client.rcpt("frank@relay.example")[0] == 250
        finally:
            mariadb.sql(f"DELETE FROM {DBNAME}.relay_recipients"
                        " WHERE address = 'frank@relay.example'")


def test_both_servers_down_gets_451_and_one_back_accepts_again(relayd_factory, sink,
                                                              mariadb_pair, tmp_path):
    hosts = " ".join(f"inet:127.0.0.1:{s.port}" for s in mariadb_pair)
    cf = tmp_path / "pair.cf"
    cf.write_text(f"hosts = {hosts}\nuser = {USER}\npassword = {PASSWORD}\ndbname = {DBNAME}\n"
                  f"{SEED}")
    relayd = relayd_factory(f"relay_recipient_maps = mysql:{cf}\n")
    with smtplib.SMTP("127.0.0.1", relayd.port, timeout=30) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        assert client.rcpt("ann@relay.example")[0] == 250
        for server in mariadb_pair:
            server.kill()
        assert client.rcpt("carol@relay.example") == reply(
            R.R451_TEMPORARY_LOOKUP_FAILURE.format("carol@relay.example"))
        mariadb_pair[0].start()
        deadline = time.monotonic() + 20
        while (code := client.rcpt("carol@relay.example")[0]) != 250:   # the same session
            assert code == 451 and time.monotonic() < deadline, code
            time.sleep(0.2)
        client.data(b"Subject: after the outage\r\n\r\nhello\r\n")
    (msg,) = sink.wait_for(1, timeout=15)
    assert sorted(msg.recipients) == ["ann@relay.example", "carol@relay.example"]
    log = relayd.log()
    assert f"connect to mysql server inet:127.0.0.1:{mariadb_pair[1].port}: Can't connect" in log
    assert "451 4.3.0 <carol@relay.example>: Temporary lookup failure" in log


def test_config_check_names_file_and_line_of_a_bad_mysql_setting(tmp_path):
    cf = tmp_path / "bad.cf"
    cf.write_text("dbname = mail\nquery = SELECT 1 FROM t WHERE a = '%s'\naditional = 1\n")
    (tmp_path / "main.cf").write_text(
        f"relay_domains = relay.example\nrelay_recipient_maps = proxy:mysql:{cf}\n")
    done = subprocess.run([sys.executable, "-m", "relayd", "-c", str(tmp_path), "config", "check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78
    assert done.stderr == (f"relayd: fatal: {cf}, line 3: unknown mysql_table(5) setting: "
                           "aditional\n")
    cf.write_text("query = SELECT 1\n")
    done = subprocess.run([sys.executable, "-m", "relayd", "-c", str(tmp_path), "config", "check"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (
        78, f"relayd: fatal: {cf}: missing mysql_table(5) setting: dbname\n")


def test_config_check_warns_about_a_missing_mysql_file(tmp_path):
    # No alias table: config check opens the tables as the start does, and warns of those too.
    (tmp_path / "main.cf").write_text(f"relay_recipient_maps = mysql:{tmp_path}/none.cf\n"
                                      "alias_maps =\n"
                                      f"mail_owner = {pwd.getpwuid(os.geteuid()).pw_name}\n")
    done = subprocess.run([sys.executable, "-m", "relayd", "-c", str(tmp_path), "config", "check"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (
        0, f"relayd: warning: mysql:{tmp_path}/none.cf: open {tmp_path}/none.cf: "
           "No such file or directory\n")
