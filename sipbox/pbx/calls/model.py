"""Live call state: a call is an A leg (the caller) and a set of B legs (the devices rung).

Plain slotted objects, mutated only by the B2BUA on the event loop; a call and its legs are
dropped from every index when the call is over, so nothing here outlives the call. `Side` is
one established dialog of the call (the caller's, or the answering B leg's): the dialog state
plus what the B2BUA must remember to keep its 2xx/ACK obligations on that side (§13.3.1.4 2xx
retransmission, §13.2.2.4 ACK re-sending).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from sipbox.pbx.location import Target
from sipbox.sip.address import Address, Peer
from sipbox.sip.dialog import Dialog
from sipbox.sip.message import Request, Response
from sipbox.storage.interface import User
from sipbox.storage.records import Cdr

from .plan import LegSpec, TargetPlan

__all__ = ["BLeg", "Call", "CallState", "LegState", "Side", "Timer"]


class CallState(Enum):
    SETUP = "setup"  # INVITE accepted, legs starting
    RINGING = "ringing"  # a provisional response was relayed to the caller
    ANSWERED = "answered"  # a 2xx was sent to the caller
    ENDING = "ending"  # caller answered with its final non-2xx; waiting for legs to wind down
    ENDED = "ended"


class LegState(Enum):
    CALLING = "calling"
    PROCEEDING = "proceeding"  # a provisional arrived
    CANCELLING = "cancelling"
    ANSWERED = "answered"
    FAILED = "failed"  # final non-2xx
    ENDED = "ended"  # answered, then hung up / BYE'd (loser)


class Timer:
    """One scheduled action; cancelled lazily (the heap skips it)."""

    __slots__ = ("at", "call", "cancelled", "kind", "side")

    def __init__(self, at: float, call: Call, kind: str, side: Side | None = None) -> None:
        self.at = at
        self.call = call
        self.kind = kind
        self.side = side
        self.cancelled = False

    def __lt__(self, other: Timer) -> bool:
        return self.at < other.at

    def release(self) -> None:
        """Cancel, and let go of the call: a cancelled timer may sit in the heap until its
        due time (a session timer: 30 min), and must not keep a finished call (its requests,
        dialogs, transactions: ~100 objects) alive — nor make every full GC pass scan it."""
        self.cancelled = True
        self.call = None  # type: ignore[assignment]
        self.side = None


class Side:
    """One established dialog of the call and how to reach its peer."""

    __slots__ = (
        "ack",
        "ack_body_wanted",
        "ack_timer",
        "allow_update",
        "connection_id",
        "destination",
        "dialog",
        "invite_seq",
        "local_sdp",
        "name",
        "pending_2xx",
        "retransmit_interval",
        "retransmit_timer",
        "server_tx",
        "session",
    )

    def __init__(
        self, name: str, dialog: Dialog, destination: Address, connection_id: int | None
    ) -> None:
        self.name = name  # "caller" or "callee" (CDR: who hung up)
        self.dialog = dialog
        self.destination = destination
        self.connection_id = connection_id
        # Our 2xx to this side's INVITE, retransmitted until its ACK arrives (§13.3.1.4).
        self.pending_2xx: Response | None = None
        self.retransmit_interval = 0.0
        self.retransmit_timer: Timer | None = None
        self.ack_timer: Timer | None = None
        # The ACK we sent for this side's last 2xx (re-sent for each 2xx retransmission), or
        # None while it waits for the other side's ACK body (delayed offer, §13.3.1.4 of the
        # issue): then `ack_body_wanted` holds the INVITE CSeq it acknowledges.
        self.ack: Request | None = None
        self.ack_body_wanted: int | None = None
        self.invite_seq = 0
        self.server_tx: object | None = None  # the INVITE server transaction `pending_2xx` answers
        # Extensions (issue 4, second slice): the SDP we last sent this side (a session refresh
        # by re-INVITE repeats it unchanged, RFC 3264 §8), whether its peer allows UPDATE
        # (RFC 4028 §7.4 prefers it for refreshes) and its session timer (`session_timer.py`).
        self.local_sdp: bytes | None = None
        self.allow_update = False
        self.session: Any = None


class BLeg:
    """One device rung for the call (a fork branch)."""

    __slots__ = (
        "a_tag",
        "ack",
        "call_id",
        "dialog",
        "early",
        "invite",
        "key",
        "last_response",
        "spec",
        "state",
        "status",
        "tx",
    )

    def __init__(self, spec: LegSpec, invite: Request, a_tag: str) -> None:
        self.key = spec.key
        self.spec = spec
        self.invite = invite
        self.call_id = invite.call_id
        # The To tag of this leg's early dialog towards the caller: each fork branch gets its
        # own (docs/calls.md, forking policy), so the caller sees one early dialog per device.
        self.a_tag = a_tag
        self.tx: object | None = None
        self.state = LegState.CALLING
        self.status: int | None = None
        self.dialog: Dialog | None = None
        self.ack: Request | None = None
        self.last_response: Response | None = None
        # Early-dialog state of this fork branch (`early.py`: PRACK both ways, RFC 3262, and
        # UPDATE/INFO before the answer), created on the first provisional that needs it.
        self.early: Any = None

    @property
    def target(self) -> Target:
        return self.spec.target

    @property
    def live(self) -> bool:
        return self.state in (LegState.CALLING, LegState.PROCEEDING, LegState.CANCELLING)


class Call:
    """A call: the caller's INVITE, its B legs, and (once answered) the two dialog sides."""

    __slots__ = (
        "a",
        "a_invite",
        "a_key",
        "a_tx",
        "answered_at",
        "b",
        "bside",
        "callee_number",
        "caller",
        "cdr",
        "dialed",
        "duration_timer",
        "final_sent",
        "hangup_by",
        "id",
        "legs",
        "peer",
        "plan",
        "plan_timer",
        "reason_header",
        "reinvite_busy",
        "started_at",
        "state",
        "visited",
    )

    def __init__(
        self,
        call_id: str,
        invite: Request,
        peer: Peer,
        caller: User,
        dialed: str,
        plan: TargetPlan,
        started_at: float,
        cdr: Cdr,
    ) -> None:
        self.id = call_id
        self.a_invite = invite
        self.a_tx: object | None = None
        self.a_key = (invite.call_id, invite.from_.tag or "")
        self.peer = peer
        self.caller = caller
        self.dialed = dialed
        self.callee_number: str | None = None
        self.plan = plan
        self.legs: dict[int, BLeg] = {}
        self.state = CallState.SETUP
        self.final_sent = False
        self.a: Side | None = None
        self.b: BLeg | None = None
        self.bside: Side | None = None
        self.started_at = started_at
        self.answered_at: float | None = None
        self.cdr = cdr
        self.hangup_by: str | None = None
        self.reason_header: str | None = None
        self.reinvite_busy = False
        self.duration_timer: Timer | None = None
        self.visited: tuple[str, ...] = (dialed,)
        self.plan_timer: Timer | None = None

    def live_legs(self) -> list[BLeg]:
        return [leg for leg in self.legs.values() if leg.live]
