"""Early dialogs of a call: 100rel/PRACK per leg (RFC 3262) and UPDATE/INFO before the answer.

Reliable provisionals belong to one leg. RSeq and RAck number one transaction of one dialog,
so nothing is carried across: each side runs its own.

* **Towards a callee** (we are the UAC): the B leg's INVITE says `Supported: 100rel` when the
  caller's INVITE carried an offer (a reliable 1xx then only ever carries the *answer*, which
  we can acknowledge without asking the caller anything; with a delayed offer a reliable 1xx
  could carry an offer whose answer only the caller has, so we do not offer 100rel there). A
  1xx with `Require: 100rel` is PRACKed at once in that leg's early dialog (RFC 3262 §4: RAck =
  RSeq + CSeq + method); a retransmission (RSeq not above the last) is neither PRACKed again
  nor relayed again; one that skips a number is dropped (§4: it would be out of order).
* **Towards the caller** (we are the UAS): a provisional is sent reliably when the caller
  requires 100rel, or supports it and the callee's 1xx was reliable (a callee's unreliable
  183 + SDP stays unreliable for a caller that only *supports* 100rel, so the answer in the 2xx
  stays the answer). Each early dialog (one per fork branch, `BLeg.a_tag`) has its own RSeq
  space; its first reliable 1xx must be PRACKed before the next is sent (§3), so later ones
  wait in a queue. Retransmission: T1, then doubling (no T2 cap in §3), until the PRACK; after
  64*T1 without one the INVITE is answered 500 (§3 "SHOULD reject ... with a 5xx"). A PRACK
  that matches nothing unacknowledged gets 481 (§3).
* **Offer/answer across the two**: the answer a callee gave in a reliable 1xx is not repeated
  in its 2xx (RFC 3262 §5); when the caller did not get that answer reliably, we put it in the
  caller's 2xx. An answer the caller already got reliably is not repeated in its 2xx.

Early-dialog requests (the issue: UPDATE and INFO from the caller before the answer): a request
in one of the caller's early dialogs goes to **the B leg that dialog belongs to** — the To tag
the caller uses *is* that leg's `a_tag`, so there is never a choice to make (docs/calls.md:
each fork branch is one early dialog towards the caller). Symmetrically, an UPDATE/INFO from a
callee in its early dialog goes to the caller in that leg's early dialog. Answers come back the
same way. A request in an early dialog whose leg has no early dialog with its device yet (its
1xx had no To tag) gets 481.
"""

from __future__ import annotations

import logging
from typing import Any

from sipbox.sip.address import Address
from sipbox.sip.dialog import Dialog
from sipbox.sip.message import Request, Response
from sipbox.sip.replies import make_response

from ..dispatcher import RequestContext
from .extbase import ExtTimer, Owned, initial_rseq, option_tags, schedule
from .model import BLeg, Call, LegState
from .plan import Reject
from .policy import IN_DIALOG_HEADERS, RESPONSE_HEADERS, copy_allowed

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["EarlyDialogs", "EarlyLeg"]

#: Methods relayed inside early dialogs (RFC 3311 UPDATE, RFC 6086 INFO).
EARLY_METHODS = frozenset({"UPDATE", "INFO"})


class EarlyLeg:
    """The early-dialog state of one fork branch, on both of its sides."""

    __slots__ = (
        "a_answer",
        "a_dialog",
        "a_interval",
        "a_queue",
        "a_rseq",
        "a_started",
        "a_timer",
        "a_unacked",
        "b_answer",
        "b_dialog",
        "b_provisional",
        "b_rseq",
    )

    def __init__(self) -> None:
        self.a_dialog: Dialog | None = None  # UAS early dialog with the caller (tag = a_tag)
        self.a_rseq = 0  # RSeq of the last reliable 1xx we sent the caller
        self.a_unacked: Response | None = None  # being retransmitted until PRACK
        self.a_queue: list[Response] = []
        self.a_interval = 0.0
        self.a_started = 0.0
        self.a_timer: ExtTimer | None = None
        self.a_answer: bytes | None = None  # SDP the caller got in a reliable 1xx
        self.b_dialog: Dialog | None = None  # UAC early dialog with the callee's device
        self.b_rseq: int | None = None  # RSeq of the last reliable 1xx we PRACKed
        self.b_answer: bytes | None = None  # SDP the callee gave in a reliable 1xx
        # The callee's last 1xx with a To tag: its early dialog, built only when a request
        # needs it (keeps the common 180-then-200 path free of dialog parsing).
        self.b_provisional: Response | None = None

    def callee_dialog(self, invite: Request) -> Dialog | None:
        """The UAC early dialog with the callee's device, from its last tagged 1xx."""
        last = self.b_provisional
        if last is not None and (self.b_dialog is None or self.b_dialog.remote_tag != last.to.tag):
            self.b_dialog = Dialog.as_uac(invite, last)
            self.b_rseq = None
        return self.b_dialog

    def continue_dialog(self, dialog: Dialog) -> None:
        """The confirmed dialog goes on numbering after the early requests (§12.2.1.1)."""
        if self.b_dialog is not None:
            dialog.local_seq = max(dialog.local_seq, self.b_dialog.local_seq)


