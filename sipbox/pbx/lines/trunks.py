"""Live state of a SIP trunk: its resolved addresses and whether it answers (OPTIONS keep-alive).

A trunk is marked *down* when an OPTIONS to every one of its addresses went unanswered
(timeout or transport error) and *up* again on any response at all (even 404 or 405 means a
live SIP stack). Outbound failover skips a down trunk. Time is passed in; the line service
sends the OPTIONS and feeds back the outcome.
"""

from __future__ import annotations

from sipbox.sip.address import Address
from sipbox.sip.headers import Headers
from sipbox.sip.message import Request

from .line import TrunkConfig

__all__ = ["TrunkState"]


class TrunkState:
    """One trunk: config, resolved addresses (re-resolved by the service), up/down."""

    __slots__ = ("_alive", "_due", "_ids", "addresses", "config", "hosts", "last_change", "up")

    def __init__(self, config: TrunkConfig, ids: object) -> None:
        self.config = config
        self._ids = ids
        self.hosts: set[str] = set()
        self.addresses: list[Address] = []
        self.up = True  # until an OPTIONS says otherwise: a new trunk is usable at once
        self.last_change: float | None = None
        self._due: float | None = None
        self._alive: dict[Address, bool] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def set_addresses(self, resolved: list[tuple[str, int]]) -> None:
        transport = self.config.transport
        self.addresses = [Address(transport, host, port) for host, port in resolved]
        self.hosts = {host for host, _ in resolved}

    def live_addresses(self) -> list[Address]:
        """Addresses to try for a call, those that answered the last OPTIONS first."""
        return sorted(self.addresses, key=lambda a: not self._alive.get(a, True))

    def start(self, now: float) -> None:
        self._due = now if self.config.keepalive > 0 else None

    def next_deadline(self) -> float | None:
        return self._due

    def poll(self, now: float, domain: str, local: object) -> list[tuple[Request, Address]]:
        """The OPTIONS due now (one per address)."""
        if self._due is None or now < self._due:
            return []
        self._due = now + self.config.keepalive
        out = []
        for address in self.addresses:
            ids = self._ids
            headers = Headers()
            host = address.hostport()
            headers.add("From", f"<sip:keepalive@{domain}>;tag={ids()}")  # type: ignore[operator]
            headers.add("To", f"<sip:{host}>")
            headers.add("Call-ID", f"{ids()}@{domain}")  # type: ignore[operator]
            headers.add("CSeq", "1 OPTIONS")
            headers.add("Max-Forwards", "70")
            out.append((Request("OPTIONS", f"sip:{host}", headers), address))
        return out

    def on_result(self, address: Address, alive: bool, now: float) -> bool | None:
        """Record an OPTIONS outcome; returns the new up/down state when it changed."""
        self._alive[address] = alive
        up = any(self._alive.get(a, True) for a in self.addresses) if self.addresses else alive
        if up != self.up:
            self.up = up
            self.last_change = now
            return up
        return None
