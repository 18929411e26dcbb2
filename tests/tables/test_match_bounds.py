"""regexp: and pcre: tables on hostile keys (issue 7, item 7b): each match is
bounded, the key is cut to header_size_limit, and a rule whose match hits the
bound is skipped with Postfix's dict_pcre warning, the lookup going on.

Outcomes are asserted, never times; a hang guard turns a regression (an
unbounded match on 100 KB, minutes long) into a failure.
"""
import logging

import pytest

from relayd.cleanup import ContentChecker, ContentChecks
from relayd.config import load_config
from relayd.tables.base import open_table
from tests.cleanup.conftest import CONTEXT, run
from tests.support.bounds import hang_guard

# The widely published attachment-blocking rule (header_checks, pcre: table).
ATTACHMENTS = (
    r'/^Content-(Disposition|Type).*name\s*=\s*"?(.*(\.|=2E)('
    r'ade|adp|app|bas|bat|chm|cmd|com|cpl|crt|exe|hlp|hta|inf|ins|isp|js|jse|lnk|mdb|mde|msc|'
    r'msi|msp|mst|pcd|pif|reg|scr|sct|shs|shb|url|vb|vbe|vbs|wsc|wsf|wsh))(\?=)?"?\s*(;|$)/x'
    '\n    REJECT Attachment name "$2" may not end with ".$4"\n')
HOSTILE = "Content-Type: application/octet-stream; " + "name=x" * 17000   # 100 KB


def _lookup(spec: str, key: str, caplog):
    table = open_table(spec, load_config())
    with caplog.at_level(logging.WARNING, logger="relayd.tables"), hang_guard():
        return table.lookup(key)


def test_the_attachment_rule_still_rejects_a_real_attachment(write_table, caplog):
    path = write_table("hc", ATTACHMENTS)
    key = 'Content-Disposition: attachment; filename="invoice.pdf.exe"'
    assert _lookup(f"pcre:{path}", key, caplog) == \
        'REJECT Attachment name "invoice.pdf.exe" may not end with ".exe"'
    assert caplog.text == ""


def test_the_attachment_rule_on_a_100_kb_header_is_skipped_with_a_warning(write_table, caplog):
    path = write_table("hc", ATTACHMENTS + "/^Content-Type:/ WARN next rule\n")
    assert _lookup(f"pcre:{path}", HOSTILE, caplog) == "WARN next rule"
    assert f"pcre map {path}, line 1: match limit exceeded" in caplog.text


@pytest.mark.parametrize("kind", ["pcre", "regexp"])
def test_a_catastrophic_pattern_does_not_match_and_the_lookup_goes_on(kind, write_table, caplog):
    path = write_table("t", "# classic catastrophic patterns\n"
                            "/^(a+)+$/ nested plus\n"
                            "/^(a|aa)+$/ alternation\n"
                            "if /^(a|aa)+$/\n/a/ inside if\nendif\n"
                            "/b$/ the next rule\n")
    assert _lookup(f"{kind}:{path}", "a" * 40 + "b", caplog) == "the next rule"
    # The regex engine needs no bound for (a+)+$; the alternation hits it, in the rule and the if.
    assert f"{kind} map {path}, line 2: match limit exceeded" not in caplog.text
    assert f"{kind} map {path}, line 3: match limit exceeded" in caplog.text
    assert f"{kind} map {path}, line 4: match limit exceeded" in caplog.text


def test_a_negated_rule_that_hits_the_bound_does_not_match_either(write_table, caplog):
    path = write_table("t", "!/^(a|aa)+$/ negated\n/./ the next rule\n")
    assert _lookup(f"pcre:{path}", "a" * 40 + "b", caplog) == "the next rule"
    assert "line 1: match limit exceeded" in caplog.text


def test_keys_are_cut_to_header_size_limit(write_table):
    path = write_table("t", "/tail$/ found\n")
    config = load_config(main_cf="header_size_limit = 1000\n")
    table = open_table(f"regexp:{path}", config)
    assert table.lookup("x" * 990 + "tail") == "found"
    assert table.lookup("x" * 2000 + "tail") is None


def test_header_checks_on_a_100_kb_header_keep_the_message_moving(tmp_path, caplog):
    (tmp_path / "hc").write_text(ATTACHMENTS)
    checks = ContentChecks.from_config(load_config(main_cf=f"header_checks = pcre:{tmp_path}/hc\n"))
    message = HOSTILE.encode() + b"\r\nSubject: s\r\n\r\nbody\r\n"
    with caplog.at_level(logging.WARNING, logger="relayd.tables"), hang_guard():
        out, result = run(ContentChecker(checks, CONTEXT), message)
    assert out == message and result.reply is None
    assert "line 1: match limit exceeded" in caplog.text
