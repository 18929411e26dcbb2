"""Client names for tests: loopback addresses with PTR records.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a test
client can bind its socket to 127.0.53.N and relayd sees that address; the
test's DNS server (tests/support/dnsserver.py, Knot) answers the PTR
questions for it from the reverse zone :data:`REVERSE_ZONE`.

DnsServer.add_zone takes origins under .test only, its guard against test
names leaking to the Internet. A loopback reverse zone is as safe (RFC
6303: 127.in-addr.arpa is served locally, never asked of the Internet, and
relayd asks only the servers a test gives it), so :func:`reverse_zone`
serves one through the same steps.
"""
from __future__ import annotations

import socket
import smtplib

#: The reverse zone of the test clients 127.0.53.0/24.
REVERSE_ZONE = "53.0.127.in-addr.arpa"


def reverse_zone(dns_server, records, origin: str = REVERSE_ZONE) -> str:
    """Serve (or replace) the reverse zone ``origin`` with ``records`` (relative
    names: ``1 PTR host.z1.test.`` names 127.0.53.1); returns once served."""
    if origin in dns_server.zones:
        dns_server.set_records(origin, records)
        return origin
    return dns_server.add_zone(records, origin)


def client_address(n: int) -> str:
    """The test client address 127.0.53.``n``."""
    return f"127.0.53.{n}"


def smtp_from(address: str, port: int, timeout: float = 30) -> smtplib.SMTP:
    """An SMTP client connected to relayd on 127.0.0.1:``port`` from ``address``."""
    return smtplib.SMTP("127.0.0.1", port, source_address=(address, 0), timeout=timeout)


def connect_from(address: str, port: int) -> socket.socket:
    """A raw TCP connection to relayd from ``address`` (for reading the greeting)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.connect(("127.0.0.1", port))
    return sock
