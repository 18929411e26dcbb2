"""Postfix restrictions relayd does not provide yet, by the issue that brings them.

Naming one in a restriction list stops startup with a ConfigError that
says so, instead of "unknown restriction" (or, worse, a list that silently
does less than Postfix would). A plugin that registers one of these names
takes precedence over the reservation.
"""
from __future__ import annotations

_DNS = "comes with the DNS issue"
_SASL = "comes with the SASL issue"
_TLS = "comes with the TLS issue"
_POLICY = "comes with the policy service issue"
_VERIFY = "comes with the address verification issue"

RESERVED = {
    _DNS: (
        "reject_unknown_sender_domain", "reject_unknown_recipient_domain",
        "reject_unknown_client_hostname", "reject_unknown_client",
        "reject_unknown_reverse_client_hostname", "reject_unknown_helo_hostname",
        "reject_unknown_hostname", "reject_unknown_address",
        "permit_mx_backup",
        "check_reverse_client_hostname_access",
        "check_client_mx_access", "check_client_ns_access", "check_client_a_access",
        "check_reverse_client_hostname_mx_access", "check_reverse_client_hostname_ns_access",
        "check_reverse_client_hostname_a_access",
        "check_helo_mx_access", "check_helo_ns_access", "check_helo_a_access",
        "check_sender_mx_access", "check_sender_ns_access", "check_sender_a_access",
        "check_recipient_mx_access", "check_recipient_ns_access", "check_recipient_a_access",
    ),
    _SASL: (
        "check_sasl_access",
    ),
    _TLS: ("reject_plaintext_session", "check_ccert_access"),
    _POLICY: ("check_policy_service",),
    _VERIFY: ("reject_unverified_sender", "reject_unverified_recipient"),
}


def register(registry) -> None:
    """Entry point: reserve every name above with its reason."""
    for reason, names in RESERVED.items():
        for name in names:
            registry.reserve(name, reason)
