"""Whose message headers cleanup(8) rewrites, and in which context.

Postfix rewrites the addresses in a message's headers
(:mod:`relayd.cleanup.headers`) only when the client matches
``local_header_rewrite_clients`` (the "local" context: unqualified addresses
get ``$myorigin``), or, for any other client, when
``remote_header_rewrite_domain`` is set (the "remote" context: they get that
domain). :class:`HeaderRules` reads this, and the canonical maps it uses,
once per configuration.
"""
from __future__ import annotations

from relayd.config import ConfigError
from relayd.config.derived import PerConfig
from relayd.domains import Interfaces
from relayd.networks import NetworkList
from relayd.rewrite.canonical import Canonical

LOCAL_CONTEXT, REMOTE_CONTEXT = "local", "remote"

# Clients relayd's smtpd can never tell apart: it offers neither AUTH nor STARTTLS.
_NEVER_MATCHING = ("permit_sasl_authenticated", "permit_tls_clientcerts",
                   "permit_tls_all_clientcerts")


class LocalHeaderClients:
    """local_header_rewrite_clients: the clients whose headers are rewritten
    in the "local" context."""

    def __init__(self, config):
        self.everyone = False
        self.networks: list[NetworkList] = []
        parameter = "local_header_rewrite_clients"
        for item in config[parameter]:
            key = item.lower()
            if key == "permit_inet_interfaces":
                self.networks.append(_inet_interfaces(config))
            elif key == "permit_mynetworks":
                self.networks.append(NetworkList(config["mynetworks"]))
            elif key == "static:all":
                self.everyone = True
            elif key not in _NEVER_MATCHING:
                raise ConfigError(f"unsupported item {item!r} (relayd knows permit_inet_interfaces,"
                                  f" permit_mynetworks, static:all)", parameter=parameter)

    def __contains__(self, client_addr: str) -> bool:
        return self.everyone or any(client_addr in nets for nets in self.networks)


def _inet_interfaces(config) -> NetworkList:
    """The addresses permit_inet_interfaces matches (relayd.domains.Interfaces)."""
    interfaces = Interfaces(config)
    if interfaces.hostnames():
        raise ConfigError(f"inet_interfaces: host name {interfaces.hostnames()[0]!r} is not "
                          f"supported for permit_inet_interfaces",
                          parameter="local_header_rewrite_clients")
    return NetworkList(interfaces.own_addresses(), parameter="local_header_rewrite_clients")


class HeaderRules(PerConfig):
    """What header rewriting needs from one configuration; tables are opened
    once per configuration (:meth:`of`)."""

    def __init__(self, config):
        self.canonical = Canonical(config)
        self.local_clients = LocalHeaderClients(config)
        self.myorigin = config["myorigin"].lower()
        self.remote_domain = config["remote_header_rewrite_domain"].lower()
        self.size_limit = config["header_size_limit"]

    def context(self, client_addr: str | None) -> str | None:
        """LOCAL_CONTEXT, REMOTE_CONTEXT, or None: headers are not rewritten."""
        if client_addr is None or client_addr in self.local_clients:
            return LOCAL_CONTEXT
        return REMOTE_CONTEXT if self.remote_domain else None
