"""Every type is found by its prefix (entry points), unix:passwd.byname, inline/static kept."""
import pwd

import pytest

from relayd.config import ConfigError
from relayd.tables.base import BUILTIN_TYPES, ENTRY_POINT_GROUP, open_table, table_class


def test_every_builtin_type_is_an_installed_entry_point():
    from importlib.metadata import entry_points
    installed = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for kind, target in BUILTIN_TYPES.items():
        assert installed.get(kind) == target
        assert table_class(kind).__name__ == target.rpartition(":")[2]


def test_unix_passwd_byname_returns_the_passwd_line():
    root = pwd.getpwuid(0)
    table = open_table("unix:passwd.byname")
    line = table.lookup(root.pw_name.upper())
    assert line == f"{root.pw_name}:{root.pw_passwd}:0:{root.pw_gid}:{root.pw_gecos}:" \
                   f"{root.pw_dir}:{root.pw_shell}"
    assert table.lookup("no-such-user-relayd") is None


def test_other_unix_maps_are_refused():
    with pytest.raises(ConfigError, match="unix:group.byname: unknown unix: map"):
        open_table("unix:group.byname")
