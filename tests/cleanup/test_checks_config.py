"""Reading the content checks from main.cf."""
import pytest

from relayd.config import ConfigError
from relayd.tables.base import Table


def names(checks):
    return [m and [t.spec for t in m.tables] for m in
            (checks.header, checks.mime, checks.nested, checks.body)]


def test_mime_and_nested_default_to_header_checks_and_can_be_turned_off(make_checks):
    checks = make_checks("header_checks = static:DUNNO, inline:{ {Subject: x=REJECT} }\n")
    assert names(checks) == [["static:DUNNO", "inline:{ {Subject: x=REJECT} }"]] * 3 + [None]
    checks = make_checks("header_checks = static:DUNNO\nmime_header_checks =\n")
    assert names(checks) == [["static:DUNNO"], None, ["static:DUNNO"], None]


def test_the_first_table_with_an_answer_wins(make_checks):
    checks = make_checks("header_checks = inline:{ {Subject: x=REJECT} }, static:WARN\n")
    assert checks.header.find("Subject: x") == "REJECT"
    assert checks.header.find("Subject: y") == "WARN"
    assert checks.header.find("") is None        # empty lines never match


def test_no_header_body_checks_turns_everything_off(make_checks):
    checks = make_checks("header_checks = static:REJECT\nbody_checks = static:REJECT\n"
                         "receive_override_options = no_unknown_recipient_checks, "
                         "no_header_body_checks\n")
    assert not checks.active


def test_limits_are_read(make_checks):
    checks = make_checks("body_checks_size_limit = 0\nheader_size_limit = 1000\n")
    assert (checks.body_size_limit, checks.header_size_limit) == (0, 1000)
    with pytest.raises(ConfigError, match="parameter header_size_limit: bad numerical value"):
        make_checks("header_size_limit = lots\n")


def test_an_unknown_table_type_names_the_parameter(make_checks):
    with pytest.raises(ConfigError) as info:
        make_checks("body_checks = nosuchtype:/etc/x\n")
    assert info.value.parameter == "body_checks"
    assert "unsupported dictionary type: nosuchtype" in str(info.value)


def test_a_bad_table_line_names_file_and_line(make_checks):
    with pytest.raises(ConfigError) as info:
        make_checks("header_checks = regexp:{dir}/hc\n", hc="/^Subject: ok/ REJECT\n/unclosed\n")
    assert info.value.file.endswith("/hc") and info.value.line == 2


def test_tables_are_opened_through_the_given_opener(make_checks):
    opened = []

    def opener(spec, config):
        opened.append(spec)
        return Table(spec, spec, config)
    make_checks("header_checks = a:1\nbody_checks = b:2\n", opener)
    assert opened == ["a:1", "a:1", "a:1", "b:2"]
