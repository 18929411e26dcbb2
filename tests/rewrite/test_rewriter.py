"""canonical(5), masquerading and virtual(5) alias expansion through the Rewriter."""
import logging

import pytest

from relayd.rewrite import AliasExpansionError, Rewriter
from relayd.tables.base import Table, TemporaryLookupError


def addresses(recipients):
    return [(r.address, r.original) for r in recipients]


def test_no_maps_leaves_addresses_alone_but_qualifies_bare_names(make_config):
    rw = Rewriter(make_config())
    assert rw.sender("") == ""
    assert rw.sender("alice") == "alice@example.com"
    assert addresses(rw.recipients(["Bob@Example.org"])) == [("Bob@Example.org", "Bob@Example.org")]


def test_sender_canonical_then_canonical(make_config):
    rw = Rewriter(make_config(sender_canonical_maps="inline:{ alice@example.com=a.smith@example.com }",
                              canonical_maps="inline:{ a.smith@example.com=alice.smith@example.com }"))
    assert rw.sender("alice@example.com") == "alice.smith@example.com"
    assert addresses(rw.recipients(["alice@example.com"])) == [("alice@example.com",) * 2]


def test_recipient_canonical_with_extension_propagated(make_config):
    rw = Rewriter(make_config(recipient_canonical_maps="inline:{ bob@example.com=robert@example.com }"))
    assert addresses(rw.recipients(["bob+lists@example.com"])) == [
        ("robert+lists@example.com", "bob+lists@example.com")]


def test_canonical_classes_limit_where_a_map_applies(make_config):
    rw = Rewriter(make_config(canonical_maps="inline:{ bob@example.com=robert@example.com }",
                              canonical_classes="envelope_recipient"))
    assert rw.sender("bob@example.com") == "bob@example.com"
    assert rw.recipients(["bob@example.com"])[0].address == "robert@example.com"


def test_canonical_loop_refuses_the_message_for_now(make_config):
    rw = Rewriter(make_config(canonical_maps="inline:{ a@x.example=b@x.example, b@x.example=a@x.example }"))
    with pytest.raises(AliasExpansionError):
        rw.sender("a@x.example")


def test_masquerade_domains_exceptions_and_negation(make_config):
    rw = Rewriter(make_config(masquerade_domains="!dev.example.com, example.com",
                              masquerade_exceptions="root"))
    assert rw.sender("alice@host.sales.example.com") == "alice@example.com"
    assert rw.sender("alice@example.com") == "alice@example.com"
    assert rw.sender("alice@box.dev.example.com") == "alice@box.dev.example.com"
    assert rw.sender("root@host.example.com") == "root@host.example.com"
    # masquerade_classes leaves envelope recipients alone by default
    assert rw.recipients(["bob@host.example.com"])[0].address == "bob@host.example.com"


def test_virtual_alias_recursion_several_results_and_duplicates(make_config):
    table = ("inline:{ {sales@example.org = ann@example.org, team@example.org}, "
             "{team@example.org = carl@corp.example, ann@example.org} }")
    rw = Rewriter(make_config(virtual_alias_maps=table))
    assert addresses(rw.recipients(["sales@example.org", "carl@corp.example"])) == [
        ("ann@example.org", "sales@example.org"), ("carl@corp.example", "sales@example.org")]


def test_virtual_catch_all_and_user_override(make_config):
    rw = Rewriter(make_config(virtual_alias_maps=(
        "inline:{ @example.org=postmaster@corp.example, boss@example.org=boss@corp.example }")))
    got = addresses(rw.recipients(["boss@example.org", "anyone@example.org"]))
    assert got == [("boss@corp.example", "boss@example.org"),
                   ("postmaster@corp.example", "anyone@example.org")]


def test_virtual_at_otherdomain(make_config):
    rw = Rewriter(make_config(virtual_alias_maps="inline:{ @old.example=@new.example }"))
    assert rw.recipients(["bob+x@old.example"])[0].address == "bob+x@new.example"


def test_address_expanding_into_itself_is_kept_once(make_config):
    rw = Rewriter(make_config(virtual_alias_maps="inline:{ {bob@example.org = bob@example.org, eve@corp.example} }"))
    assert [r.address for r in rw.recipients(["bob@example.org"])] == [
        "bob@example.org", "eve@corp.example"]


def test_virtual_loop_hits_the_recursion_limit(make_config, caplog):
    rw = Rewriter(make_config(virtual_alias_maps="inline:{ a@x.example=b@x.example, b@x.example=a@x.example }",
                              virtual_alias_recursion_limit="20"))
    with caplog.at_level(logging.WARNING, logger="relayd.cleanup"):
        with pytest.raises(AliasExpansionError, match="4.6.0 Alias expansion error"):
            rw.recipients(["a@x.example"])
    assert "unreasonable virtual_alias_maps map nesting for a@x.example" in caplog.text


def test_virtual_expansion_limit(make_config):
    members = ", ".join(f"u{i}@corp.example" for i in range(6))
    config = make_config(virtual_alias_maps=f"inline:{{ {{all@example.org = {members}}} }}",
                         virtual_alias_expansion_limit="5")
    with pytest.raises(AliasExpansionError):
        Rewriter(config).recipients(["all@example.org"])
    assert len(Rewriter(make_config(virtual_alias_maps=f"inline:{{ {{all@example.org = {members}}} }}"))
               .recipients(["all@example.org"])) == 6


def test_legacy_virtual_maps_is_used_with_a_warning(make_config, caplog):
    with caplog.at_level(logging.WARNING, logger="relayd.cleanup"):
        rw = Rewriter(make_config(virtual_maps="inline:{ a@example.org=b@corp.example }"))
    assert rw.recipients(["a@example.org"])[0].address == "b@corp.example"
    assert 'support for parameter "virtual_maps" will be removed' in caplog.text


class Down(Table):
    """A backend that cannot answer (a database that is down): no real one here."""

    def lookup(self, key):
        raise TemporaryLookupError("connection refused")


def test_lookup_failure_propagates(make_config, monkeypatch):
    from relayd.tables import base
    monkeypatch.setitem(base.BUILTIN_TYPES, "down", "tests.rewrite.test_rewriter:Down")
    rw = Rewriter(make_config(virtual_alias_maps="down:x"))
    with pytest.raises(TemporaryLookupError):
        rw.recipients(["a@example.org"])


def test_alias_include_files_are_refused_unless_enabled(make_config, tmp_path):
    from relayd.rewrite.aliases import LocalAliases
    members = tmp_path / "staff.list"
    members.write_text("# the staff list\nalice\nbob@remote.example, :include:" + str(tmp_path / "staff.list") + "\n")
    aliases = tmp_path / "aliases"
    aliases.write_text(f"staff :include:{members}, carol\n")  # texthash: key, blank, value
    config = make_config(alias_maps=f"texthash:{aliases}")
    refused = LocalAliases(config).expand("staff")
    assert refused.mailboxes == ["carol"] and refused.forwards == []
    assert refused.refused[0][0] == f":include:{members}"
    enabled = LocalAliases(make_config(alias_maps=f"texthash:{aliases}",
                                       relayd_allow_alias_include="yes")).expand("staff")
    assert enabled.mailboxes == ["alice", "carol"]
    assert enabled.forwards == ["bob@remote.example"]
    assert enabled.refused == [(f":include:{members}", "include loop")]
