"""The PBX's view of the network: a small port the asyncio shell satisfies.

The PBX never imports the transport (architecture rule); it is given an object with these
methods. Every method is non-blocking: it hands the message to the SIP endpoint, and the shell
flushes the resulting datagrams and re-arms its single timer.
"""

from __future__ import annotations

from typing import Protocol

from sipbox.sip.address import Address
from sipbox.sip.message import Message, Request, Response


class SipPort(Protocol):
    """What the PBX may ask of the SIP endpoint + transport pair."""

    def now(self) -> float:
        """Monotonic seconds, the same clock the endpoint's timers run on."""
        ...

    def send_response(self, response: Response) -> None:
        """Answer through the server transaction the response's top Via names."""
        ...

    def send_request(
        self, request: Request, destination: Address, connection_id: int | None = None
    ) -> object:
        """Start a client transaction; returns its id (events name it)."""
        ...

    def send_ack_2xx(
        self, ack: Request, destination: Address, connection_id: int | None = None
    ) -> None:
        """Send the ACK of a 2xx (end to end, no transaction, §13.2.2.4)."""
        ...

    def send_stateless(
        self, message: Message | bytes, destination: Address, connection_id: int | None = None
    ) -> None:
        """Send without any transaction (keep-alive OPTIONS answers, stray replies)."""
        ...

    def local_address(self, destination: Address) -> Address:
        """The address we advertise (Via/Contact) to `destination` (NAT-aware)."""
        ...
