"""Where a message came from or goes to, as the SIP core sees it (RFC 3261 §18).

The transport layer fills these in; the core only compares and copies them. They are frozen
and slotted because one is created per datagram on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TransportName = Literal["udp", "tcp", "tls", "ws", "wss"]
STREAM_TRANSPORTS: frozenset[str] = frozenset({"tcp", "tls", "ws", "wss"})
SECURE_TRANSPORTS: frozenset[str] = frozenset({"tls", "wss"})
DEFAULT_PORTS: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class Address:
    """A transport address: protocol, host (IP literal without brackets) and port."""

    transport: TransportName
    host: str
    port: int

    @property
    def is_stream(self) -> bool:
        return self.transport in STREAM_TRANSPORTS

    def hostport(self) -> str:
        """`host:port` with IPv6 hosts bracketed, as written in Via and Contact."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport}:{self.hostport()}"


@dataclass(frozen=True, slots=True)
class Peer:
    """The far end of a received message: its address, the local listener that took it, and,
    for stream transports, the connection id the transport gave the connection (so responses and
    later requests can reuse it, RFC 3261 §18.2.2 and RFC 5626)."""

    remote: Address
    local: Address
    connection_id: int | None = None
