"""Per-call SIP capture: the messages of the last N calls, kept in memory for the web admin's
ladder diagram (issue 7, "SIP trace per call").

Why here, in the pure SIP layer: both the transport's pump (which sees every datagram in and
out) and the PBX's B2BUA (which knows when a call starts and which Call-IDs its legs use) must
share this one structure, and the layer rule lets both import `sipbox.sip` but not each other.
It reads no clock (times are passed in) and opens no socket.

Cost model (the point of the design): capture must be almost free per message.

- The B2BUA *registers* a call's Call-IDs (`begin` for the caller's leg, `add_leg` for each
  device rung) in `watched`, a dict keyed by the Call-ID as bytes.
- The pump, for each datagram, does nothing more when `watched` is empty; otherwise it pulls
  the Call-ID out of the raw bytes with two `bytes.find` calls (`call_id_of`) and makes one
  dict lookup. Only a hit pays for recording (a tuple append, no decoding, no parsing).
- The caller's INVITE itself arrives before its Call-ID is known: the pump leaves the datagram
  being processed in `current` (one attribute store), and `begin` takes it from there.

Memory is bounded three ways: at most `keep` calls (the oldest trace is dropped, and its
Call-IDs stop being watched), at most `max_messages` messages and `max_bytes` bytes per call
(beyond that the trace says it was truncated).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Final

from sipbox.sip.address import Address

__all__ = ["CallCapture", "CallTrace", "CapturedMessage", "call_id_of"]

_CALL_ID: Final = b"\nCall-ID:"
_COMPACT: Final = b"\ni:"
_ANY_CASE: Final = re.compile(rb"\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def call_id_of(data: bytes) -> bytes | None:
    """The Call-ID header value of a raw SIP message, or None (cheap: no parsing).

    Fast path for the spelling every stack we know sends (``Call-ID:``), then the compact
    form ``i:`` (RFC 3261 §7.3.3) inside the header section only (a body may contain
    anything), then a case-insensitive scan for the rare ``call-id :`` spellings.
    """
    at = data.find(_CALL_ID)
    if at >= 0:
        start = at + 9
    else:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            head_end = len(data)
        at = data.find(_COMPACT, 0, head_end)
        if at >= 0:
            start = at + 3
        else:
            match = _ANY_CASE.search(data, 0, head_end)
            return match.group(1).strip() if match is not None else None
    end = data.find(b"\r\n", start)
    if end < 0:
        end = data.find(b"\n", start)
        if end < 0:
            end = len(data)
    return data[start:end].strip()


class CapturedMessage:
    """One SIP message of a traced call, as it crossed the wire."""

    __slots__ = ("at", "data", "inbound", "peer")

    def __init__(self, at: float, inbound: bool, peer: Address, data: bytes) -> None:
        self.at = at
        self.inbound = inbound
        self.peer = peer
        self.data = data


class CallTrace:
    """The captured messages of one call (both legs), in the order they crossed the wire.

    `legs` maps each Call-ID (str) to the party at the far end of that leg: ``"caller"`` for
    the caller's leg, else the number rung (a user, a line's account...).
    """

    __slots__ = (
        "call_id",
        "legs",
        "messages",
        "size",
        "started_at",
        "truncated",
    )

    def __init__(self, call_id: str, started_at: float) -> None:
        self.call_id = call_id
        self.started_at = started_at
        self.legs: dict[str, str] = {}
        self.messages: list[CapturedMessage] = []
        self.size = 0
        self.truncated = 0


class CallCapture:
    """The ring buffer of the last `keep` calls' traces and the Call-ID index the pump reads."""

    __slots__ = ("current", "keep", "max_bytes", "max_messages", "traces", "watched")

    def __init__(self, keep: int, *, max_messages: int = 500, max_bytes: int = 1 << 20) -> None:
        self.keep = keep
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        #: Call-ID (bytes, as in the datagram) -> the trace it belongs to.
        self.watched: dict[bytes, CallTrace] = {}
        #: The datagram the pump is processing now, and its source.
        self.current: tuple[bytes, Address] | None = None
        self.traces: OrderedDict[str, CallTrace] = OrderedDict()

    # -- the B2BUA's side ---------------------------------------------------------------------
    def begin(self, call_id: str, a_call_id: str, at: float) -> CallTrace | None:
        """A call started from the INVITE being processed now: trace it, oldest trace out.

        The caller's INVITE is taken from `current` when it carries `a_call_id` (it always does
        when the B2BUA runs inside the pump's dispatch).
        """
        if self.keep <= 0:
            return None
        trace = CallTrace(call_id, at)
        self.traces[call_id] = trace
        while len(self.traces) > self.keep:
            _, old = self.traces.popitem(last=False)
            for leg_call_id in old.legs:
                key = leg_call_id.encode("utf-8", "surrogateescape")
                if self.watched.get(key) is old:
                    del self.watched[key]
        key = a_call_id.encode("utf-8", "surrogateescape")
        trace.legs[a_call_id] = "caller"
        self.watched[key] = trace
        current = self.current
        if current is not None and call_id_of(current[0]) == key:
            self.record(trace, current[0], True, current[1], at)
        return trace

    def add_leg(self, call_id: str, leg_call_id: str, party: str) -> None:
        """A B leg of `call_id` uses `leg_call_id`; register it before its INVITE is sent."""
        trace = self.traces.get(call_id)
        if trace is None:
            return
        trace.legs[leg_call_id] = party
        self.watched[leg_call_id.encode("utf-8", "surrogateescape")] = trace

    # -- the pump's side ----------------------------------------------------------------------
    def record(
        self, trace: CallTrace, data: bytes, inbound: bool, peer: Address, at: float
    ) -> None:
        """Keep one message of a traced call (bounded per call)."""
        if len(trace.messages) >= self.max_messages or trace.size + len(data) > self.max_bytes:
            trace.truncated += 1
            return
        trace.size += len(data)
        trace.messages.append(CapturedMessage(at, inbound, peer, data))

    # -- readers ------------------------------------------------------------------------------
    def get(self, call_id: str) -> CallTrace | None:
        """The trace of one call by sipbox's call id, or by either leg's SIP Call-ID."""
        trace = self.traces.get(call_id)
        if trace is None:
            trace = self.watched.get(call_id.encode("utf-8", "surrogateescape"))
        return trace

    def __len__(self) -> int:
        return len(self.traces)
