"""Network lists such as mynetworks: which client addresses match.

Accepts Postfix's notation: ``127.0.0.0/8``, ``[::1]/128``,
``[2001:db8::]/32``, a bare address, commas or whitespace between. Host
names, ``/file/name`` and ``type:table`` patterns are not supported yet
and are refused with a clear error naming the parameter.
"""
from __future__ import annotations

import ipaddress

from relayd.config import ConfigError
from relayd.config.derived import PerConfig


class NetworkList:
    """A parsed network list; ``addr in nets`` tests a client address."""

    def __init__(self, patterns: list[str], *, parameter: str = "mynetworks"):
        self._v4 = []
        self._v6 = []
        for pattern in patterns:
            net = _parse(pattern, parameter)
            (self._v4 if net.version == 4 else self._v6).append(net)
        self._cache: dict[str, bool] = {}

    def __contains__(self, address: str) -> bool:
        hit = self._cache.get(address)
        if hit is None:
            hit = self._match(address)
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[address] = hit
        return hit

    def _match(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            if any(ip in net for net in self._v6):
                return True
            ip = ip.ipv4_mapped
        nets = self._v4 if ip.version == 4 else self._v6
        return any(ip in net for net in nets)


class MyNetworks(NetworkList, PerConfig):
    """$mynetworks of one configuration, parsed once: ``MyNetworks.of(config)``."""

    def __init__(self, config):
        super().__init__(config["mynetworks"])


def _parse(pattern: str, parameter: str):
    text = pattern
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        text = host + rest
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f"unsupported network pattern {pattern!r} (host names, files and "
                          f"tables are not supported here yet)", parameter=parameter) from None
