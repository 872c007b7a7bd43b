"""The UDP listener: one datagram in, one `on_message` call out (RFC 3261 §18.1.2, §18.2.1).

Before anything is parsed the source goes through `accept_source` (the anti-scanning guard), then
keep-alives are taken out: a datagram of only CR/LF bytes or four NUL bytes (sent by many UAs to
hold a NAT binding open) is ignored, and a STUN Binding request (RFC 5626 §4.4.2) is answered on
the spot. Everything else is SIP for the core. The fast path is one call to `accept_source`, one
byte test, and the `Peer` the core needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from sipbox.sip.address import Address, Peer
from sipbox.sip.stun import binding_response, is_stun

__all__ = ["UdpEndpoint"]

logger = logging.getLogger("sipbox.transport")

_NUL_KEEPALIVE = b"\0\0\0\0"
_MAX_PEERS = 65536


class UdpEndpoint(asyncio.DatagramProtocol):
    """The protocol of one bound UDP socket; `local` is the bound address."""

    __slots__ = ("_accept", "_on_keepalive", "_on_message", "_peers", "local", "transport")

    def __init__(
        self,
        local: Address,
        on_message: Callable[[bytes, Peer], None],
        accept_source: Callable[[str], bool],
        on_keepalive: Callable[[Peer], None] | None,
    ) -> None:
        self.local = local
        self.transport: asyncio.DatagramTransport | None = None
        self._on_message = on_message
        self._accept = accept_source
        self._on_keepalive = on_keepalive
        # addr -> Peer: frozen and shared, so a phone's datagrams reuse one object instead of
        # two dataclass constructions each (bounded: cleared when full).
        self._peers: dict[tuple[Any, ...], Peer] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop: not a subclass

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        host = addr[0]
        if not self._accept(host):
            return
        # SIP starts with a letter; CR, LF, NUL and STUN's 0x00/0x01 are all below 0x20.
        if (not data or data[0] < 0x20) and self._keepalive(data, host, addr):
            return
        peer = self._peers.get(addr)
        if peer is None:
            peers = self._peers
            if len(peers) >= _MAX_PEERS:
                peers.clear()
            peer = peers[addr] = Peer(Address("udp", host, addr[1]), self.local, None)
        try:
            self._on_message(data, peer)
        except Exception:
            logger.exception("on_message failed for a datagram from %s", host)

    def _keepalive(self, data: bytes, host: str, addr: tuple[Any, ...]) -> bool:
        """Handle a keep-alive or STUN datagram; False if it should go to the SIP core."""
        if is_stun(data):
            response = binding_response(data, host, addr[1])
            if response is not None and self.transport is not None:
                self.transport.sendto(response, addr)
        elif data and data != _NUL_KEEPALIVE and data.strip(b"\r\n"):
            return False  # e.g. CRLF before a start-line (RFC 3261 §7.5): the parser's business
        if data and self._on_keepalive is not None:
            try:
                self._on_keepalive(Peer(Address("udp", host, addr[1]), self.local, None))
            except Exception:
                logger.exception("on_keepalive failed")
        return True

    def error_received(self, exc: Exception) -> None:
        # Unconnected UDP sockets report few errors (no destination attached); the SIP
        # transaction timers cover the loss (RFC 3261 §17.1.1.2).
        logger.debug("UDP socket error on %s: %s", self.local, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
