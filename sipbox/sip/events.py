"""What the SIP core tells its user (RFC 3261 §17 "TU" notifications), and what it sends.

Events are frozen, slotted dataclasses named in the past tense: they report what happened.
`Endpoint.next_event()` hands them out one at a time (h11 style). `Outgoing` is the one output
that is not an event: bytes for the transport, drained with `Endpoint.datagrams_to_send()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from .address import Address, Peer
from .message import Request, Response

__all__ = [
    "AckReceived",
    "ClientTransactionId",
    "Event",
    "MessageDiscarded",
    "Outgoing",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransactionId",
    "ServerTransactionTimedOut",
    "TransactionTimedOut",
    "TransportError",
]

# Opaque ids. At run time they are the transaction's matching key (a str), so looking one up
# is one dict probe and they stay valid, comparable and hashable after the transaction ends.
ClientTransactionId = NewType("ClientTransactionId", str)
ServerTransactionId = NewType("ServerTransactionId", str)


class Outgoing:
    """Bytes to send. `connection_id` names a stream connection to reuse (§18.2.2), if any.

    A plain slotted class, not a frozen dataclass: one per datagram sent, and a frozen
    dataclass costs ~20x more to construct once compiled (mypyc)."""

    __slots__ = ("connection_id", "data", "destination")

    def __init__(self, data: bytes, destination: Address, connection_id: int | None = None) -> None:
        self.data = data
        self.destination = destination
        self.connection_id = connection_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outgoing):
            return NotImplemented
        return (
            self.data == other.data
            and self.destination == other.destination
            and self.connection_id == other.connection_id
        )

    def __hash__(self) -> int:
        return hash((self.data, self.destination, self.connection_id))

    def __repr__(self) -> str:
        return (
            f"Outgoing(data={self.data!r}, destination={self.destination!r}, "
            f"connection_id={self.connection_id!r})"
        )


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request created server transaction `transaction` (§17.2); the TU must answer it
    with `Endpoint.send_response`. For a CANCEL, `cancelled` is the INVITE server transaction
    it matches (§9.2), or None: then the TU answers 481."""

    request: Request
    peer: Peer
    transaction: ServerTransactionId
    cancelled: ServerTransactionId | None = None


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK that matched no INVITE server transaction: the ACK for a 2xx, which belongs to
    the dialog, not the transaction (§13.3.1.4, §17.2.3); or an ACK the RFC 6026 Accepted state
    passes up."""

    request: Request
    peer: Peer


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for client transaction `transaction`. `transaction` is None for a 2xx to an
    INVITE that arrived after its transaction ended: the TU must ACK it again (§13.2.2.4)."""

    response: Response
    transaction: ClientTransactionId | None
    peer: Peer


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B or F fired, or the INVITE guard (Timer C / 64*T1 after CANCEL, §9.1): the TU
    should act as if it had received a 408 (§8.1.3.1)."""

    transaction: ClientTransactionId
    request: Request


@dataclass(frozen=True, slots=True)
class TransportError:
    """Sending failed (§17.1.4, §17.2.4): act as if a 503 had been received (§8.1.3.1).
    `server` tells whether `transaction` is a server transaction (a response failed)."""

    transaction: ClientTransactionId | ServerTransactionId
    request: Request
    server: bool = False


@dataclass(frozen=True, slots=True)
class ServerTransactionTimedOut:
    """A server transaction gave up: `timer` is "H" (no ACK for a non-2xx final response,
    §17.2.1) or "guard" (the TU never answered a non-INVITE request within 64*T1)."""

    transaction: ServerTransactionId
    request: Request
    timer: str = "H"


@dataclass(frozen=True, slots=True)
class MessageDiscarded:
    """A message was dropped: unparseable, a bad response, a stray response, an ACK we cannot
    use... `status_hint` is the status the parser suggested, when there was one."""

    peer: Peer | None
    reason: str
    status_hint: int | None = None


Event = (
    RequestReceived
    | AckReceived
    | ResponseReceived
    | TransactionTimedOut
    | TransportError
    | ServerTransactionTimedOut
    | MessageDiscarded
)
