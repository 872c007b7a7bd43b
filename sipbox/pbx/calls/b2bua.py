"""The back-to-back user agent: every call between users, leg by leg (issue 4).

Theory of operation
===================

A call is an A leg (the caller's INVITE, answered by us as a UAS) and B legs (INVITEs we send
as a UAC, one per device a `TargetPlan` asks for). Nothing is proxied: each leg has its own
Call-ID, tags, CSeq, Via and Contact, and what crosses between legs is decided by `policy.py`.
Everything runs synchronously inside the pump's event dispatch: no awaits, no database round
trip (the CDR goes to a background writer), time comes from `port.now()`, and the B2BUA's own
deadlines (ring timeout, 2xx retransmission, missing ACK, maximum duration) sit in one heap
that `CallService` drives with one timer handle, as the endpoint does for transactions.

Set-up. INVITE -> the endpoint has already sent 100 Trying -> authenticate (407 digest or IP)
-> `max_calls` of the caller (486) -> `Router.resolve(dialed)` gives a plan or a rejection
(404 unknown, 480 offline, 486 busy...) -> the plan's legs start in parallel.

Forking and early media (docs/calls.md). Each B leg's provisional responses are relayed to the
caller with a To tag of that leg's own (`BLeg.a_tag`), so the caller sees one early dialog per
device, exactly as behind a forking proxy (RFC 3261 §13.2.2.4, §19.3), and early media (183 +
SDP) of each device reaches it unchanged. The first 2xx wins and is relayed with the winner's
tag; the other legs are CANCELled (`Reason: SIP;cause=200`, RFC 3326). No UPDATE/re-INVITE is
needed to correct the caller's view.

Offer/answer. If the caller's INVITE carried an offer, the B leg's 2xx carries the answer and
we ACK it at once (the ACK is "generated on the B leg"); the caller's ACK is consumed on the A
leg. Without an offer (delayed offer) the B leg's 2xx carries the offer, which goes to the
caller; its ACK carries the answer, and only then do we ACK the B leg, with that answer. Every
2xx retransmission from a B leg gets the same ACK again (§13.2.2.4); our own 2xx towards a side
is retransmitted (T1 doubling to T2, UDP only) until its ACK arrives and gives up after 64*T1
(§13.3.1.4), which tears the call down. Re-INVITEs in either direction follow the same rules.

Races (the table is in docs/calls.md and in tests/pbx/test_calls_races.py):

* CANCEL from the caller before any provisional from a B leg: the endpoint holds our CANCEL
  until the leg's first provisional (§9.1); we answer 487 to the caller at once.
* A B leg's 2xx crossing our CANCEL, or arriving after another leg won, or after the caller
  gave up: the 2xx is ACKed and the leg BYEd (CANCEL does nothing after a 2xx, §9.1).
* CANCEL after our 2xx to the caller went out: the CANCEL gets 200 and changes nothing (§9.2);
  the caller then ACKs and BYEs as usual.
* Two legs answering at once: the first 2xx processed wins; the second is ACKed and BYEd.

Extensions live in their own modules and reach this one through `self.ext`
(`extensions.py`): 100rel/PRACK per leg (`early.py`, RFC 3262), UPDATE/INFO in early dialogs,
session timers on each leg (`session_timer.py`, RFC 4028), REFER and INVITE with Replaces
(`transfer.py`, RFC 3515/3891). The hooks are calls at fixed points (leg INVITE headers, a leg's
response, a provisional to relay, the answer, an in-dialog request, a relayed 2xx, a timer);
requests an extension sends itself sit in `_tx` as objects with `on_response`/`on_failed`.
The optional maximum call duration, session timers and the dead-peer rules (missing ACK, an
in-dialog request answered 408/481 or timing out) bound a call whose phone vanished.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sipbox.sip.address import Address, Peer
from sipbox.sip.capture import CallCapture
from sipbox.sip.dialog import Dialog
from sipbox.sip.events import (
    AckReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from sipbox.sip.headers import Headers, NameAddr
from sipbox.sip.ids import IdSource
from sipbox.sip.message import Request, Response
from sipbox.sip.replies import make_response
from sipbox.sip.uri import SipUri, TelUri
from sipbox.storage.interface import User
from sipbox.storage.records import Cdr, finish_cdr

from ..dispatcher import Dispatcher, RequestContext
from ..port import SipPort
from .model import BLeg, Call, CallState, LegState, Side, Timer
from .observe import SetupTimes
from .plan import LegSpec, PlanStep, Reject
from .policy import IN_DIALOG_HEADERS, INVITE_HEADERS, RESPONSE_HEADERS, copy_allowed
from .routing import RouteContext, Router

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["B2BUA", "disposition_for"]

#: Methods relayed inside an established call (REFER comes with transfers, later).
RELAYED_METHODS = ("INVITE", "UPDATE", "INFO", "MESSAGE", "NOTIFY", "BYE")


def disposition_for(status: int) -> str:
    """The CDR disposition of a call that failed with `status` (issue 4's vocabulary)."""
    if status in (486, 600):
        return "busy"
    if status in (603, 607, 403):
        return "rejected"
    if status == 487:
        return "cancelled"
    if status == 408:
        return "no-answer"
    return "failed"


class _Relay:
    """An in-dialog request relayed from side `source` to side `dest` (as `out`)."""

    __slots__ = ("call", "dest", "done", "original", "out", "server_tx", "source")

    def __init__(
        self,
        call: Call,
        source: Side,
        dest: Side,
        original: Request,
        out: Request,
        server_tx: object | None,
    ) -> None:
        self.call = call
        self.server_tx = server_tx
        self.source = source
        self.dest = dest
        self.original = original
        self.out = out
        self.done = False


class _Bye:
    """A BYE we sent (hang-up, loser leg, teardown): its answer only ends the transaction."""

    __slots__ = ("call",)

    def __init__(self, call: Call) -> None:
        self.call = call


class B2BUA:
    """All live calls and the SIP logic between their legs."""

    def __init__(
        self,
        port: SipPort,
        dispatcher: Dispatcher,
        auth: Any,
        router: Router,
        *,
        domain: str,
        id_source: IdSource,
        cdr_sink: Callable[[Cdr], None] | None = None,
        wall_clock: Callable[[], float] | None = None,
        max_duration: float = 0.0,
        t1: float = 0.5,
        t2: float = 4.0,
    ) -> None:
        import time

        self.port = port
        self.dispatcher = dispatcher
        self.auth = auth
        self.router = router
        self.domain = domain
        self.ids = id_source
        self.cdr_sink = cdr_sink or (lambda record: None)
        self.wall = wall_clock or time.time
        self.max_duration = max_duration
        self.t1 = t1
        self.t2 = t2
        self.calls: dict[str, Call] = {}
        self._by_a: dict[tuple[str, str], Call] = {}
        self._dialogs: dict[tuple[str, str], tuple[Call, Side]] = {}
        self._tx: dict[object, tuple[Call, BLeg] | _Relay | _Bye] = {}
        self._b_call_ids: dict[str, tuple[Call, BLeg]] = {}
        self._active: dict[str, int] = {}
        self._timers: list[Timer] = []
        self._compact_at = 4096
        self.stats: dict[str, int] = {}
        # PRACK, session timers, transfers, early-dialog requests (`extensions.py`); None
        # keeps the core behaviour (tests of the core alone).
        self.ext: Any = None
        # Web admin (issue 7): the per-call SIP capture (`sip/capture.py`, set by app.py)
        # and the set-up time histogram (INVITE -> first 18x/2xx) /metrics reads.
        self.capture: CallCapture | None = None
        self.setup_times = SetupTimes()

    # == public ===================================================================================
    def active_calls(self, number: str) -> int:
        """Calls `number` is in now (as caller or as the user rung): the `max_calls` count."""
        return self._active.get(number, 0)

    def next_deadline(self) -> float | None:
        timers = self._timers
        if len(timers) > self._compact_at:
            self._compact_timers()
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
        return timers[0].at if timers else None

    def _compact_timers(self) -> None:
        """Drop cancelled timers from the heap: cancellation is lazy and most timers are
        cancelled long before they are due (2xx retransmission, ACK wait, a session timer
        30 min ahead), so without this the heap grows with the call rate times the longest
        delay. Amortized O(1): runs when the heap doubled since the last compaction."""
        live = [timer for timer in self._timers if not timer.cancelled]
        heapq.heapify(live)
        self._timers[:] = live
        self._compact_at = max(4096, 2 * len(live))

    def handle_timer(self, now: float) -> None:
        """Run every timer due at `now`."""
        timers = self._timers
        while timers and (timers[0].cancelled or timers[0].at <= now):
            timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            timer.cancelled = True
            try:
                self._on_timer(timer, now)
            except Exception:
                call = timer.call
                log.exception("call %s: timer %s failed", call and call.id, timer.kind)

    def hangup(self, call_id: str) -> bool:
        """End a call by administrative request (API): BYE both sides, or 480 + CANCEL
        while it rings. False when there is no such live call."""
        call = self.calls.get(call_id)
        if call is None or call.state is CallState.ENDED:
            return False
        now = self.port.now()
        if call.state is CallState.ANSWERED:
            self._teardown(call, 'SIP;cause=480;text="Call terminated by administrator"')
        else:
            call.hangup_by = "system"
            self._fail(call, Reject(480, "Call Terminated"), now, disposition="failed")
        return True

    # == requests =================================================================================
    def on_invite(self, ctx: RequestContext) -> None:
        request = ctx.request
        if request.to.tag is not None:
            self._in_dialog(ctx)
            return
        key = (request.call_id, request.from_.tag or "")
        if key in self._by_a:
            # Same Call-ID and From tag, new branch: a copy that reached us by another path
            # (§8.2.2.2 merged request).
            self.dispatcher.reply(ctx, 482)
            return
        result = self.auth.authenticate(ctx, proxy=True)
        caller: User | None = result.user
        if caller is None:
            if not result.answered:
                self.dispatcher.reply(ctx, 403)
            return
        peer = ctx.peer
        assert isinstance(peer, Peer)
        if self.ext is not None and self.ext.new_invite(ctx, caller):
            return  # 422 (RFC 4028) or an INVITE with Replaces (RFC 3891)
        now = self.port.now()
        # A call in from an external line/trunk names its local destination (issue 5).
        dialed = getattr(result, "dialed", None) or _dialed_number(request)
        if caller.max_calls is not None and self.active_calls(caller.number) >= caller.max_calls:
            self._reject(ctx, caller, dialed or "", Reject(486, "Too Many Calls"))
            return
        if not dialed:
            self._reject(ctx, caller, "", Reject(404))
            return
        route = self.router.resolve(dialed, RouteContext(caller, (caller.number,)))
        if isinstance(route, Reject):
            self._reject(ctx, caller, dialed, route)
            return
        call_id = self.ids()
        cdr = Cdr(
            id=call_id,
            start_time=self.wall(),
            caller_number=caller.number,
            caller_display=caller.display_name or request.from_.display,
            caller_source=peer.remote.hostport(),
            caller_transport=peer.remote.transport,
            dialed_number=dialed,
            a_call_id=request.call_id,
            destination=route.label,
            line=getattr(result, "peer", None),
        )
        call = Call(call_id, request, peer, caller, dialed, route, now, cdr)
        call.a_tx = ctx.transaction
        call.callee_number = route.label
        call.visited = (caller.number, dialed)
        self.calls[call_id] = call
        self._by_a[call.a_key] = call
        if self.capture is not None:
            self.capture.begin(call_id, request.call_id, cdr.start_time)
        self._count_active(caller.number, 1)
        if route.label != caller.number:
            self._count_active(route.label, 1)
        self._count("calls")
        self.cdr_sink(cdr)
        self._apply(call, route.start(now), now)

    def on_cancel(self, ctx: RequestContext) -> None:
        """§9.2: answer the CANCEL, then 487 the INVITE and cancel every B leg — unless the
        caller already has its final response (then the CANCEL changes nothing)."""
        request = ctx.request
        call = self._by_a.get((request.call_id, request.from_.tag or ""))
        if call is None or call.a_invite.top_via.branch != request.top_via.branch:
            self.dispatcher.reply(ctx, 481)
            return
        self.dispatcher.reply(ctx, 200)
        if call.final_sent:
            return
        now = self.port.now()
        call.hangup_by = "caller"
        reason = request.headers.get("reason")
        self._send_a(call, 487, None, to_tag=call.id)
        call.final_sent = True
        call.state = CallState.ENDING
        step = call.plan.caller_gone(now)
        step.cancel_reason = reason
        step.final = None
        self._apply(call, step, now)
        self._finish(call, "cancelled", 487, "Request Terminated")
        self._maybe_drop(call)

    def on_in_dialog(self, ctx: RequestContext) -> None:
        """BYE, UPDATE, INFO, MESSAGE, NOTIFY (and re-INVITE via `on_invite`)."""
        if ctx.request.to.tag is None:
            self.dispatcher.reply(ctx, 481 if ctx.request.method != "MESSAGE" else 404)
            return
        self._in_dialog(ctx)

    def on_ack(self, event: object) -> bool:
        """An ACK for one of our 2xx (AckReceived): stop retransmitting; for a delayed offer,
        carry its answer to the other side's pending ACK."""
        if not isinstance(event, AckReceived):
            return False
        ack = event.request
        found = self._dialogs.get((ack.call_id, ack.to.tag or ""))
        if found is None:
            return False
        call, side = found
        if side.pending_2xx is None or ack.cseq.seq != side.invite_seq:
            return True
        side.pending_2xx = None
        _cancel(side.retransmit_timer)
        _cancel(side.ack_timer)
        other = call.bside if side is call.a else call.a
        if other is not None and other.ack_body_wanted is not None:
            out = other.dialog.create_ack(
                other.ack_body_wanted,
                body=ack.body,
                content_type=ack.headers.get("content-type"),
            )
            other.ack_body_wanted = None
            other.ack = out
            other.local_sdp = ack.body or other.local_sdp
            self.port.send_ack_2xx(out, other.destination, other.connection_id)
        return True

    # == responses and transaction events =========================================================
    def on_response(self, event: ResponseReceived) -> bool:
        """True when the response belonged to a call."""
        response = event.response
        if event.transaction is None:
            return self._stray_2xx(response)
        entry = self._tx.get(event.transaction)
        if entry is None:
            return False
        if isinstance(entry, tuple):
            call, leg = entry
            self._leg_response(call, leg, response, event.transaction)
        elif isinstance(entry, _Relay):
            self._relay_response(entry, response, event.transaction)
        elif hasattr(entry, "on_response"):
            entry.on_response(response, event.transaction)  # an extension's own request
        elif response.status >= 200:
            self._tx.pop(event.transaction, None)
        return True

    def on_transaction_failed(self, event: TransactionTimedOut | TransportError) -> bool:
        """Timer B / guard expiry (408) or a transport failure (503), §8.1.3.1."""
        entry = self._tx.get(event.transaction)
        if entry is None:
            return False
        status = 408 if isinstance(event, TransactionTimedOut) else 503
        response = Response(status, headers=Headers())
        if isinstance(entry, tuple):
            call, leg = entry
            if leg.state is LegState.ANSWERED:
                return True
            self._leg_failed(call, leg, status, response, event.transaction)
        elif isinstance(entry, _Relay):
            self._tx.pop(event.transaction, None)
            if not entry.done:
                entry.done = True
                self._relay_final(entry, status, None)
        elif hasattr(entry, "on_failed"):
            self._tx.pop(event.transaction, None)
            entry.on_failed(status, event.transaction)
        else:
            self._tx.pop(event.transaction, None)
        return True

    # == internals: legs ==========================================================================
    def _apply(self, call: Call, step: PlanStep, now: float) -> None:
        for key in step.cancel:
            leg = call.legs.get(key)
            if leg is not None and leg.state in (LegState.CALLING, LegState.PROCEEDING):
                leg.state = LegState.CANCELLING
                self.port.send_cancel(leg.tx, step.cancel_reason)
        if not call.final_sent:
            for spec in step.start:
                self._start_leg(call, spec)
        if step.final is not None and not call.final_sent:
            self._fail(call, step.final, now)
        self._schedule_plan(call)

    def _start_leg(self, call: Call, spec: LegSpec) -> None:
        a = call.a_invite
        caller = call.caller
        target = spec.target
        headers = Headers()
        identity = self._identity(call)
        headers.add("From", f"{identity};tag={self.ids()}")
        headers.add("To", f"<sip:{spec.number}@{self.domain}>")
        headers.add("Call-ID", f"{self.ids()}@{self.domain}")
        headers.add("CSeq", "1 INVITE")
        max_forwards = a.max_forwards
        headers.add("Max-Forwards", str(69 if max_forwards is None else max_forwards - 1))
        headers.add("Contact", self._contact(caller.number, target.destination))
        headers.add("P-Asserted-Identity", identity)
        for name, value in copy_allowed(a.headers, INVITE_HEADERS):
            headers.add(name, value)
        if a.body:
            headers.add("Content-Type", a.headers.get("content-type") or "application/sdp")
        # A leg out through an external line/trunk (issue 5, `pbx/lines/outbound.py`): the
        # egress gives it the line's identity, Route and Diversion.
        egress = getattr(spec, "egress", None)
        if egress is not None:
            egress.prepare(call, spec, headers)
            call.cdr = replace(call.cdr, line=egress.name)
        if self.ext is not None:
            self.ext.leg_headers(call, spec, headers)  # Supported, Session-Expires/Min-SE
        invite = Request("INVITE", target.request_uri, headers, a.body)
        leg = BLeg(spec, invite, f"{call.id}x{spec.key}")
        call.legs[spec.key] = leg
        if self.capture is not None:  # before the INVITE leaves, so the trace has it
            self.capture.add_leg(call.id, leg.call_id, spec.number)
        tx = self.port.send_request(invite, target.destination, target.connection_id)
        leg.tx = tx
        self._tx[tx] = (call, leg)
        self._b_call_ids[leg.call_id] = (call, leg)

    def _leg_response(self, call: Call, leg: BLeg, response: Response, tx: object) -> None:
        status = response.status
        egress = getattr(leg.spec, "egress", None)
        if egress is not None and leg.state is not LegState.CANCELLING and leg.live:
            retry = egress.on_response(leg.invite, response)
            if retry is not None:
                # 401/407 from the carrier: the same INVITE with the line's credentials.
                self._tx.pop(tx, None)
                leg.invite = retry
                leg.tx = self.port.send_request(
                    retry, leg.target.destination, leg.target.connection_id
                )
                self._tx[leg.tx] = (call, leg)
                return
        if 100 < status < 300 and call.state is CallState.SETUP and leg.live:
            self.setup_times.observe(self.port.now() - call.started_at)
        if self.ext is not None and self.ext.leg_response(call, leg, response, tx):
            return  # 422 retried (RFC 4028 §6), or a reliable 1xx handled (RFC 3262)
        if status < 200:
            if status == 100 or not leg.live:
                return
            if leg.state is LegState.CALLING:
                leg.state = LegState.PROCEEDING
            if call.final_sent or leg.state is LegState.CANCELLING:
                return
            headers = copy_allowed(response.headers, RESPONSE_HEADERS)
            if response.to.tag:
                headers.append(("Contact", self._contact(call.dialed, call.peer.remote)))
            if self.ext is not None:
                # reliable towards the caller when it supports 100rel (RFC 3262 §3)
                self.ext.relay_provisional(call, leg, response, headers)
            else:
                self._send_a(
                    call,
                    status,
                    response.reason,
                    to_tag=leg.a_tag,
                    headers=headers,
                    body=response.body,
                    content_type=response.headers.get("content-type"),
                )
            call.state = CallState.RINGING
            return
        if status < 300:
            self._leg_answered(call, leg, response)
            return
        if not leg.live:
            return
        self._leg_failed(call, leg, status, response, tx)

    def _leg_failed(
        self, call: Call, leg: BLeg, status: int, response: Response, tx: object
    ) -> None:
        if not leg.live:
            return
        now = self.port.now()
        leg.state = LegState.FAILED
        leg.status = status
        leg.last_response = response
        self._tx.pop(tx, None)
        self._b_call_ids.pop(leg.call_id, None)
        reason = response.headers.get("reason")
        if reason:
            call.reason_header = reason
        if 300 <= status < 400 and not call.final_sent:
            numbers = _redirect_numbers(response)
            ctx = RouteContext(call.caller, call.visited)
            specs = self.router.redirect_specs(numbers, ctx, call.plan.new_key)
            call.visited = (*call.visited, *numbers)
            step = call.plan.redirected(leg.key, specs, now)
        else:
            step = call.plan.leg_failed(leg.key, status, now)
        self._apply(call, step, now)
        self._maybe_drop(call)

    def _leg_answered(self, call: Call, leg: BLeg, response: Response) -> None:
        if not leg.live:
            # A retransmission of a 2xx we already handled: the same ACK again (§13.2.2.4).
            self._resend_ack(call, leg)
            return
        dialog = Dialog.as_uac(leg.invite, response)
        if leg.early is not None:
            leg.early.continue_dialog(dialog)  # PRACK/UPDATE used CSeq numbers (§12.2.1.1)
        leg.dialog = dialog
        destination = leg.target.destination
        connection_id = leg.target.connection_id
        if call.state is CallState.ANSWERED or call.final_sent or leg.state is LegState.CANCELLING:
            # Lost the race (another leg won, the caller cancelled, our CANCEL crossed this
            # 2xx): ACK it, then BYE it — CANCEL cannot end an answered INVITE (§9.1).
            leg.state = LegState.ENDED
            ack = dialog.create_ack(leg.invite.cseq.seq)
            leg.ack = ack
            self.port.send_ack_2xx(ack, destination, connection_id)
            reason = (
                'SIP;cause=200;text="Call completed elsewhere"'
                if call.state is CallState.ANSWERED
                else 'SIP;cause=487;text="Request Terminated"'
            )
            bye = dialog.create_request("BYE", headers=[("Reason", reason)])
            bye_tx = self.port.send_request(bye, destination, connection_id)
            self._tx[bye_tx] = _Bye(call)
            self._count("late_2xx")
            self._maybe_drop(call)
            return
        now = self.port.now()
        leg.state = LegState.ANSWERED
        call.b = leg
        call.state = CallState.ANSWERED
        call.final_sent = True
        call.answered_at = self.wall()
        if leg.spec.number != call.callee_number:
            # A group member or forward target answered: from now on that user is the one in
            # the call (its `max_calls`, and "busy" for groups), not the number dialed.
            for number, delta in ((call.callee_number, -1), (leg.spec.number, 1)):
                if number and number != call.caller.number:
                    self._count_active(number, delta)
            call.callee_number = leg.spec.number
        self._apply(call, call.plan.answered(leg.key, now), now)
        bside = Side("callee", dialog, destination, connection_id)
        bside.invite_seq = leg.invite.cseq.seq
        if leg.invite.body:
            ack = dialog.create_ack(bside.invite_seq)
            bside.ack = ack
            self.port.send_ack_2xx(ack, destination, connection_id)
        else:
            bside.ack_body_wanted = bside.invite_seq  # delayed offer: the caller's ACK answers
        call.bside = bside
        a_invite = call.a_invite
        a_dialog = Dialog.as_uas(a_invite, leg.a_tag, confirmed=True)
        aside = Side("caller", a_dialog, call.peer.remote, call.peer.connection_id)
        aside.invite_seq = a_invite.cseq.seq
        call.a = aside
        self._dialogs[(a_invite.call_id, leg.a_tag)] = (call, aside)
        self._dialogs[(dialog.call_id, dialog.local_tag)] = (call, bside)
        headers = copy_allowed(response.headers, RESPONSE_HEADERS)
        headers.append(("Contact", self._contact(call.dialed, call.peer.remote)))
        body, content_type = response.body, response.headers.get("content-type")
        if self.ext is not None:
            # session timers start, reliable 1xx stop, an answer given early is repeated
            body, content_type = self.ext.answered(call, leg, response, headers)
        ok = make_response(
            a_invite,
            response.status,
            response.reason,
            to_tag=leg.a_tag,
            headers=headers,
            body=body,
            content_type=content_type,
        )
        self._send_2xx(call, aside, ok, now, call.a_tx)
        if self.max_duration > 0:
            call.duration_timer = self._schedule(now + self.max_duration, call, "duration")
        self._count("answered")
        call.cdr = Cdr(
            **{
                **_cdr_dict(call.cdr),
                "answer_time": call.answered_at,
                "destination": leg.spec.label or leg.spec.number,
                "b_call_id": leg.call_id,
            }
        )
        self.cdr_sink(call.cdr)

    def _resend_ack(self, call: Call, leg: BLeg) -> None:
        ack = call.bside.ack if call.b is leg and call.bside is not None else leg.ack
        if ack is not None:
            self.port.send_ack_2xx(ack, leg.target.destination, leg.target.connection_id)

    def _stray_2xx(self, response: Response) -> bool:
        """A 2xx retransmission after its INVITE transaction ended: ACK it again."""
        if not 200 <= response.status < 300 or response.cseq.method != "INVITE":
            return False
        found = self._dialogs.get((response.call_id, response.from_.tag or ""))
        if found is not None:
            _, side = found
            if side.ack is not None and response.cseq.seq == side.invite_seq:
                self.port.send_ack_2xx(side.ack, side.destination, side.connection_id)
            return True
        entry = self._b_call_ids.get(response.call_id)
        if entry is not None:
            self._resend_ack(*entry)
            return True
        return False

    # == internals: the caller's side =============================================================
    def _reject(self, ctx: RequestContext, caller: User, dialed: str, reject: Reject) -> None:
        """A call refused before any leg started: answer and record it."""
        request = ctx.request
        self.dispatcher.reply(ctx, reject.status, reject.reason)
        peer = ctx.peer
        now = self.wall()
        record = Cdr(
            id=self.ids(),
            start_time=now,
            caller_number=caller.number,
            caller_display=caller.display_name or request.from_.display,
            caller_source=peer.remote.hostport() if isinstance(peer, Peer) else None,
            caller_transport=peer.remote.transport if isinstance(peer, Peer) else None,
            dialed_number=dialed,
            a_call_id=request.call_id,
        )
        status = reject.status
        self.cdr_sink(
            finish_cdr(
                record,
                end_time=now,
                disposition=reject.disposition or _reject_disposition(status),  # type: ignore[arg-type]
                status=status,
                reason=reject.reason or Response(status).reason,
                hangup_by="system",
            )
        )
        self._count("rejected")

    def _fail(self, call: Call, reject: Reject, now: float, disposition: str | None = None) -> None:
        """Every leg failed (or the ring timeout / an administrator ended it): the caller gets
        the final failure, with the deciding leg's Reason (RFC 3326) when there was one."""
        if call.final_sent:
            return
        headers: list[tuple[str, str]] = []
        if call.reason_header:
            headers.append(("Reason", call.reason_header))
        last = _last_failure(call)
        if last is not None and reject.status == last.status:
            headers += [
                (n, v) for n, v in copy_allowed(last.headers, RESPONSE_HEADERS) if n != "Reason"
            ]
        self._send_a(call, reject.status, reject.reason, to_tag=call.id, headers=headers)
        call.final_sent = True
        call.state = CallState.ENDING
        step = call.plan.caller_gone(now)
        step.final = None
        self._apply(call, step, now)
        self._finish(
            call,
            disposition or reject.disposition or disposition_for(reject.status),
            reject.status,
            reject.reason or Response(reject.status).reason,
        )
        self._maybe_drop(call)

    def _send_a(
        self,
        call: Call,
        status: int,
        reason: str | None,
        *,
        to_tag: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        response = make_response(
            call.a_invite,
            status,
            reason,
            to_tag=to_tag,
            headers=headers or (),
            body=body,
            content_type=content_type,
        )
        self.port.send_response(response, call.a_tx)

    def _send_2xx(
        self, call: Call, side: Side, response: Response, now: float, server_tx: object | None
    ) -> None:
        """Send a 2xx to an INVITE from `side` and keep it until the ACK (§13.3.1.4)."""
        side.pending_2xx = response
        side.server_tx = server_tx
        self.port.send_response(response, server_tx)
        if not side.destination.is_stream:
            side.retransmit_interval = self.t1
            side.retransmit_timer = self._schedule(now + self.t1, call, "retransmit", side)
        side.ack_timer = self._schedule(now + 64 * self.t1, call, "ack", side)

    # == internals: in-dialog =====================================================================
    def _in_dialog(self, ctx: RequestContext) -> None:
        request = ctx.request
        found = self._dialogs.get((request.call_id, request.to.tag or ""))
        if self.ext is not None and self.ext.in_dialog(ctx, found):
            return  # REFER, PRACK, early-dialog requests, refreshes, transferred sides
        if found is None:
            self.dispatcher.reply(ctx, 481)
            return
        call, side = found
        other = call.bside if side is call.a else call.a
        if other is None or call.state is not CallState.ANSWERED:
            self.dispatcher.reply(ctx, 481)
            return
        if not side.dialog.accept_request(request):
            self.dispatcher.reply(ctx, 500, "CSeq Out of Order")
            return
        method = request.method
        if method == "BYE":
            self.dispatcher.reply(ctx, 200)
            call.hangup_by = side.name
            self._bye(call, other, request.headers.get("reason"))
            self._end(call)
            return
        if method == "INVITE":
            busy = (
                call.reinvite_busy
                or side.pending_2xx is not None
                or other.pending_2xx is not None
                or other.ack_body_wanted is not None
            )
            if busy:
                # §14.1: an INVITE while another is in progress on the call (either direction).
                self.dispatcher.reply(ctx, 491)
                return
            call.reinvite_busy = True
        headers = copy_allowed(request.headers, IN_DIALOG_HEADERS)
        max_forwards = request.max_forwards
        headers.append(("Max-Forwards", str(69 if max_forwards is None else max_forwards - 1)))
        if method in ("INVITE", "UPDATE"):
            user = self.b_user(call) if other is call.bside else call.dialed
            headers.append(("Contact", self._contact(user, other.destination)))
        if self.ext is not None:
            self.ext.relay_request(call, side, other, request, headers)  # Session-Expires
        out = other.dialog.create_request(
            method,
            headers=headers,
            body=request.body,
            content_type=request.headers.get("content-type"),
        )
        tx = self.port.send_request(out, other.destination, other.connection_id)
        self._tx[tx] = _Relay(call, side, other, request, out, ctx.transaction)

    def _relay_response(self, relay: _Relay, response: Response, tx: object) -> None:
        status = response.status
        call = relay.call
        method = relay.out.method
        if status == 100:
            return
        if relay.done:
            if method == "INVITE" and 200 <= status < 300 and relay.dest.ack is not None:
                self.port.send_ack_2xx(
                    relay.dest.ack, relay.dest.destination, relay.dest.connection_id
                )
            return
        if status >= 200:
            relay.done = True
            if method != "INVITE" or status >= 300:
                self._tx.pop(tx, None)
        if call.state is not CallState.ANSWERED:
            if method == "INVITE" and 200 <= status < 300:
                # The call ended meanwhile: acknowledge, the BYE is already on its way.
                ack = relay.dest.dialog.create_ack(relay.out.cseq.seq)
                self.port.send_ack_2xx(ack, relay.dest.destination, relay.dest.connection_id)
            return
        headers = copy_allowed(response.headers, RESPONSE_HEADERS)
        source = relay.source
        if method in ("INVITE", "UPDATE") and status < 300:
            user = call.dialed if source is call.a else self.b_user(call)
            headers.append(("Contact", self._contact(user, source.destination)))
        if self.ext is not None and 200 <= status < 300:
            self.ext.relayed_2xx(relay, response, headers)  # a refresh of both legs
        out = make_response(
            relay.original,
            status,
            response.reason,
            headers=headers,
            body=response.body,
            content_type=response.headers.get("content-type"),
        )
        if method == "INVITE" and 200 <= status < 300:
            dest = relay.dest
            dest.dialog.refresh_target(response)
            dest.invite_seq = relay.out.cseq.seq
            if relay.out.body:
                dest.ack = dest.dialog.create_ack(dest.invite_seq)
                dest.ack_body_wanted = None
                self.port.send_ack_2xx(dest.ack, dest.destination, dest.connection_id)
            else:
                dest.ack = None
                dest.ack_body_wanted = dest.invite_seq
            source.invite_seq = relay.original.cseq.seq
            call.reinvite_busy = False
            self._send_2xx(call, source, out, self.port.now(), relay.server_tx)
            return
        if method == "UPDATE" and 200 <= status < 300:
            relay.dest.dialog.refresh_target(response)
        self.port.send_response(out, relay.server_tx)
        if status >= 200:
            self._relay_final(relay, status, None, sent=True)

    def _relay_final(self, relay: _Relay, status: int, _: object, *, sent: bool = False) -> None:
        call = relay.call
        if relay.out.method == "INVITE":
            call.reinvite_busy = False
        if not sent and call.state is CallState.ANSWERED:
            response = make_response(relay.original, status)
            self.port.send_response(response, relay.server_tx)
        if status in (408, 481) and call.state is CallState.ANSWERED:
            # The far side is gone (no answer, or it has no such dialog): end the call.
            self._teardown(call, f'SIP;cause={status};text="{Response(status).reason}"')

    def _bye(self, call: Call, side: Side, reason: str | None) -> None:
        headers = [("Reason", reason)] if reason else []
        bye = side.dialog.create_request("BYE", headers=headers)
        tx = self.port.send_request(bye, side.destination, side.connection_id)
        self._tx[tx] = _Bye(call)

    def _teardown(self, call: Call, reason: str) -> None:
        """End an answered call from the middle: BYE both sides (dead peer, limits, admin)."""
        if call.state is not CallState.ANSWERED:
            return
        if call.hangup_by is None:
            call.hangup_by = "system"
        for side in (call.a, call.bside):
            if side is not None:
                self._bye(call, side, reason)
        self._end(call)

    def _end(self, call: Call) -> None:
        """An answered call is over (both BYEs are out)."""
        for side in (call.a, call.bside):
            if side is not None:
                side.pending_2xx = None
                _cancel(side.retransmit_timer)
                _cancel(side.ack_timer)
        self._finish(call, "answered", 200, "OK")
        self._maybe_drop(call)

    def _finish(self, call: Call, disposition: str, status: int, reason: str) -> None:
        """Complete the call's record and release its limits (once)."""
        if call.state is CallState.ENDED:
            return
        call.state = CallState.ENDED
        _cancel(call.duration_timer)
        self._count_active(call.caller.number, -1)
        if call.callee_number and call.callee_number != call.caller.number:
            self._count_active(call.callee_number, -1)
        last = call.b or _last_leg(call)
        record = finish_cdr(
            call.cdr,
            end_time=self.wall(),
            disposition=disposition,  # type: ignore[arg-type]
            status=status,
            reason=reason,
            hangup_by=call.hangup_by if call.hangup_by else "system",  # type: ignore[arg-type]
            b_call_id=last.call_id if last is not None else None,
        )
        call.cdr = record
        self.cdr_sink(record)

    def _maybe_drop(self, call: Call) -> None:
        """Forget the call once it is over and no B leg can still answer."""
        if call.state is not CallState.ENDED or any(leg.live for leg in call.legs.values()):
            return
        self.calls.pop(call.id, None)
        self._by_a.pop(call.a_key, None)
        for side in (call.a, call.bside):
            if side is not None:
                key = (side.dialog.call_id, side.dialog.local_tag)
                if self._dialogs.get(key, (None,))[0] is call:
                    del self._dialogs[key]
        for leg in call.legs.values():
            entry = self._tx.get(leg.tx)
            if isinstance(entry, tuple) and entry[0] is call:
                del self._tx[leg.tx]
            self._b_call_ids.pop(leg.call_id, None)
            early = leg.early
            if early is not None and early.a_timer is not None:
                early.a_timer.release()
        # Cancelled timers stay in the heap until due: make them let go of the call so it
        # dies now, by reference counting, not at the next full GC pass (or in 30 min).
        for timer in (call.duration_timer, call.plan_timer):
            if timer is not None:
                timer.release()
        for side in (call.a, call.bside):
            if side is not None:
                for timer in (side.retransmit_timer, side.ack_timer):
                    if timer is not None:
                        timer.release()
                session = side.session
                if session is not None and session.timer is not None:
                    session.timer.release()

    # == timers ===================================================================================
    def _schedule(self, at: float, call: Call, kind: str, side: Side | None = None) -> Timer:
        timer = Timer(at, call, kind, side)
        heapq.heappush(self._timers, timer)
        return timer

    def _schedule_plan(self, call: Call) -> None:
        deadline = call.plan.next_deadline()
        current = call.plan_timer
        if current is not None and not current.cancelled and current.at == deadline:
            return
        _cancel(current)
        if deadline is not None and not call.final_sent:
            call.plan_timer = self._schedule(deadline, call, "plan")

    def _on_timer(self, timer: Timer, now: float) -> None:
        call = timer.call
        kind = timer.kind
        if kind == "plan":
            if not call.final_sent:
                self._apply(call, call.plan.on_timer(now), now)
            return
        side = timer.side
        if kind == "retransmit" and side is not None:
            if side.pending_2xx is None or call.state is not CallState.ANSWERED:
                return
            self.port.send_response(side.pending_2xx, side.server_tx)
            side.retransmit_interval = min(side.retransmit_interval * 2, self.t2)
            side.retransmit_timer = self._schedule(
                now + side.retransmit_interval, call, "retransmit", side
            )
        elif kind == "ack" and side is not None:
            if side.pending_2xx is not None and call.state is CallState.ANSWERED:
                self._count("ack_timeouts")
                side.pending_2xx = None
                self._teardown(call, 'SIP;cause=408;text="ACK Timeout"')
        elif kind == "duration":
            self._count("max_duration")
            self._teardown(call, 'SIP;cause=408;text="Maximum call duration"')
        elif self.ext is not None:
            self.ext.on_timer(timer, now)  # reliable 1xx, session timers, transfers

    # == helpers ==================================================================================
    def b_user(self, call: Call) -> str:
        """The Contact user we present on the B side: the caller's number, except through an
        external line, where it is the Contact user the line registered (issue 5: the carrier
        matches in-dialog requests and IMS checks against the registered contact)."""
        leg = call.b
        egress = getattr(leg.spec, "egress", None) if leg is not None else None
        return getattr(egress, "contact_user", None) or call.caller.number

    def _identity(self, call: Call) -> str:
        caller = call.caller
        display = caller.display_name or call.a_invite.from_.display
        return str(NameAddr(SipUri(host=self.domain, user=caller.number), display or None))

    def _contact(self, user: str, destination: Address) -> str:
        local = self.port.local_address(destination)
        transport = "" if local.transport == "udp" else f";transport={local.transport}"
        scheme = "sips" if local.transport == "tls" else "sip"
        return f"<{scheme}:{user}@{local.hostport()}{transport}>"

    def _count_active(self, number: str, delta: int) -> None:
        value = self._active.get(number, 0) + delta
        if value > 0:
            self._active[number] = value
        else:
            self._active.pop(number, None)

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1


def _cancel(timer: Timer | None) -> None:
    if timer is not None:
        timer.cancelled = True


def _cdr_dict(record: Cdr) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


def _dialed_number(request: Request) -> str | None:
    uri = request.uri
    if isinstance(uri, SipUri):
        return uri.user_decoded()
    if isinstance(uri, TelUri):
        return uri.digits()
    return None


def _redirect_numbers(response: Response) -> list[str]:
    """The user parts of a 3xx's Contacts (highest q first, §21.3), for local look-up."""
    found: list[tuple[float, str]] = []
    for contact in response.contacts:
        address = contact.address
        if address is None or not isinstance(address.uri, SipUri):
            continue
        user = address.uri.user_decoded()
        if not user:
            continue
        try:
            q = float(address.params.get("q") or 1.0)
        except ValueError:
            q = 1.0
        found.append((-q, user))
    return [user for _, user in sorted(found, key=lambda item: item[0])]


def _reject_disposition(status: int) -> str:
    if status in (486, 600):
        return "busy"
    if status in (403, 603, 607):
        return "rejected"
    return "failed"


def _last_leg(call: Call) -> BLeg | None:
    legs = list(call.legs.values())
    return legs[-1] if legs else None


def _last_failure(call: Call) -> Response | None:
    best: Response | None = None
    for leg in call.legs.values():
        if leg.last_response is not None:
            best = leg.last_response
    return best
