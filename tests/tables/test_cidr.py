"""cidr: — networks, bare addresses, IPv6, negation, if/endif, Postfix's answers."""
import pytest

from relayd.config import ConfigError
from relayd.tables.base import open_table

CIDR = """\
# cidr_table(5)
192.168.1.1         single host
192.168.0.0/16      rfc1918
[2001:db8::]/32     documentation v6
::1                 v6 loopback
if 10.0.0.0/8
10.1.0.0/16         ten-one
!10.2.0.0/16        ten but not ten-two
endif
0.0.0.0/0           everything else v4
"""
KEYS = ["192.168.1.1", "192.168.1.2", "2001:db8::25", "2001:db9::1", "::1", "::2",
        "10.1.2.3", "10.2.2.3", "10.3.0.1", "8.8.8.8", "not-an-address", "[192.168.1.1]"]


def test_cidr_answers_as_postfix(write_table, postfix_postmap):
    path = write_table("cidr", CIDR)
    table = open_table("cidr:" + path)
    ours = {key: table.lookup(key) for key in KEYS}
    assert ours == postfix_postmap("cidr:" + path, KEYS)
    assert ours["10.1.2.3"] == "ten-one"
    assert ours["10.2.2.3"] == "everything else v4"
    assert ours["2001:db9::1"] is None
    assert table.fixed is False


@pytest.mark.parametrize("text, line, message", [
    ("10.0.0.0/8 ok\n192.168.1.0/16 x\n", 2,
     'non-null host address bits in "192.168.1.0/16", perhaps you should use '
     '"192.168.0.0/16" instead'),
    ("10.0.0.0/33 x\n", 1, 'bad mask length in "10.0.0.0/33"'),
    ("300.1.1.1 x\n", 1, 'bad address pattern: "300.1.1.1"'),
    ("10.0.0.0/8\n", 1, "no lookup result"),
    ("endif\n", 1, "ENDIF without IF"),
    ("if 10.0.0.0/8\n10.1.0.0/16 x\n", 1, "IF has no matching ENDIF"),
])
def test_bad_rule_is_an_error_with_file_and_line(text, line, message, write_table):
    path = write_table("cidr", text)
    with pytest.raises(ConfigError) as err:
        open_table("cidr:" + path)
    assert (err.value.file, err.value.line) == (path, line)
    assert message in str(err.value)
