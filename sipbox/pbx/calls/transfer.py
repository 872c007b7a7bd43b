"""Call transfer performed by the B2BUA: REFER (RFC 3515) blind and attended (Refer-To with
Replaces, RFC 3891), and an incoming INVITE with Replaces that takes over one side of a call.

Theory of operation
===================

A REFER arrives in one side of an answered call; that side is the **transferor**, the other
side the **transferee**. Nothing is relayed: the B2BUA does the transfer itself (a phone behind
us never sees a REFER it could misuse, and the transferor's rights are ours to check).

1. Checks (answered without a subscription): a Refer-To that is not a SIP URI with a user ->
   400; a target the transferor may not call (`Router.permitted`, the class-of-service hook),
   a transfer to the transferee or the transferor itself, or more than `MAX_HOPS` numbers on
   the call (the loop guard of forwarding/3xx) -> 403; another transfer or re-INVITE in
   progress -> 491. A Replaces naming a dialog that is not the transferor's own -> 403.
2. 202 Accepted, then NOTIFY `message/sipfrag` "SIP/2.0 100 Trying" (RFC 3515 §2.4.4/§2.4.5,
   Event: refer, Subscription-State: active) to the transferor.
3. **The new leg**. Blind: the target number goes through the dial plan
   (`Router.resolve`, so groups, forwarding and offline/busy answers apply) and its plan's legs
   are started like a call's, on behalf of the transferee (From/P-Asserted-Identity = the
   transferee's user, `Referred-By` from the REFER, RFC 3892). Attended: Refer-To carries
   `?Replaces=<call-id>;to-tag=..;from-tag=..` naming the transferor's dialog with us in its
   *other* call; we look that dialog up and **translate** it: the new INVITE goes to the device
   on the far side of that call, with a Replaces naming *that* leg's dialog (Call-ID, its tag,
   our tag), so the device replaces its call with the transferee. Dialog ids never cross legs.
4. Offer/answer, third-party-call-control style (RFC 3725 §4.1 flow I): the new INVITE has no
   SDP; its 2xx carries an offer, sent to the transferee in a re-INVITE; the transferee's 2xx
   answer is the ACK body of the new leg; the transferee's 2xx is ACKed at once.
5. The new side replaces the transferor's in the call (same call id, same CDR; `max_calls`
   moves from the transferor's user to the target's). NOTIFY "SIP/2.0 200 OK",
   Subscription-State: terminated. The transferor's dialog stays known so its BYE gets 200
   (RFC 5589 §6: the transferor hangs up); if it does not within `DETACH_GRACE`, we BYE it.
   Attended: the replaced call is then ended by us as well (BYE both of its sides) — a device
   that honoured Replaces has already BYEd it (the crossing BYE just gets 481); one that
   ignored Replaces and answered a second call ends up in the same place.
6. Failure (every leg failed, ring timeout, the transferee refused the re-INVITE): NOTIFY with
   the final status line, terminated; the call stays as it was (the transferor may resume).
   A transferor that hung up while the target rang (common for blind transfer) is detached
   (200 to its BYE); if the transfer then fails the transferee is hung up.

An **INVITE with Replaces** (RFC 3891 §3) matching one side of a live answered call (looked up
by Call-ID and its to-tag, which is our tag, or its from-tag) takes that side over: the other
side gets a re-INVITE with the new INVITE's offer (or none: a delayed offer completes with the
new caller's ACK, as for any call), the new INVITE gets the 2xx with its answer, the replaced
side gets BYE (`Reason: SIP;cause=200;text="Call replaced"`). Authorization: the new caller must
be authenticated like any caller and permitted to reach the remaining party's number. No match,
or an unanswered call -> 481 (§3 allows it for early dialogs we did not create ourselves).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from sipbox.sip.address import Address
from sipbox.sip.dialog import Dialog
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.headers import Headers, NameAddr, parse_name_addr
from sipbox.sip.message import Request, Response
from sipbox.sip.replies import make_response
from sipbox.sip.uri import SipUri
from sipbox.storage.interface import User

from ..dispatcher import RequestContext
from .extbase import ExtTimer, Owned, schedule
from .model import Call, CallState, Side
from .plan import LegSpec, PlanStep, Reject, TargetPlan
from .routing import MAX_HOPS, RouteContext

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["DETACH_GRACE", "Transfer", "Transfers", "parse_replaces"]

#: How long a transferred-away transferor may take to send its BYE before we send ours.
DETACH_GRACE = 32.0

SIPFRAG = "message/sipfrag;version=2.0"


def parse_replaces(value: str) -> tuple[str, str, str] | None:
    """`call-id;to-tag=X;from-tag=Y` (RFC 3891 §6.1) -> (call-id, to-tag, from-tag)."""
    head, *params = value.split(";")
    tags: dict[str, str] = {}
    for param in params:
        key, _, val = param.partition("=")
        tags[key.strip().lower()] = val.strip()
    call_id = head.strip()
    if not call_id or "to-tag" not in tags or "from-tag" not in tags:
        return None
    return call_id, tags["to-tag"], tags["from-tag"]


def _uri_header(headers: str | None, name: str) -> str | None:
    """A header embedded in a URI (`?Replaces=...&...`, RFC 3261 §19.1.1), unescaped."""
    if not headers:
        return None
    for part in headers.split("&"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return unquote(value)
    return None


class TLeg:
    """One INVITE the transfer sent (a fork branch of the target, or the Replaces INVITE)."""

    __slots__ = ("ack", "connection_id", "destination", "dialog", "invite", "key", "state", "tx")

    def __init__(self, key: int, invite: Request, destination: Address,
                 connection_id: int | None) -> None:  # fmt: skip
        self.key = key
        self.invite = invite
        self.destination = destination
        self.connection_id = connection_id
        self.tx: object | None = None
        self.state = "calling"  # calling | cancelling | answered | failed
        self.dialog: Dialog | None = None
        self.ack: Request | None = None


class Transfer:
    """One transfer in progress on a call."""

    __slots__ = (
        "call",
        "done",
        "gone",
        "legs",
        "plan",
        "plan_timer",
        "referred_by",
        "replaced",
        "target_number",
        "transferee",
        "transferee_number",
        "transferor",
        "transferor_number",
        "winner",
    )

    def __init__(self, call: Call, transferor: Side, transferee: Side, target_number: str,
                 transferor_number: str, transferee_number: str) -> None:  # fmt: skip
        self.call = call
        self.transferor = transferor
        self.transferee = transferee
        self.target_number = target_number
        self.transferor_number = transferor_number
        self.transferee_number = transferee_number
        self.legs: dict[int, TLeg] = {}
        self.plan: TargetPlan | None = None
        self.plan_timer: ExtTimer | None = None
        self.replaced: tuple[Call, Side] | None = None
        self.referred_by: str | None = None
        self.winner: TLeg | None = None
        self.gone = False  # the transferor hung up while the target rang
        self.done = False


class Transfers:
    """REFER and Replaces for every call of one B2BUA."""

    __slots__ = ("active", "b2bua", "timers")

    def __init__(self, b2bua: Any, timers: Any) -> None:
        self.b2bua = b2bua
        self.timers = timers  # SessionTimers: headers and timers of the new leg
        self.active: dict[str, Transfer] = {}

    # == who is who ===============================================================================
    def _number(self, call: Call, side: Side) -> str:
        return call.caller.number if side is call.a else (call.callee_number or call.dialed)

    def _user(self, number: str) -> User | None:
        return self.b2bua.router.users.user(number)  # type: ignore[no-any-return]

    # == in-dialog requests =======================================================================
    def in_dialog(self, ctx: RequestContext, call: Call, side: Side) -> bool:
        """REFER, and BYEs that concern a transfer. True = answered here."""
        method = ctx.request.method
        if side is not call.a and side is not call.bside:
            return self._detached(ctx, call, side)
        if method == "REFER":
            self.on_refer(ctx, call, side)
            return True
        transfer = self.active.get(call.id)
        if method != "BYE" or transfer is None or transfer.done:
            return False
        b2bua = self.b2bua
        if side is transfer.transferor:
            # Blind transfer: the transferor hangs up while the target rings (RFC 5589 §6.1
            # allows it). Detach it; the transferee stays for the target.
            if not side.dialog.accept_request(ctx.request):
                b2bua.dispatcher.reply(ctx, 500, "CSeq Out of Order")
                return True
            b2bua.dispatcher.reply(ctx, 200)
            transfer.gone = True
            self._forget_side(side)
            return True
        # The transferee hangs up: the transfer is moot; the core ends the call.
        self._abandon(transfer, 487, "Request Terminated")
        return False

    def _detached(self, ctx: RequestContext, call: Call, side: Side) -> bool:
        """A request from a transferor after it was transferred away: BYE gets 200."""
        b2bua = self.b2bua
        if ctx.request.method == "BYE":
            b2bua.dispatcher.reply(ctx, 200)
            self._forget_side(side)
        else:
            b2bua.dispatcher.reply(ctx, 481)
        return True

    def _forget_side(self, side: Side) -> None:
        key = (side.dialog.call_id, side.dialog.local_tag)
        self.b2bua._dialogs.pop(key, None)
        side.pending_2xx = None
        for timer in (side.retransmit_timer, side.ack_timer):
            if timer is not None:
                timer.cancelled = True
        if side.session is not None and side.session.timer is not None:
            side.session.timer.cancelled = True

    # == REFER ====================================================================================
    def on_refer(self, ctx: RequestContext, call: Call, side: Side) -> None:
        b2bua = self.b2bua
        request = ctx.request
        if call.state is not CallState.ANSWERED:
            b2bua.dispatcher.reply(ctx, 481)
            return
        transferee = call.bside if side is call.a else call.a
        if transferee is None:
            b2bua.dispatcher.reply(ctx, 481)
            return
        if not side.dialog.accept_request(request):
            b2bua.dispatcher.reply(ctx, 500, "CSeq Out of Order")
            return
        existing = self.active.get(call.id)
        if (
            (existing is not None and not existing.done)
            or call.reinvite_busy
            or (transferee.pending_2xx is not None or transferee.ack_body_wanted is not None)
        ):
            b2bua.dispatcher.reply(ctx, 491)
            return
        try:
            refer_to = parse_name_addr(request.headers.get("refer-to") or "")
        except RemoteProtocolError:
            refer_to = None
        uri = refer_to.uri if refer_to is not None else None
        if not isinstance(uri, SipUri) or not uri.user_decoded():
            b2bua.dispatcher.reply(ctx, 400, "Bad Refer-To")
            return
        transferor_number = self._number(call, side)
        transferee_number = self._number(call, transferee)
        transferor_user = self._user(transferor_number)
        if transferor_user is None and side is call.a:
            transferor_user = call.caller
        router = b2bua.router
        replaces_value = _uri_header(uri.headers, "replaces")
        replaced: tuple[Call, Side] | None = None
        if replaces_value is not None:
            ids = parse_replaces(replaces_value)
            found = self._lookup(ids) if ids is not None else None
            if found is None or found[0] is call or found[0].state is not CallState.ANSWERED:
                b2bua.dispatcher.reply(ctx, 481, "Replaced Dialog Not Found")
                return
            call2, side2 = found
            if self._number(call2, side2) != transferor_number:
                # RFC 3891 §6: only a party of the dialog may have it replaced.
                b2bua.dispatcher.reply(ctx, 403, "Not Your Dialog")
                return
            remaining = call2.bside if side2 is call2.a else call2.a
            if remaining is None:
                b2bua.dispatcher.reply(ctx, 481)
                return
            target_number = self._number(call2, remaining)
            replaced = (call2, side2)
        else:
            target_number = uri.user_decoded() or ""
        if target_number in (transferor_number, transferee_number) or (
            len(call.visited) >= MAX_HOPS
        ):
            b2bua.dispatcher.reply(ctx, 403, "Transfer Loop")
            return
        if not router.permitted(transferor_user, target_number):
            b2bua.dispatcher.reply(ctx, 403, "Transfer Not Allowed")
            return
        transfer = Transfer(call, side, transferee, target_number, transferor_number,
                            transferee_number)  # fmt: skip
        transfer.replaced = replaced
        transfer.referred_by = request.headers.get("referred-by")
        self.active[call.id] = transfer
        b2bua.dispatcher.reply(
            ctx, 202, headers=[("Contact", b2bua._contact(transferee_number, side.destination))],
            to_tag=request.to.tag,
        )  # fmt: skip
        b2bua._count("transfers")
        self._notify(transfer, "SIP/2.0 100 Trying", final=False)
        call.visited = (*call.visited, target_number)
        now = b2bua.port.now()
        if replaced is not None:
            self._start_replacing(transfer, *replaced)
            return
        route = router.resolve(target_number, RouteContext(transferor_user, call.visited))
        if isinstance(route, Reject):
            self._finish_failed(transfer, route.status, route.reason)
            return
        transfer.plan = route
        self._apply(transfer, route.start(now), now)

    def _lookup(self, ids: tuple[str, str, str]) -> tuple[Call, Side] | None:
        call_id, to_tag, from_tag = ids
        dialogs = self.b2bua._dialogs
        found = dialogs.get((call_id, to_tag)) or dialogs.get((call_id, from_tag))
        if found is None:
            return None
        call, side = found
        if side is not call.a and side is not call.bside:
            return None
        return found  # type: ignore[no-any-return]

    # == the new leg(s) ===========================================================================
    def _identity(self, transfer: Transfer) -> str:
        call = transfer.call
        number = transfer.transferee_number
        if number == call.caller.number:
            return self.b2bua._identity(call)  # type: ignore[no-any-return]
        user = self._user(number)
        display = user.display_name if user is not None else None
        return str(NameAddr(SipUri(host=self.b2bua.domain, user=number), display or None))

    def _invite(self, transfer: Transfer, uri: str, destination: Address,
                extra: list[tuple[str, str]]) -> Request:  # fmt: skip
        b2bua = self.b2bua
        domain = b2bua.domain
        identity = self._identity(transfer)
        headers = Headers()
        headers.add("From", f"{identity};tag={b2bua.ids()}")
        headers.add("To", f"<sip:{transfer.target_number}@{domain}>")
        headers.add("Call-ID", f"{b2bua.ids()}@{domain}")
        headers.add("CSeq", "1 INVITE")
        headers.add("Max-Forwards", "70")
        headers.add("Contact", b2bua._contact(transfer.transferee_number, destination))
        headers.add("P-Asserted-Identity", identity)
        headers.add("Referred-By", transfer.referred_by or self._referrer(transfer))
        headers.add("Supported", "replaces, timer")
        for name, value in extra:
            headers.add(name, value)
        self.timers.leg_headers(transfer.call, headers)
        return Request("INVITE", uri, headers, b"")

    def _referrer(self, transfer: Transfer) -> str:
        return f"<sip:{transfer.transferor_number}@{self.b2bua.domain}>"

    def _send_leg(self, transfer: Transfer, leg: TLeg) -> None:
        b2bua = self.b2bua
        transfer.legs[leg.key] = leg
        leg.tx = b2bua.port.send_request(leg.invite, leg.destination, leg.connection_id)
        b2bua._tx[leg.tx] = Owned(
            lambda r, tx: self._leg_response(transfer, leg, r, tx),
            lambda status, tx: self._leg_failed(transfer, leg, status),
        )

    def _start_replacing(self, transfer: Transfer, call2: Call, side2: Side) -> None:
        """Attended: INVITE the far device of the other call, Replaces translated to its leg."""
        remaining = call2.bside if side2 is call2.a else call2.a
        assert remaining is not None
        dialog = remaining.dialog
        replaces = f"{dialog.call_id};to-tag={dialog.remote_tag};from-tag={dialog.local_tag}"
        invite = self._invite(transfer, dialog.remote_target, remaining.destination,
                              [("Replaces", replaces)])  # fmt: skip
        self._send_leg(transfer, TLeg(1, invite, remaining.destination, remaining.connection_id))

    def _apply(self, transfer: Transfer, step: PlanStep, now: float) -> None:
        b2bua = self.b2bua
        for key in step.cancel:
            leg = transfer.legs.get(key)
            if leg is not None and leg.state == "calling":
                leg.state = "cancelling"
                b2bua.port.send_cancel(leg.tx, step.cancel_reason)
        if transfer.winner is None and not transfer.done:
            for spec in step.start:
                self._start_spec(transfer, spec)
        if step.final is not None and transfer.winner is None:
            self._finish_failed(transfer, step.final.status, step.final.reason)
            return
        plan = transfer.plan
        if plan is None or transfer.done:
            return
        deadline = plan.next_deadline()
        if transfer.plan_timer is not None:
            transfer.plan_timer.cancelled = True
            transfer.plan_timer = None
        if deadline is not None:
            transfer.plan_timer = schedule(b2bua, deadline, transfer.call, "transfer-plan",
                                           lambda t: self._plan_timer(transfer, t))  # fmt: skip

    def _plan_timer(self, transfer: Transfer, now: float) -> None:
        if transfer.done or transfer.winner is not None or transfer.plan is None:
            return
        self._apply(transfer, transfer.plan.on_timer(now), now)

    def _start_spec(self, transfer: Transfer, spec: LegSpec) -> None:
        target = spec.target
        invite = self._invite(transfer, target.request_uri, target.destination, [])
        self._send_leg(transfer, TLeg(spec.key, invite, target.destination,
                                      target.connection_id))  # fmt: skip

    def _leg_response(self, transfer: Transfer, leg: TLeg, response: Response, tx: object) -> None:
        b2bua = self.b2bua
        status = response.status
        if status < 200:
            return
        if status >= 300:
            b2bua._tx.pop(tx, None)
            self._leg_failed(transfer, leg, status, response)
            return
        if leg.state == "answered" or leg.dialog is not None:
            if leg.ack is not None:  # a 2xx retransmission (§13.2.2.4)
                b2bua.port.send_ack_2xx(leg.ack, leg.destination, leg.connection_id)
            return
        dialog = Dialog.as_uac(leg.invite, response)
        leg.dialog = dialog
        call = transfer.call
        if transfer.done or transfer.winner is not None or call.state is not CallState.ANSWERED:
            self._ack_and_bye(leg, 'SIP;cause=200;text="Call completed elsewhere"')
            return
        leg.state = "answered"
        transfer.winner = leg
        now = b2bua.port.now()
        if transfer.plan is not None:
            self._apply(transfer, transfer.plan.answered(leg.key, now), now)
        if not response.body:
            # RFC 3725 flow I needs the offer in the 2xx: nothing we could send the transferee.
            self._ack_and_bye(leg, 'SIP;cause=488;text="No Offer"')
            self._finish_failed(transfer, 488, "Not Acceptable Here")
            return
        self._reinvite_transferee(transfer, leg, response)

    def _leg_failed(self, transfer: Transfer, leg: TLeg, status: int,
                    response: Response | None = None) -> None:  # fmt: skip
        if leg.state in ("failed", "answered"):
            return
        leg.state = "failed"
        if transfer.done or transfer.winner is not None:
            return
        if transfer.plan is None:
            reason = response.reason if response is not None else None
            self._finish_failed(transfer, status, reason)
            return
        now = self.b2bua.port.now()
        self._apply(transfer, transfer.plan.leg_failed(leg.key, status, now), now)

    def _ack_and_bye(self, leg: TLeg, reason: str) -> None:
        b2bua = self.b2bua
        dialog = leg.dialog
        if dialog is None:
            return
        leg.ack = dialog.create_ack(leg.invite.cseq.seq)
        b2bua.port.send_ack_2xx(leg.ack, leg.destination, leg.connection_id)
        bye = dialog.create_request("BYE", headers=[("Reason", reason)])
        tx = b2bua.port.send_request(bye, leg.destination, leg.connection_id)
        b2bua._tx[tx] = Owned(lambda r, t: b2bua._tx.pop(t, None) if r.status >= 200 else None)

    # == offer/answer (RFC 3725 flow I) ===========================================================
    def _reinvite_transferee(self, transfer: Transfer, leg: TLeg, ok: Response) -> None:
        b2bua = self.b2bua
        call = transfer.call
        side = transfer.transferee
        call.reinvite_busy = True
        headers = [
            ("Max-Forwards", "70"),
            ("Contact", b2bua._contact(transfer.target_number, side.destination)),
        ]
        probe = Request("INVITE", "sip:x", Headers())
        self.timers.relay_request(side, probe, headers)
        content_type = ok.headers.get("content-type") or "application/sdp"
        reinvite = side.dialog.create_request(
            "INVITE", headers=headers, body=ok.body, content_type=content_type
        )
        tx = b2bua.port.send_request(reinvite, side.destination, side.connection_id)
        answered = [False]

        def respond(response: Response, tx: object) -> None:
            status = response.status
            if status < 200:
                return
            if answered[0]:
                if status < 300 and side.ack is not None:
                    b2bua.port.send_ack_2xx(side.ack, side.destination, side.connection_id)
                return
            answered[0] = True
            call.reinvite_busy = False
            if status >= 300:
                b2bua._tx.pop(tx, None)
                self._ack_and_bye(leg, f'SIP;cause={status};text="Transfer Failed"')
                self._finish_failed(transfer, status, response.reason)
                return
            side.dialog.refresh_target(response)
            side.invite_seq = reinvite.cseq.seq
            side.ack = side.dialog.create_ack(side.invite_seq)
            side.local_sdp = ok.body
            b2bua.port.send_ack_2xx(side.ack, side.destination, side.connection_id)
            self._complete(transfer, leg, ok, response)

        def failed(status: int, tx: object) -> None:
            if not answered[0]:
                answered[0] = True
                call.reinvite_busy = False
                self._ack_and_bye(leg, f'SIP;cause={status};text="Transfer Failed"')
                self._finish_failed(transfer, status, None)

        b2bua._tx[tx] = Owned(respond, failed)

    def _complete(self, transfer: Transfer, leg: TLeg, ok: Response, answer: Response) -> None:
        """The transferee and the target talk: swap the sides, tell the transferor."""
        b2bua = self.b2bua
        call = transfer.call
        dialog = leg.dialog
        assert dialog is not None
        old = transfer.transferor
        name = old.name
        side = Side(name, dialog, leg.destination, leg.connection_id)
        side.invite_seq = leg.invite.cseq.seq
        side.ack = dialog.create_ack(
            side.invite_seq, body=answer.body,
            content_type=answer.headers.get("content-type") or "application/sdp",
        )  # fmt: skip
        side.local_sdp = answer.body
        side.allow_update = "UPDATE" in (ok.headers.get("allow") or "").upper()
        leg.ack = side.ack
        b2bua.port.send_ack_2xx(side.ack, leg.destination, leg.connection_id)
        b2bua._dialogs[(dialog.call_id, dialog.local_tag)] = (call, side)
        if old is call.bside:
            call.bside = side
            if call.callee_number != transfer.target_number:
                b2bua._count_active(transfer.target_number, 1)
                if call.callee_number and call.callee_number != call.caller.number:
                    b2bua._count_active(call.callee_number, -1)
                call.callee_number = transfer.target_number
        else:
            call.a = side
            user = self._user(transfer.target_number)
            if user is not None:
                b2bua._count_active(user.number, 1)
                b2bua._count_active(call.caller.number, -1)
                call.caller = user
        if old.session is not None and old.session.timer is not None:
            old.session.timer.cancelled = True
        self.timers.new_uac_side(call, side, ok)
        transfer.done = True
        self.active.pop(call.id, None)
        b2bua._count("transfers_completed")
        if transfer.gone:
            pass  # the transferor's dialog is gone already
        else:
            self._notify(transfer, "SIP/2.0 200 OK", final=True)
            now = b2bua.port.now()
            schedule(b2bua, now + DETACH_GRACE, call, "transfer-detach",
                     lambda t: self._detach_timeout(call, old))  # fmt: skip
        if transfer.replaced is not None:
            call2, side2 = transfer.replaced
            if call2.state is CallState.ANSWERED:
                call2.hangup_by = side2.name
                b2bua._teardown(call2, 'SIP;cause=200;text="Call transferred"')

    def _detach_timeout(self, call: Call, old: Side) -> None:
        """The transferor did not hang up after the NOTIFY 200: BYE it ourselves."""
        key = (old.dialog.call_id, old.dialog.local_tag)
        found = self.b2bua._dialogs.get(key)
        if found is None or found[1] is not old:
            return
        self._forget_side(old)
        self.b2bua._bye(call, old, 'SIP;cause=200;text="Call transferred"')

    def _finish_failed(self, transfer: Transfer, status: int, reason: str | None) -> None:
        if transfer.done:
            return
        transfer.done = True
        call = transfer.call
        self.active.pop(call.id, None)
        if transfer.plan_timer is not None:
            transfer.plan_timer.cancelled = True
        self._cancel_legs(transfer)
        self.b2bua._count("transfers_failed")
        text = reason or Response(status).reason
        if transfer.gone:
            # The transferor left; nobody is there for the transferee any more.
            if call.state is CallState.ANSWERED:
                call.hangup_by = "system"
                self.b2bua._teardown(call, f'SIP;cause={status};text="Transfer Failed"')
            return
        self._notify(transfer, f"SIP/2.0 {status} {text}", final=True)

    def _abandon(self, transfer: Transfer, status: int, reason: str) -> None:
        """The call ends under a transfer in progress: cancel its legs, tell the transferor."""
        transfer.gone = True  # nothing to restore: the core is ending the call
        if transfer.done:
            return
        transfer.done = True
        self.active.pop(transfer.call.id, None)
        self._cancel_legs(transfer)
        if transfer.winner is not None and transfer.winner.dialog is not None:
            self._ack_and_bye(transfer.winner, 'SIP;cause=487;text="Request Terminated"')

    def _cancel_legs(self, transfer: Transfer) -> None:
        for leg in transfer.legs.values():
            if leg.state == "calling":
                leg.state = "cancelling"
                self.b2bua.port.send_cancel(leg.tx, None)

    # == NOTIFY (RFC 3515 §2.4.4-§2.4.7) =========================================================
    def _notify(self, transfer: Transfer, status_line: str, *, final: bool) -> None:
        b2bua = self.b2bua
        side = transfer.transferor
        if transfer.gone:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        user = self._number(transfer.call, transfer.transferee)
        headers = [
            ("Event", "refer"),
            ("Subscription-State", state),
            ("Max-Forwards", "70"),
            ("Contact", b2bua._contact(user, side.destination)),
        ]
        notify = side.dialog.create_request(
            "NOTIFY", headers=headers, body=f"{status_line}\r\n".encode(), content_type=SIPFRAG
        )
        tx = b2bua.port.send_request(notify, side.destination, side.connection_id)
        b2bua._tx[tx] = Owned(lambda r, t: b2bua._tx.pop(t, None) if r.status >= 200 else None)
        b2bua._count("notify_sent")

    # == INVITE with Replaces (RFC 3891) ==========================================================
    def on_invite_replaces(self, ctx: RequestContext, caller: User) -> bool:
        """An out-of-dialog INVITE with Replaces: take over a side of a live call."""
        request = ctx.request
        value = request.headers.get("replaces")
        if value is None:
            return False
        b2bua = self.b2bua
        ids = parse_replaces(value)
        found = self._lookup(ids) if ids is not None else None
        if found is None or found[0].state is not CallState.ANSWERED:
            b2bua.dispatcher.reply(ctx, 481)
            return True
        call, replaced = found
        other = call.bside if replaced is call.a else call.a
        assert other is not None
        other_number = self._number(call, other)
        if not b2bua.router.permitted(caller, other_number):
            b2bua.dispatcher.reply(ctx, 403, "Not Allowed")
            return True
        transfer = self.active.get(call.id)
        if (
            call.reinvite_busy
            or other.pending_2xx is not None
            or (transfer is not None and not transfer.done)
        ):
            b2bua.dispatcher.reply(ctx, 491)
            return True
        call.reinvite_busy = True
        headers = [
            ("Max-Forwards", "70"),
            ("Contact", b2bua._contact(caller.number, other.destination)),
        ]
        self.timers.relay_request(other, request, headers)
        reinvite = other.dialog.create_request(
            "INVITE", headers=headers, body=request.body,
            content_type=request.headers.get("content-type"),
        )  # fmt: skip
        tx = b2bua.port.send_request(reinvite, other.destination, other.connection_id)
        b2bua._count("replaces_received")
        answered = [False]
        tag = b2bua.ids()

        def respond(response: Response, tx: object) -> None:
            status = response.status
            if status < 200:
                return
            if answered[0]:
                if status < 300 and other.ack is not None:
                    b2bua.port.send_ack_2xx(other.ack, other.destination, other.connection_id)
                return
            answered[0] = True
            call.reinvite_busy = False
            if status >= 300 or call.state is not CallState.ANSWERED:
                b2bua._tx.pop(tx, None)
                if status < 300:
                    other.ack = other.dialog.create_ack(reinvite.cseq.seq)
                    b2bua.port.send_ack_2xx(other.ack, other.destination, other.connection_id)
                    status = 481
                b2bua.port.send_response(make_response(request, status, to_tag=tag),
                                         ctx.transaction)  # fmt: skip
                return
            other.dialog.refresh_target(response)
            other.invite_seq = reinvite.cseq.seq
            if request.body:
                other.ack = other.dialog.create_ack(other.invite_seq)
                other.ack_body_wanted = None
                other.local_sdp = request.body
                b2bua.port.send_ack_2xx(other.ack, other.destination, other.connection_id)
            else:
                other.ack = None
                other.ack_body_wanted = other.invite_seq
            self._take_over(ctx, call, replaced, other, caller, tag, response)

        def failed(status: int, tx: object) -> None:
            if not answered[0]:
                answered[0] = True
                call.reinvite_busy = False
                b2bua.port.send_response(make_response(request, status, to_tag=tag),
                                         ctx.transaction)  # fmt: skip

        b2bua._tx[tx] = Owned(respond, failed)
        return True

    def _take_over(self, ctx: RequestContext, call: Call, replaced: Side, other: Side,
                   caller: User, tag: str, response: Response) -> None:  # fmt: skip
        b2bua = self.b2bua
        request = ctx.request
        peer: Any = ctx.peer
        dialog = Dialog.as_uas(request, tag, confirmed=True)
        side = Side(replaced.name, dialog, peer.remote, peer.connection_id)
        side.invite_seq = request.cseq.seq
        side.local_sdp = response.body or None
        side.allow_update = "UPDATE" in (request.headers.get("allow") or "").upper()
        old_number = self._number(call, replaced)
        if replaced is call.a:
            call.a = side
            call.caller = caller
        else:
            call.bside = side
            call.callee_number = caller.number
        if old_number != caller.number:
            b2bua._count_active(caller.number, 1)
            b2bua._count_active(old_number, -1)
        b2bua._dialogs[(dialog.call_id, tag)] = (call, side)
        headers = [("Contact", b2bua._contact(self._number(call, other), side.destination))]
        self.timers.new_uas_side(call, side, request, headers)
        ok = make_response(
            request, 200, to_tag=tag, headers=headers, body=response.body,
            content_type=response.headers.get("content-type"),
        )  # fmt: skip
        b2bua._send_2xx(call, side, ok, b2bua.port.now(), ctx.transaction)
        self._forget_side(replaced)
        b2bua._bye(call, replaced, 'SIP;cause=200;text="Call replaced"')
        b2bua._count("replaced")
