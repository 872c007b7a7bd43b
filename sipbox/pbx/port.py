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

    def send_response(self, response: Response, transaction: object | None = None) -> None:
        """Answer through `transaction` (from the RequestReceived event), or the server
        transaction the response's top Via names when it is not given."""
        ...

    def send_request(
        self, request: Request, destination: Address, connection_id: int | None = None
    ) -> object:
        """Start a client transaction; returns its id (events name it)."""
        ...

    def send_cancel(self, transaction: object, reason: str | None = None) -> object | None:
        """CANCEL the INVITE of client transaction `transaction` (§9.1: held until a
        provisional response arrives, dropped if a final one comes first); `reason` is a
        Reason header value (RFC 3326). Returns the CANCEL's transaction id, or None when
        there is nothing left to cancel."""
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