class EarlyDialogs:
    """PRACK and early-dialog relaying for every call of one B2BUA."""

    __slots__ = ("b2bua",)

    def __init__(self, b2bua: Any) -> None:
        self.b2bua = b2bua

    # == towards the callee ========================================================================
    @staticmethod
    def leg_supported(call: Call) -> list[str]:
        """Option tags for a B leg's Supported: 100rel only when the caller sent an offer."""
        return ["100rel"] if call.a_invite.body else []

    def from_callee(self, call: Call, leg: BLeg, response: Response) -> bool:
        """A provisional from a B leg. PRACK it when reliable; True = swallow it (a
        retransmission or an out-of-order reliable 1xx, RFC 3262 §4)."""
        if not response.to.tag:
            return False
        if "100rel" not in option_tags(response, "require"):
            self._early(leg).b_provisional = response
            return False
        try:
            rseq = int((response.headers.get("rseq") or "").strip())
        except ValueError:
            return True  # a reliable 1xx without a usable RSeq cannot be acknowledged
        early = self._early(leg)
        early.b_provisional = response
        dialog = early.callee_dialog(leg.invite)
        assert dialog is not None
        if early.b_rseq is not None:
            if rseq <= early.b_rseq:
                return True  # retransmission: our PRACK's own transaction covers its loss
            if rseq != early.b_rseq + 1:
                return True
        early.b_rseq = rseq
        if response.body:
            early.b_answer = response.body
        prack = dialog.create_request(
            "PRACK",
            headers=[("RAck", f"{rseq} {leg.invite.cseq.seq} INVITE"), ("Max-Forwards", "70")],
        )
        b2bua = self.b2bua
        tx = b2bua.port.send_request(prack, leg.target.destination, leg.target.connection_id)
        b2bua._tx[tx] = Owned(self._prack_answered(), None)
        b2bua._count("prack_sent")
        return leg.state is LegState.CANCELLING

    def _prack_answered(self) -> Any:
        def respond(response: Response, tx: object) -> None:
            if response.status >= 200:
                self.b2bua._tx.pop(tx, None)

        return respond

    # == towards the caller ========================================================================
    def relay(
        self, call: Call, leg: BLeg, response: Response, headers: list[tuple[str, str]]
    ) -> None:
        """Send a callee's provisional to the caller, reliably when RFC 3262 lets us."""
        b2bua = self.b2bua
        a_invite = call.a_invite
        a_require = option_tags(a_invite, "require")
        reliable_b = "100rel" in option_tags(response, "require")
        reliable = "100rel" in a_require or (
            reliable_b and "100rel" in option_tags(a_invite, "supported")
        )
        body = response.body
        content_type = response.headers.get("content-type")
        if not reliable:
            b2bua._send_a(
                call, response.status, response.reason, to_tag=leg.a_tag, headers=headers,
                body=body, content_type=content_type,
            )  # fmt: skip
            return
        if not a_invite.body:
            body, content_type = b"", None  # delayed offer: a reliable 1xx must not offer
        early = self._early(leg)
        if early.a_rseq == 0:
            early.a_rseq = initial_rseq(f"{call.id}/{leg.a_tag}") - 1
        early.a_rseq += 1
        out = make_response(
            a_invite,
            response.status,
            response.reason,
            to_tag=leg.a_tag,
            headers=[*headers, ("Require", "100rel"), ("RSeq", str(early.a_rseq))],
            body=body,
            content_type=content_type,
        )
        if body:
            early.a_answer = body
        if early.a_unacked is not None:
            early.a_queue.append(out)  # §3: not before the previous one is PRACKed
            return
        self._send_reliable(call, leg, out)

    def _send_reliable(self, call: Call, leg: BLeg, out: Response) -> None:
        b2bua = self.b2bua
        early = self._early(leg)
        now = b2bua.port.now()
        early.a_unacked = out
        early.a_interval = b2bua.t1
        early.a_started = now
        b2bua.port.send_response(out, call.a_tx)
        early.a_timer = schedule(
            b2bua, now + b2bua.t1, call, "rel1xx", lambda t: self._retransmit(call, leg, out, t)
        )

    def _retransmit(self, call: Call, leg: BLeg, out: Response, now: float) -> None:
        early = leg.early
        if early is None or early.a_unacked is not out or call.final_sent:
            return
        b2bua = self.b2bua
        give_up = early.a_started + 64 * b2bua.t1
        if now >= give_up:
            # §3: no PRACK for 64*T1: reject the INVITE with a 5xx.
            early.a_unacked = None
            b2bua._count("prack_timeouts")
            call.hangup_by = "system"
            b2bua._fail(call, Reject(500, "Provisional Response Not Acknowledged"), now,
                        disposition="failed")  # fmt: skip
            return
        b2bua.port.send_response(out, call.a_tx)
        early.a_interval *= 2
        early.a_timer = schedule(
            b2bua, min(now + early.a_interval, give_up), call, "rel1xx",
            lambda t: self._retransmit(call, leg, out, t),
        )  # fmt: skip

    def on_prack(self, ctx: RequestContext, call: Call | None) -> None:
        """PRACK from the caller (RFC 3262 §3): match RAck against the unacknowledged 1xx of
        the early dialog named by its To tag; 200 and stop retransmitting, else 481."""
        b2bua = self.b2bua
        request = ctx.request
        leg = _leg_by_a_tag(call, request.to.tag) if call is not None else None
        early = leg.early if leg is not None else None
        unacked = early.a_unacked if early is not None else None
        rack = (request.headers.get("rack") or "").split()
        if call is None or early is None or unacked is None or len(rack) != 3:
            b2bua.dispatcher.reply(ctx, 481)
            return
        try:
            rseq, cseq = int(rack[0]), int(rack[1])
        except ValueError:
            b2bua.dispatcher.reply(ctx, 400, "Bad RAck")
            return
        if (
            rseq != int(unacked.headers.get("rseq") or 0)
            or cseq != call.a_invite.cseq.seq
            or rack[2].upper() != "INVITE"
        ):
            b2bua.dispatcher.reply(ctx, 481)
            return
        if early.a_dialog is not None:
            early.a_dialog.accept_request(request)
        b2bua.dispatcher.reply(ctx, 200, to_tag=request.to.tag)
        early.a_unacked = None
        if early.a_timer is not None:
            early.a_timer.cancelled = True
        if early.a_queue and not call.final_sent and leg is not None:
            self._send_reliable(call, leg, early.a_queue.pop(0))

    # == the answer ===============================================================================
    def answered(self, call: Call, leg: BLeg, response: Response) -> tuple[bytes, str | None]:
        """Stop the reliable 1xx of every branch, continue the early CSeq numbering, and
        choose the body of the caller's 2xx (RFC 3262 §5 offer/answer rules)."""
        body, content_type = response.body, response.headers.get("content-type")
        for other in call.legs.values():
            if other.early is not None and other.early.a_timer is not None:
                other.early.a_timer.cancelled = True
                other.early.a_unacked = None
                other.early.a_queue.clear()
        early = leg.early
        if early is None:
            return body, content_type
        if call.a is not None and early.a_dialog is not None:
            call.a.dialog.local_seq = max(call.a.dialog.local_seq, early.a_dialog.local_seq)
            if early.a_dialog.remote_seq is not None:
                call.a.dialog.remote_seq = max(
                    call.a.dialog.remote_seq or 0, early.a_dialog.remote_seq
                )
        if early.a_answer is not None:
            # The caller has the answer already: a 2xx must not carry it again.
            if not body or body == early.a_answer:
                return b"", None
            return body, content_type
        if not body and early.b_answer is not None and call.a_invite.body:
            return early.b_answer, "application/sdp"
        return body, content_type

    # == requests inside early dialogs ============================================================
    def in_dialog(self, ctx: RequestContext) -> bool:
        """UPDATE/INFO/PRACK in an early dialog (no confirmed dialog matched). True = handled."""
        request = ctx.request
        method = request.method
        b2bua = self.b2bua
        call = b2bua._by_a.get((request.call_id, request.from_.tag or ""))
        if method == "PRACK":
            if call is None:
                return False
            self.on_prack(ctx, call)
            return True
        if method not in EARLY_METHODS:
            return False
        if call is not None:
            leg = _leg_by_a_tag(call, request.to.tag)
            if leg is None or not leg.live or call.final_sent:
                return False
            early = self._early(leg)
            if early.callee_dialog(leg.invite) is None:
                b2bua.dispatcher.reply(ctx, 481)
                return True
            if early.a_dialog is None:
                early.a_dialog = Dialog.as_uas(call.a_invite, leg.a_tag)
            if not early.a_dialog.accept_request(request):
                b2bua.dispatcher.reply(ctx, 500, "CSeq Out of Order")
                return True
            self._relay(ctx, early.b_dialog, leg.target.destination, leg.target.connection_id,
                        call.caller.number, call.dialed, call.peer.remote)  # fmt: skip
            return True
        found = b2bua._b_call_ids.get(request.call_id)
        if found is None:
            return False
        call, leg = found
        if not leg.live or call.final_sent:
            return False
        early = self._early(leg)
        early.callee_dialog(leg.invite)
        if early.b_dialog is None or early.b_dialog.remote_tag != request.from_.tag:
            b2bua.dispatcher.reply(ctx, 481)
            return True
        if not early.b_dialog.accept_request(request):
            b2bua.dispatcher.reply(ctx, 500, "CSeq Out of Order")
            return True
        if early.a_dialog is None:
            early.a_dialog = Dialog.as_uas(call.a_invite, leg.a_tag)
        self._relay(ctx, early.a_dialog, call.peer.remote, call.peer.connection_id,
                    call.dialed, call.caller.number, leg.target.destination)  # fmt: skip
        return True

    def _relay(self, ctx: RequestContext, dialog: Dialog, destination: Address,
               connection_id: int | None, user: str, reply_user: str,
               reply_destination: Address) -> None:  # fmt: skip
        """Send `ctx.request` in `dialog` (our Contact names `user`) and relay its final
        answer back (our Contact names `reply_user`)."""
        b2bua = self.b2bua
        request = ctx.request
        headers = copy_allowed(request.headers, IN_DIALOG_HEADERS)
        max_forwards = request.max_forwards
        headers.append(("Max-Forwards", str(69 if max_forwards is None else max_forwards - 1)))
        if request.method == "UPDATE":
            headers.append(("Contact", b2bua._contact(user, destination)))
        out = dialog.create_request(
            request.method, headers=headers, body=request.body,
            content_type=request.headers.get("content-type"),
        )  # fmt: skip
        tx = b2bua.port.send_request(out, destination, connection_id)
        server_tx = ctx.transaction

        def respond(response: Response, tx: object) -> None:
            if response.status < 200:
                return
            b2bua._tx.pop(tx, None)
            headers = copy_allowed(response.headers, RESPONSE_HEADERS)
            if request.method == "UPDATE" and response.status < 300:
                dialog.refresh_target(response)
                headers.append(("Contact", b2bua._contact(reply_user, reply_destination)))
            reply = make_response(
                request, response.status, response.reason, headers=headers,
                body=response.body, content_type=response.headers.get("content-type"),
            )  # fmt: skip
            b2bua.port.send_response(reply, server_tx)

        def failed(status: int, tx: object) -> None:
            b2bua.port.send_response(make_response(request, status), server_tx)

        b2bua._tx[tx] = Owned(respond, failed)
        b2bua._count("early_relayed")

    # == helpers ==================================================================================
    @staticmethod
    def _early(leg: BLeg) -> EarlyLeg:
        early = leg.early
        if early is None:
            early = leg.early = EarlyLeg()
        return early  # type: ignore[no-any-return]


def _leg_by_a_tag(call: Call, tag: str | None) -> BLeg | None:
    if not tag:
        return None
    for leg in call.legs.values():
        if leg.a_tag == tag:
            return leg
    return None
