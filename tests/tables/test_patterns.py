"""regexp: and pcre: — rule syntax, if/endif, $n, flags, errors, Postfix's answers."""
import pytest

from relayd.config import ConfigError
from relayd.tables.base import open_table

REGEXP = """\
# regexp_table(5)
/^(.*)@example\\.com$/          local $1
/^Admin@/i                      case-sensitive admin
if /@lists\\./
/^owner-/                       list owner
!/^bounce/                      list member
endif
/^[[:digit:]]+@/                all digits
/^a[\\.]b@/                      backslash or dot (POSIX bracket)
/^x@(foo|bar)\\.org$/!/bar/      foo only
/^dollar@/                      costs $$5
/^multi@(a)(b)?/                ${1}-$(2)-$1
"""
KEYS = ["joe@example.com", "JOE@EXAMPLE.COM", "admin@x", "Admin@x", "owner-x@lists.org",
        "someone@lists.org", "bounce-1@lists.org", "12345@x", "a.b@x", "a\\b@x", "ab@x",
        "x@foo.org", "x@bar.org", "dollar@x", "multi@a", "multi@ab", "nothing",
        "joe@example.com\n"]


def test_regexp_answers_as_postfix(write_table, postfix_postmap):
    path = write_table("regexp", REGEXP)
    table = open_table("regexp:" + path)
    ours = {key: table.lookup(key) for key in KEYS}
    assert ours == postfix_postmap("regexp:" + path, KEYS)
    assert ours["JOE@EXAMPLE.COM"] == "local JOE"
    assert ours["bounce-1@lists.org"] is None
    assert ours["multi@a"] == "a--a"
    assert table.fixed is False


def test_dollar_zero_is_the_whole_match(write_table):
    for kind in ("regexp", "pcre"):
        path = write_table(kind, "/^friend@(?!my.domain).*$/ 550 Stick this in your pipe $0\n")
        table = open_table(f"{kind}:{path}")
        assert table.lookup("friend@evil.example") == \
            "550 Stick this in your pipe friend@evil.example"
        assert table.lookup("friend@my.domain") is None


def test_nested_if_endif(write_table):
    path = write_table("pcre", """\
if /@example\\.com$/
if !/^postmaster@/
/^(\\w+)\\+/ extension of $1
/./ plain
endif
/./ postmaster
endif
/./ elsewhere
""")
    table = open_table("pcre:" + path)
    assert table.lookup("joe+tag@example.com") == "extension of joe"
    assert table.lookup("joe@example.com") == "plain"
    assert table.lookup("postmaster@example.com") == "postmaster"
    assert table.lookup("joe@example.org") == "elsewhere"


def test_pcre_flags(write_table):
    path = write_table("pcre", """\
/abc/ i-off-default
/CASE/i exact case
/^line2$/m multiline
/b.*d/A anchored
/end$/E dollar end only
/nope/X ignored flag
""")
    table = open_table("pcre:" + path)
    assert table.lookup("xABCx") == "i-off-default"
    assert table.lookup("case") is None and table.lookup("CASE") == "exact case"
    assert table.lookup("line1\nline2\nline3") == "multiline"
    assert table.lookup("bcd") == "anchored" and table.lookup("abcd") == "i-off-default"
    assert table.lookup("xbxd") is None
    assert table.lookup("the end") == "dollar end only"
    assert table.lookup("the end\n") is None


def test_pcre_answers_as_postfix_when_postfix_pcre_is_installed(write_table, postfix_postmap,
                                                                postfix_map_types):
    if "pcre" not in postfix_map_types:
        pytest.skip("Debian's postfix-pcre is not installed")
    path = write_table("pcre", "/^(\\w+)\\+(\\w+)@/ $2 of $1\n/(?<!x)y/ y without x\n")
    keys = ["joe+tag@x", "ay", "xy", "y"]
    table = open_table("pcre:" + path)
    assert {k: table.lookup(k) for k in keys} == postfix_postmap("pcre:" + path, keys)


def test_regexp_basic_syntax_with_x_flag(write_table):
    path = write_table("regexp", "/^\\(ab\\)\\{2\\}(x)+$/x basic $1\n")
    table = open_table("regexp:" + path)
    assert table.lookup("abab(x)+") == "basic ab"
    assert table.lookup("ababxx") is None


@pytest.mark.parametrize("kind, text, line, message", [
    ("regexp", "/a/ ok\n/b/q bad flag\n", 2, 'unknown regexp option "q"'),
    ("pcre", "/a/ ok\n\n/b/U lazy\n", 3, 'regexp option "U"'),
    ("regexp", "/a/ ok\n/never closed x\n", 2, 'no closing regexp delimiter "/"'),
    ("pcre", "/(a)/ $2\n", 1, 'out of range replacement index "2"'),
    ("regexp", "!/(a)/ $1\n", 1, "$number found in negative match"),
    ("regexp", "/a/ $x\n", 1, 'non-numeric replacement index "x"'),
    ("regexp", "/a/\n", 1, "no replacement text"),
    ("pcre", "/a/ ok\nendif\n", 2, "ENDIF without matching IF"),
    ("regexp", "/a/ ok\nif /b/\n/c/ x\n", 2, "IF has no matching ENDIF"),
    ("regexp", "if /b/\n  /c/ indented\nendif\n", 1, "extra text after IF"),
    ("regexp", "# c\nreject this\n", 2, "unrecognized request"),
    ("pcre", "/a(b/ x\n", 1, "regexp error"),
    ("regexp", "/[[:alphabet:]]/ x\n", 1, "unknown character class [:alphabet:]"),
])
def test_bad_rule_is_an_error_with_file_and_line(kind, text, line, message, write_table):
    path = write_table(kind, text)
    with pytest.raises(ConfigError) as err:
        open_table(f"{kind}:{path}")
    assert (err.value.file, err.value.line) == (path, line)
    assert message in str(err.value)
