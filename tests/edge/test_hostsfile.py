"""The hosts file as the C library's "files" source reads it (relayd.hostsfile)."""
from relayd.hostsfile import HostsFile, parse

HOSTS = """\
# comment line
127.0.0.1 localhost
127.0.0.1 other-name            # a second line for the same address
192.0.2.10  Mail.Example.TEST mail  # canonical name, then an alias
192.0.2.11  mail.example.test
2001:DB8:0:0::25 v6.example.test
not-an-address bogus.example.test
192.0.2.12
"""


class Clock:
    """A clock the test moves (the file is checked at most once a second)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_address_to_name_is_the_first_name_of_the_first_line():
    names, _ = parse(HOSTS)
    assert names["127.0.0.1"] == "localhost"
    assert names["192.0.2.10"] == "Mail.Example.TEST"
    assert "192.0.2.12" not in names           # no name on the line
    assert "bogus.example.test" not in names.values()


def test_name_to_addresses_collects_every_line_any_case(tmp_path):
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    hosts = HostsFile(str(path))
    assert hosts.addresses_of("mail.example.test", 4) == ["192.0.2.10", "192.0.2.11"]
    assert hosts.addresses_of("MAIL", 4) == ["192.0.2.10"]        # an alias
    assert hosts.addresses_of("mail.example.test", 6) == []
    assert hosts.addresses_of("v6.example.test", 6) == ["2001:db8::25"]
    assert hosts.name_of("2001:db8::0:25") == "v6.example.test"   # any IPv6 spelling
    assert hosts.name_of("198.51.100.1") is None


def test_the_file_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("192.0.2.1 before.example.test\n")
    clock = Clock()
    hosts = HostsFile(str(path), clock=clock)
    assert hosts.name_of("192.0.2.1") == "before.example.test"
    path.write_text("192.0.2.1 after.example.test and-an-alias\n")   # another size
    assert hosts.name_of("192.0.2.1") == "before.example.test"      # checked once a second
    clock.now += 1.0
    assert hosts.name_of("192.0.2.1") == "after.example.test"
    path.unlink()
    clock.now += 1.0
    assert hosts.name_of("192.0.2.1") is None                       # gone: nothing known


def test_a_missing_file_knows_nothing(tmp_path):
    hosts = HostsFile(str(tmp_path / "absent"))
    assert hosts.name_of("127.0.0.1") is None
    assert hosts.addresses_of("localhost", 4) == []
