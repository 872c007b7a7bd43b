"""What address we advertise (Via sent-by, Contact) to a given destination.

A server behind NAT must tell public peers its public address (`[sip] external_address`) and
local peers its local one (`[sip] local_networks`). A listener bound to a wildcard (0.0.0.0,
::) has no address to advertise, so we ask the kernel which source address it would use to
reach the destination (a connected UDP socket sends nothing) and cache the answer per host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence

from sipbox.sip.address import Address

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class Advertiser:
    """Chooses the advertised address for each destination; O(1) after the first look-up."""

    def __init__(
        self,
        listening: Sequence[Address],
        *,
        external_address: str | None = None,
        local_networks: Iterable[str] = (),
    ) -> None:
        self._listening = list(listening)
        self._external = external_address
        self._local_networks = [ipaddress.ip_network(n, strict=False) for n in local_networks]
        self._cache: dict[tuple[str, str], Address] = {}

    def __call__(self, destination: Address) -> Address:
        key = (destination.transport, destination.host)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        address = self._choose(destination)
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[key] = address
        return address

    def _choose(self, destination: Address) -> Address:
        family_v6 = ":" in destination.host
        same_transport = [a for a in self._listening if a.transport == destination.transport]
        candidates = [a for a in same_transport if (":" in a.host) == family_v6] or same_transport
        if not candidates:
            candidates = list(self._listening)
        if not candidates:
            return Address(destination.transport, "127.0.0.1", 5060)
        listener = candidates[0]
        if self._external and not self._is_local(destination.host):
            host, _, port = self._external.rpartition(":")
            if host and port.isdigit():
                return Address(listener.transport, host.strip("[]"), int(port))
            return Address(listener.transport, self._external, listener.port)
        host = listener.host
        if host in _WILDCARDS:
            host = _source_address_towards(destination.host, family_v6) or (
                "::1" if family_v6 else "127.0.0.1"
            )
        return Address(listener.transport, host, listener.port)

    def _is_local(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._local_networks)


def _source_address_towards(host: str, ipv6: bool) -> str | None:
    """The local address the kernel would use to reach `host` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return str(s.getsockname()[0])
    except OSError:
        return None
