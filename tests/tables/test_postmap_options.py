"""relayd-postmap / relayd-postalias options beyond build and query, beside Debian's
postmap and postalias run on a copy of the same files: -f -i -d -r -w -b -h -p and
the accepted no-ops."""
import io
import os
import subprocess

import pytest

from relayd.cli.postalias import postalias_main
from relayd.cli.postmap import main as postmap_main

from .conftest import POSTFIX_POSTMAP

POSTFIX_POSTALIAS = "/usr/sbin/postalias"


@pytest.fixture
def both(tmp_path, postfix_confdir, capsys, monkeypatch):
    """``both(tool, args, name, stdin="")`` runs relayd's tool on tmp_path/ours/NAME and
    Postfix's on tmp_path/postfix/NAME; returns ((status, out, err) ours, theirs)."""
    for side in ("ours", "postfix"):
        (tmp_path / side).mkdir()

    def run(tool: str, args: list[str], name: str, stdin: str = ""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        main = postmap_main if tool == "postmap" else postalias_main
        status = main([*args, _with_dir(name, tmp_path / "ours")])
        captured = capsys.readouterr()
        binary = POSTFIX_POSTMAP if tool == "postmap" else POSTFIX_POSTALIAS
        done = subprocess.run([binary, "-c", postfix_confdir, *args,
                               _with_dir(name, tmp_path / "postfix")],
                              input=stdin, capture_output=True, text=True, timeout=10)
        return (status, captured.out, captured.err), (done.returncode, done.stdout, done.stderr)

    def write(name: str, text: str) -> None:
        for side in ("ours", "postfix"):
            (tmp_path / side / name).write_text(text)

    run.write = write
    return run


def _with_dir(name: str, directory) -> str:
    kind, sep, file = name.rpartition(":")
    return f"{kind}{sep}{directory}/{file}"


def _entries(out: str) -> list[str]:
    """Listed entries without Postfix's own "@:" and YP_* alias entries, in sorted order."""
    return sorted(line for line in out.splitlines() if not line.startswith(("@:", "YP_")))


def test_f_keeps_the_case_of_keys_in_build_and_query(both):
    both.write("access", "Foo.Example REJECT\nbar OK\n")
    ours, theirs = both("postmap", ["-f"], "access")
    assert ours[0] == theirs[0] == 0
    ours, theirs = both("postmap", ["-s"], "access")
    assert _entries(ours[1]) == _entries(theirs[1]) == ["Foo.Example\tREJECT", "bar\tOK"]
    for args, found in ((["-q", "Foo.Example"], False), (["-f", "-q", "Foo.Example"], True),
                        (["-f", "-q", "foo.example"], False)):
        ours, theirs = both("postmap", args, "access")
        assert ours[:2] == theirs[:2] == ((0, "REJECT\n") if found else (1, ""))


@pytest.mark.parametrize("flag, expected", [
    ([], ["a\t1", "b\t3"]), (["-r"], ["a\t2", "b\t3"]), (["-w"], ["a\t1", "b\t3"])])
def test_duplicates_warn_replace_or_ignore_as_postfix(both, flag, expected):
    both.write("dups", "a 1\nA 2\nb 3\n")
    ours, theirs = both("postmap", flag, "dups")
    assert ours[0] == theirs[0] == 0
    assert ('duplicate entry: "a"' in ours[2]) == ('duplicate entry: "a"' in theirs[2]) == (not flag)
    ours, theirs = both("postmap", ["-s"], "dups")
    assert _entries(ours[1]) == _entries(theirs[1]) == expected


@pytest.mark.parametrize("flag, foo", [([], "REJECT"), (["-r"], "replaced"), (["-w"], "REJECT")])
def test_i_adds_stdin_entries_to_the_existing_table(both, flag, foo):
    both.write("access", "foo.com REJECT\nbar OK\n")
    both("postmap", [], "access")
    ours, theirs = both("postmap", ["-i", *flag], "access", "New 1\nfoo.com replaced\n")
    assert ours[0] == theirs[0] == 0
    warned = 'access.db: duplicate entry: "foo.com"'
    assert (warned in ours[2]) == (warned in theirs[2]) == (not flag)
    ours, theirs = both("postmap", ["-s"], "access")
    assert _entries(ours[1]) == _entries(theirs[1]) == ["bar\tOK", f"foo.com\t{foo}", "new\t1"]


def test_i_creates_a_missing_table_and_refuses_a_bad_batch_whole(both, tmp_path, monkeypatch):
    ours, theirs = both("postmap", ["-i"], "fresh", "k v\n")
    assert ours[0] == theirs[0] == 0
    assert both("postmap", ["-q", "k"], "fresh")[0][:2] == (0, "v\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("k2 v2\nlonely\n"))
    assert postmap_main(["-i", str(tmp_path / "ours" / "fresh")]) == 78
    assert both("postmap", ["-q", "k2"], "fresh")[0][0] == 1  # nothing of the bad batch
    assert both("postmap", ["-q", "k"], "fresh")[0][:2] == (0, "v\n")


def test_d_deletes_with_postfix_exit_statuses(both):
    both.write("access", "foo.com REJECT\nbar OK\nbaz OK\n")
    both("postmap", [], "access")
    for args, stdin, status in ((["-d", "BAR"], "", 0), (["-d", "bar"], "", 1),
                                (["-d", "-"], "nothere\nbaz\n", 0), (["-d", "-"], "nothere\n", 1)):
        ours, theirs = both("postmap", args, "access", stdin)
        assert ours[0] == theirs[0] == status, args
    ours, theirs = both("postmap", ["-s"], "access")
    assert _entries(ours[1]) == _entries(theirs[1]) == ["foo.com\tREJECT"]


MESSAGE = ("Received: from a\n\tby b\nSubject: Hello\nX-Y: 1\nnot a header\n\n"
           "line one\nsecret here\n")
CHECKS = ("/^Subject: (.*)/ REJECT subj $1\n/^X-Y:/ WARN xy\n/secret/ DISCARD body secret\n"
          "/^Received:.*by b/ PREPEND multi\n/^$/ EMPTY\n/^not/ NOT\n")


@pytest.mark.parametrize("mode", [["-h"], ["-b"], ["-h", "-b"], ["-hbq"]])
def test_header_and_body_query_modes_match_postfix(both, mode):
    both.write("checks", CHECKS)
    args = [*mode, "-"] if mode == ["-hbq"] else [*mode, "-q", "-"]
    ours, theirs = both("postmap", args, "regexp:checks", MESSAGE)
    assert ours[:2] == theirs[:2]
    assert ours[0] == 0 and ours[1]


def test_header_mode_needs_keys_from_stdin(write_table, capsys):
    path = write_table("checks", CHECKS)
    assert postmap_main(["-h", "-q", "Subject: x", "regexp:" + path]) == 64
    assert 'specify -b or -h only with "-q -"' in capsys.readouterr().err


def test_p_and_the_accepted_no_op_options(both, tmp_path):
    both.write("access", "k v\n")
    os.chmod(tmp_path / "ours" / "access", 0o600)
    assert both("postmap", ["-N", "-n", "-o", "-v"], "access")[0][0] == 0
    assert os.stat(tmp_path / "ours" / "access.db").st_mode & 0o777 == 0o600
    assert both("postmap", ["-p"], "access")[0][0] == 0
    assert os.stat(tmp_path / "ours" / "access.db").st_mode & 0o777 == 0o644
    assert both("postmap", ["-n", "-q", "k"], "access")[0][:2] == (0, "v\n")


def test_i_and_d_only_change_hash_tables(write_table, capsys):
    path = write_table("checks", CHECKS)
    assert postmap_main(["-d", "x", "regexp:" + path]) == 78
    assert "cannot delete from this table type" in capsys.readouterr().err
    assert postmap_main(["-i", "texthash:" + path]) == 78


def test_postalias_f_i_d_as_postfix(both):
    both.write("aliases", "Root: admin\nb: c\n")
    both("postalias", ["-f"], "aliases")
    ours, theirs = both("postalias", ["-s"], "aliases")
    assert _entries(ours[1]) == _entries(theirs[1]) == ["Root:\tadmin", "b:\tc"]
    both("postalias", [], "aliases")
    ours, theirs = both("postalias", ["-i"], "aliases", "NEW: x,y\nroot: z\n")
    assert ours[0] == theirs[0] == 0
    assert ('duplicate entry: "root"' in ours[2]) and ('duplicate entry: "root"' in theirs[2])
    ours, theirs = both("postalias", ["-s"], "aliases")
    assert _entries(ours[1]) == _entries(theirs[1]) == ["b:\tc", "new:\tx, y", "root:\tadmin"]
    for status in (0, 1):
        ours, theirs = both("postalias", ["-d", "NEW"], "aliases")
        assert ours[0] == theirs[0] == status
    assert postalias_main(["-h", "-q", "-", "x"]) == 64  # postalias has no header mode
