"""Addresses as the next hop would route them (relay control depends on it)."""
import pytest

from relayd.addresses import route, split_address

LOCAL = {"local.example"}.__contains__


@pytest.mark.parametrize("address, domain, routed", [
    ("user@example.com", "example.com", False),
    ("User@Example.COM.", "example.com", False),
    ('"user@evil.example"@example.com', "example.com", True),
    ("user%evil.example@example.com", "example.com", True),
    ("evil.example!user@example.com", "example.com", True),
    ("user%evil.example@local.example", "evil.example", False),
    ("evil.example!user@local.example", "evil.example", False),
    ("user%a%evil.example@local.example", "evil.example", True),
    ("@hop.example:user@evil.example", "evil.example", True),
    ("user\\@evil.example@example.com", "example.com", True),
    ("Postmaster", "", False),
    ("user@[192.0.2.1]", "[192.0.2.1]", False),
])
def test_route(address, domain, routed):
    r = route(address, LOCAL)
    assert (r.domain, r.routed) == (domain, routed)


def test_split_address_ignores_at_signs_in_quotes():
    assert split_address('"a@b"@example.com') == ('"a@b"', "example.com")
