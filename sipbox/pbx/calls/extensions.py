"""The B2BUA's extensions behind one object (`B2BUA.ext`): the hook points of `b2bua.py`
dispatched to the modules that own each concern.

| hook (`b2bua.py`) | early.py | session_timer.py | transfer.py |
|---|---|---|---|
| `new_invite` | | 422 below Min-SE | INVITE with Replaces |
| `leg_headers` | Supported: 100rel | Session-Expires, Min-SE | |
| `leg_response` | PRACK reliable 1xx | 422 retry | |
| `relay_provisional` | reliable 1xx to the caller | | |
| `answered` | stop 1xx, body of the 2xx | start both legs | |
| `in_dialog` | PRACK, early UPDATE/INFO | bodiless UPDATE refresh | REFER, transferor's BYE |
| `relay_request`/`relayed_2xx` | | Session-Expires, refresh both | |
| `on_timer` | 1xx retransmission | refresh/expiry | plan, detach |

Keeping the hooks as calls at fixed points (not subclassing) lets `b2bua.py` stay the one place
to read for the core call flow, and each extension testable on its own.
"""

from __future__ import annotations

from typing import Any

from sipbox.sip.headers import Headers
from sipbox.sip.message import Request, Response

from ..dispatcher import RequestContext
from .early import EarlyDialogs
from .extbase import ExtTimer
from .message import PageMessages
from .model import BLeg, Call, Side, Timer
from .plan import LegSpec
from .session_timer import SessionTimers
from .transfer import Transfers

__all__ = ["CallExtensions", "SUPPORTED_TAGS"]

#: Option tags the calls feature implements (the dispatcher's 420 check and OPTIONS).
SUPPORTED_TAGS = frozenset({"100rel", "timer", "replaces"})


class CallExtensions:
    """PRACK, session timers, transfers, early-dialog requests and page-mode MESSAGE."""

    __slots__ = ("b2bua", "early", "messages", "timers", "transfers")

    def __init__(self, b2bua: Any, *, session_expires: int = 1800, min_se: int = 90) -> None:
        self.b2bua = b2bua
        self.early = EarlyDialogs(b2bua)
        self.timers = SessionTimers(b2bua, session_expires, min_se)
        self.transfers = Transfers(b2bua, self.timers)
        self.messages = PageMessages(b2bua)
        b2bua.ext = self

    # -- set-up -------------------------------------------------------------------------------
    def new_invite(self, ctx: RequestContext, caller: Any) -> bool:
        if self.timers.check_invite(ctx):
            return True
        return self.transfers.on_invite_replaces(ctx, caller)

    def leg_headers(self, call: Call, spec: LegSpec, headers: Headers) -> None:
        tags = [*self.early.leg_supported(call), "replaces"]
        if self.timers.enabled:
            tags.append("timer")
        headers.add("Supported", ", ".join(tags))
        self.timers.leg_headers(call, headers)

    def leg_response(self, call: Call, leg: BLeg, response: Response, tx: object) -> bool:
        status = response.status
        if status == 422:
            return self.timers.retry_422(call, leg, response, tx)
        if 100 < status < 200 and leg.live:
            return self.early.from_callee(call, leg, response)
        return False

    def relay_provisional(self, call: Call, leg: BLeg, response: Response,
                          headers: list[tuple[str, str]]) -> None:  # fmt: skip
        self.early.relay(call, leg, response, headers)

    def answered(self, call: Call, leg: BLeg, response: Response,
                 headers: list[tuple[str, str]]) -> tuple[bytes, str | None]:  # fmt: skip
        body, content_type = self.early.answered(call, leg, response)
        self.timers.answered(call, response, headers)
        if call.bside is not None:
            call.bside.local_sdp = call.a_invite.body or None
        if call.a is not None:
            call.a.local_sdp = body or (leg.early.a_answer if leg.early is not None else None)
        return body, content_type

    # -- in dialog ----------------------------------------------------------------------------
    def in_dialog(self, ctx: RequestContext, found: tuple[Call, Side] | None) -> bool:
        method = ctx.request.method
        if found is None or method == "PRACK":
            if self.early.in_dialog(ctx):
                return True
            if method == "PRACK":
                self.b2bua.dispatcher.reply(ctx, 481)
                return True
            return False
        call, side = found
        if self.transfers.in_dialog(ctx, call, side):
            return True
        return self.timers.absorb_update(ctx, call, side)

    def relay_request(self, call: Call, side: Side, other: Side, request: Request,
                      headers: list[tuple[str, str]]) -> None:  # fmt: skip
        self.timers.relay_request(other, request, headers)

    def relayed_2xx(self, relay: Any, response: Response, headers: list[tuple[str, str]]) -> None:
        source, dest = relay.source, relay.dest
        method = relay.original.method
        if method in ("INVITE", "UPDATE"):
            if response.body:
                source.local_sdp = response.body
            if relay.out.body:
                dest.local_sdp = relay.out.body
        self.timers.relayed_2xx(relay.call, source, dest, relay.original, response, headers)

    def on_timer(self, timer: Timer, now: float) -> None:
        if isinstance(timer, ExtTimer):
            timer.fire(now)
