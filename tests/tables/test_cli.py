"""relayd-postmap, relayd-postalias, relayd-newaliases: build, query, list, exit statuses."""
import io
import pathlib
import subprocess

from relayd.cli.postalias import newaliases_main, postalias_main
from relayd.cli.postmap import main as postmap_main
from relayd.tables.base import open_table

ALIASES = """\
# aliases(5)
Postmaster: root
root: admin@example.com,
  other@example.com
"quoted name": x
list: :include:/etc/relayd/list
prog: "|/usr/bin/prog arg, x", y
a: x,y ,, z
"""


def _capture(capsys, main, argv, stdin="", monkeypatch=None):
    """(exit status, stdout, stderr) of main(argv), with *stdin* as standard input."""
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_postmap_build_then_query(write_table, capsys, monkeypatch):
    path = write_table("access", "Example.com REJECT\nuser@ OK\n")
    assert _capture(capsys, postmap_main, [path])[0] == 0
    assert _capture(capsys, postmap_main, ["-q", "EXAMPLE.COM", "hash:" + path])[:2] == (0, "REJECT\n")
    assert _capture(capsys, postmap_main, ["-q", "nothere", path])[:2] == (1, "")
    status, out, _ = _capture(capsys, postmap_main, ["-q", "-", path],
                              "user@\nnothere\nexample.com\n", monkeypatch)
    assert (status, out) == (0, "user@\tOK\nexample.com\tREJECT\n")
    status, out, _ = _capture(capsys, postmap_main, ["-s", path])
    assert (status, sorted(out.splitlines())) == (0, ["example.com\tREJECT", "user@\tOK"])


def test_postmap_query_searches_tables_in_order(write_table, capsys):
    first = write_table("first", "/^a/ from regexp\n")
    second = write_table("second", "a from texthash\nb b-value\n")
    argv = ["-q", "b", "regexp:" + first, "texthash:" + second]
    assert _capture(capsys, postmap_main, argv)[:2] == (0, "b-value\n")
    argv[1] = "a"
    assert _capture(capsys, postmap_main, argv)[:2] == (0, "from regexp\n")


def test_postmap_errors_and_exit_statuses(write_table, capsys):
    bad = write_table("bad", "ok value\nlonely\n")
    status, _, err = _capture(capsys, postmap_main, [bad])
    assert status == 78 and f"{bad}, line 2: expected format" in err
    status, _, err = _capture(capsys, postmap_main, ["-q", "x", "regexp:" + bad])
    assert status == 78 and f"{bad}, line 1: regexp map: unrecognized request" in err
    status, _, err = _capture(capsys, postmap_main, ["-q", "x", "bogus:" + bad])
    assert status == 78 and "unsupported dictionary type: bogus" in err
    assert _capture(capsys, postmap_main, ["-q"])[0] == 64
    status, _, err = _capture(capsys, postmap_main, ["texthash:" + bad])
    assert status == 78 and "nothing to build" in err


def test_postmap_warns_about_duplicates(write_table, capsys):
    path = write_table("access", "a 1\nA 2\n")
    status, _, err = _capture(capsys, postmap_main, [path])
    assert status == 0
    assert f'relayd-postmap: warning: {path}, line 2: duplicate entry: "a"' in err
    assert open_table("hash:" + path).lookup("a") == "1"


def test_postalias_matches_postfix(write_table, capsys, postfix_confdir, tmp_path):
    ours = write_table("aliases", ALIASES)
    assert _capture(capsys, postalias_main, [ours])[0] == 0
    status, out, _ = _capture(capsys, postalias_main, ["-s", ours])
    theirs = write_table("postfix-aliases", ALIASES)
    subprocess.run(["postalias", "-c", postfix_confdir, theirs], check=True)
    postfix = subprocess.run(["postalias", "-c", postfix_confdir, "-s", theirs],
                             capture_output=True, text=True, check=True).stdout
    # Postfix adds Sendmail's "@" and NIS's YP_* entries; relayd does not.
    expected = [line for line in postfix.splitlines() if not line.startswith(("@:", "YP_"))]
    assert sorted(out.splitlines()) == sorted(expected)
    assert _capture(capsys, postalias_main, ["-q", "POSTMASTER", ours])[:2] == (0, "root\n")


def test_postalias_bad_line(write_table, capsys):
    path = write_table("aliases", "root: admin\nnocolon here\n")
    status, _, err = _capture(capsys, postalias_main, [path])
    assert status == 78 and f"{path}, line 2: need name:value pair" in err


def test_newaliases_builds_alias_database(tmp_path, capsys):
    (tmp_path / "main.cf").write_text("alias_database = hash:$config_directory/aliases\n")
    (tmp_path / "aliases").write_text(ALIASES)
    assert _capture(capsys, newaliases_main, ["-c", str(tmp_path)])[0] == 0
    table = open_table(f"hash:{tmp_path}/aliases")
    assert table.lookup("root") == "admin@example.com, other@example.com"
    assert table.lookup("list") == ":include:/etc/relayd/list"


def test_docs_say_the_table_commands_are_installed_under_postfixs_names_too():
    """setup.py installs postmap, postalias and newaliases beside relayd-NAME:
    docs/tables.md must say so, not that the relayd-* names leave Postfix's alone."""
    root = pathlib.Path(__file__).resolve().parents[2]
    setup = (root / "setup.py").read_text()
    doc = " ".join((root / "docs" / "tables.md").read_text().split())
    for name in ("postmap", "postalias", "newaliases"):
        assert f'"{name} = relayd.cli.' in setup, name
        assert f"`{name}`" in doc, name
    assert "installed twice: as `relayd-NAME` and under Postfix's own name" in doc
    assert "do not replace Postfix's own commands" not in doc
