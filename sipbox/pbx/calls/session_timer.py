"""Session timers (RFC 4028) run by the B2BUA itself, on each leg of an answered call.

Why: a phone that loses power mid-call never sends BYE; without a keep-alive the call (and the
user's `max_calls`, and the CDR's duration) would last until `max_duration`. Each leg is its own
session with its own interval and refresher, negotiated with that leg's peer only:

* **Caller's leg** (we are the UAS). An INVITE whose `Session-Expires` is below our `min_se`
  gets 422 with `Min-SE` (§8.1; the caller retries with the larger value). The interval is the
  caller's Session-Expires, lowered to our `session_expires` but never below the caller's
  Min-SE (§9); without one, ours. Refresher: what the caller asked for; if it did not say and
  it supports `timer`, the caller (`uac`, §9: the UAS chooses); if it does not support timers,
  us (`uas`, §9 "MUST"). The 2xx says `Session-Expires: N;refresher=X` and, when the caller
  supports timers, `Require: timer` (§9).
* **Callee's legs** (we are the UAC). The INVITE carries `Session-Expires`/`Min-SE` and
  `Supported: timer` (§7.1). A 422 is retried once per increase with the larger Min-SE as both
  values (§7.2, CSeq + 1). The 2xx's Session-Expires and refresher decide; a callee that
  ignores timers (no Session-Expires in its 2xx) is still refreshed by us, unilaterally: any UA
  may send re-INVITE/UPDATE at any time, and a refresh that fails is exactly the dead peer we
  want to find (§7.2 leaves this open; documented in docs/calls.md).
* **Refresher = us**: at half the interval (§10) we send UPDATE without a body when the peer
  allows UPDATE (§7.4/§10: it does not disturb the media), else a re-INVITE repeating the
  SDP we last sent that peer unchanged (RFC 3264 §8: same version, no change). A 2xx restarts
  the interval (honouring a new Session-Expires/refresher in it); 491 retries after 2 s; 422
  retries with the larger Min-SE; any other failure or a timeout means the peer is gone: BYE
  both legs, CDR `hangup_by=session-timer`.
* **Refresher = the peer**: if no refresh (re-INVITE/UPDATE answered 2xx) arrives within
  interval - min(32, interval/3) seconds (§10), BYE both legs, `hangup_by=session-timer`. A
  bodiless UPDATE from a peer (the usual refresh) is answered by us, not relayed: it refreshes
  only its own leg. A re-INVITE or an UPDATE with SDP is relayed as before and, once answered
  2xx, counts as a refresh of both legs (each got a request and a 2xx); the relayed request
  carries the destination leg's Session-Expires and the relayed 2xx the source leg's.
"""

from __future__ import annotations

import logging
from typing import Any

from sipbox.sip.message import Request, Response
from sipbox.sip.replies import make_response

from ..dispatcher import RequestContext
from .extbase import ExtTimer, Owned, delta_seconds, option_tags, schedule
from .model import BLeg, Call, CallState, Side

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["SessionState", "SessionTimers", "expiry_margin"]

REASON = 'SIP;cause=408;text="Session expired"'


def expiry_margin(interval: float) -> float:
    """§10: the non-refresher ends the session this long before it would expire."""
    return min(32.0, interval / 3)


class SessionState:
    """One leg's session timer."""

    __slots__ = ("interval", "peer_supports", "timer", "we_refresh")

    def __init__(self, interval: int, we_refresh: bool, peer_supports: bool) -> None:
        self.interval = interval
        self.we_refresh = we_refresh
        self.peer_supports = peer_supports
        self.timer: ExtTimer | None = None

    def refresher_param(self, we_are_uac: bool) -> str:
        """`refresher=` as seen in a message where we are the UAC (`uac` means us) or UAS."""
        if self.we_refresh:
            return "uac" if we_are_uac else "uas"
        return "uas" if we_are_uac else "uac"


class SessionTimers:
    """RFC 4028 for every call of one B2BUA; `session_expires == 0` turns it off."""

    __slots__ = ("b2bua", "min_se", "session_expires")

    def __init__(self, b2bua: Any, session_expires: int = 1800, min_se: int = 90) -> None:
        self.b2bua = b2bua
        self.session_expires = int(session_expires)
        self.min_se = min(int(min_se), self.session_expires) if session_expires else int(min_se)

    @property
    def enabled(self) -> bool:
        return self.session_expires > 0

    # == set-up ===================================================================================
    def check_invite(self, ctx: RequestContext) -> bool:
        """§8.1: a Session-Expires below our Min-SE is refused with 422 (True = answered)."""
        if not self.enabled:
            return False
        se, _ = delta_seconds(ctx.request.headers.get("session-expires"))
        if se is not None and se < self.min_se:
            self.b2bua.dispatcher.reply(ctx, 422, headers=[("Min-SE", str(self.min_se))])
            self.b2bua._count("session_422")
            return True
        return False

    def leg_headers(self, call: Call, headers: Any) -> None:
        if self.enabled:
            headers.add("Session-Expires", str(self.session_expires))
            headers.add("Min-SE", str(self.min_se))

    def retry_422(self, call: Call, leg: BLeg, response: Response, tx: object) -> bool:
        """§7.2: a 422 to a B leg's INVITE: the same INVITE, CSeq + 1, with the larger Min-SE."""
        if not self.enabled or not leg.live or leg.state.value == "cancelling":
            return False
        wanted, _ = delta_seconds(response.headers.get("min-se"))
        invite = leg.invite
        current, _ = delta_seconds(invite.headers.get("session-expires"))
        if wanted is None or current is None or wanted <= current:
            return False
        headers = invite.headers.copy()
        headers.set("CSeq", f"{invite.cseq.seq + 1} INVITE")
        headers.set("Session-Expires", str(wanted))
        headers.set("Min-SE", str(wanted))
        retry = Request("INVITE", invite.uri_text, headers, invite.body)
        b2bua = self.b2bua
        b2bua._tx.pop(tx, None)
        leg.invite = retry
        leg.tx = b2bua.port.send_request(retry, leg.target.destination, leg.target.connection_id)
        b2bua._tx[leg.tx] = (call, leg)
        b2bua._count("session_422_retried")
        return True

    def answered(self, call: Call, response: Response, a_headers: list[tuple[str, str]]) -> None:
        """Start both legs' timers as the caller's 2xx goes out; add its Session-Expires."""
        if call.a is None or call.bside is None:
            return
        self.new_uac_side(call, call.bside, response)
        self.new_uas_side(call, call.a, call.a_invite, a_headers)

    def new_uac_side(self, call: Call, side: Side, response: Response) -> None:
        """A leg we called (UAC) was answered: its 2xx's Session-Expires/refresher decide;
        none at all: we refresh it with our own interval (see the module docstring)."""
        if not self.enabled:
            return
        se, params = delta_seconds(response.headers.get("session-expires"))
        interval = se if se is not None else self.session_expires
        side.session = SessionState(interval, params.get("refresher") != "uas", se is not None)
        side.allow_update = (
            side.allow_update or "UPDATE" in (response.headers.get("allow") or "").upper()
        )
        self.start(call, side, self.b2bua.port.now())

    def new_uas_side(self, call: Call, side: Side, request: Request,
                     headers: list[tuple[str, str]]) -> None:  # fmt: skip
        """A leg that called us (UAS) gets our 2xx: choose interval and refresher (§9)."""
        if not self.enabled:
            return
        supports = "timer" in option_tags(request, "supported") | option_tags(request, "require")
        interval, refresher = self._uas_choice(request, supports)
        side.session = SessionState(interval, refresher == "uas", supports)
        side.allow_update = (
            side.allow_update or "UPDATE" in (request.headers.get("allow") or "").upper()
        )
        headers.append(("Session-Expires", f"{interval};refresher={refresher}"))
        if supports:
            headers.append(("Require", "timer"))
        self.start(call, side, self.b2bua.port.now())

    def _uas_choice(self, request: Request, supports: bool) -> tuple[int, str]:
        """§9: interval and refresher for a request we answer as the UAS."""
        se, params = delta_seconds(request.headers.get("session-expires"))
        min_se, _ = delta_seconds(request.headers.get("min-se"))
        if se is None:
            interval = self.session_expires
        else:
            interval = max(min(se, self.session_expires), min_se or 0, self.min_se)
        refresher = params.get("refresher") if supports else None
        if refresher not in ("uac", "uas"):
            refresher = "uac" if supports else "uas"
        return interval, refresher

    # == deadlines ================================================================================
    def start(self, call: Call, side: Side, now: float) -> None:
        """(Re)start `side`'s timer after a successful refresh (§10)."""
        state: SessionState | None = side.session
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancelled = True
        if state.we_refresh:
            at = now + state.interval / 2
            state.timer = schedule(self.b2bua, at, call, "session-refresh",
                                   lambda t: self.refresh(call, side, t))  # fmt: skip
        else:
            at = now + state.interval - expiry_margin(state.interval)
            state.timer = schedule(self.b2bua, at, call, "session-expiry",
                                   lambda t: self.expire(call, side, t))  # fmt: skip

    def expire(self, call: Call, side: Side, now: float) -> None:
        """No refresh came in time (§10): the peer is gone. BYE both legs."""
        if call.state is not CallState.ANSWERED or side.session is None:
            return
        self.b2bua._count("session_expired")
        self._tear_down(call)

    def _tear_down(self, call: Call) -> None:
        if call.state is not CallState.ANSWERED:
            return
        call.hangup_by = "session-timer"
        self.b2bua._teardown(call, REASON)

    def refresh(self, call: Call, side: Side, now: float) -> None:
        """We are the refresher of `side`: UPDATE (no body) if allowed, else re-INVITE."""
        b2bua = self.b2bua
        state: SessionState | None = side.session
        if call.state is not CallState.ANSWERED or state is None:
            return
        other = call.bside if side is call.a else call.a
        busy = (
            call.reinvite_busy
            or side.pending_2xx is not None
            or (other is not None and (other.pending_2xx is not None or other.ack_body_wanted))
        )
        if busy:  # an offer/answer is in progress: try again shortly
            state.timer = schedule(b2bua, now + 1.0, call, "session-refresh",
                                   lambda t: self.refresh(call, side, t))  # fmt: skip
            return
        user = b2bua.b_user(call) if side is call.bside else call.dialed
        headers = [
            ("Session-Expires", f"{state.interval};refresher=uac"),
            ("Min-SE", str(self.min_se)),
            ("Supported", "timer"),
            ("Max-Forwards", "70"),
            ("Contact", b2bua._contact(user, side.destination)),
        ]
        use_update = side.allow_update or not side.local_sdp
        if use_update:
            request = side.dialog.create_request("UPDATE", headers=headers)
        else:
            request = side.dialog.create_request(
                "INVITE", headers=headers, body=side.local_sdp, content_type="application/sdp"
            )
            call.reinvite_busy = True
        tx = b2bua.port.send_request(request, side.destination, side.connection_id)
        b2bua._count("session_refreshes")
        done = [False]

        def respond(response: Response, tx: object) -> None:
            status = response.status
            if status < 200:
                return
            if done[0]:
                if request.method == "INVITE" and status < 300 and side.ack is not None:
                    b2bua.port.send_ack_2xx(side.ack, side.destination, side.connection_id)
                return
            done[0] = True
            if request.method != "INVITE" or status >= 300:
                b2bua._tx.pop(tx, None)
            if request.method == "INVITE":
                call.reinvite_busy = False
                if status < 300:
                    side.invite_seq = request.cseq.seq
                    side.ack = side.dialog.create_ack(request.cseq.seq)
                    b2bua.port.send_ack_2xx(side.ack, side.destination, side.connection_id)
            if call.state is not CallState.ANSWERED:
                return
            t = b2bua.port.now()
            if status < 300:
                side.dialog.refresh_target(response)
                self._take_response(state, response)
                self.start(call, side, t)
            elif status == 491:
                state.timer = schedule(b2bua, t + 2.0, call, "session-refresh",
                                       lambda n: self.refresh(call, side, n))  # fmt: skip
            elif status == 422:
                wanted, _ = delta_seconds(response.headers.get("min-se"))
                if wanted is not None and wanted > state.interval:
                    state.interval = wanted
                    self.refresh(call, side, t)
                else:
                    self._tear_down(call)
            else:
                self._tear_down(call)

        def failed(status: int, tx: object) -> None:
            if request.method == "INVITE":
                call.reinvite_busy = False
            if not done[0]:
                done[0] = True
                self._tear_down(call)

        b2bua._tx[tx] = Owned(respond, failed)

    @staticmethod
    def _take_response(state: SessionState, response: Response) -> None:
        """A 2xx to our refresh may change the interval or hand the refresher role over."""
        se, params = delta_seconds(response.headers.get("session-expires"))
        if se is not None:
            state.interval = se
            state.we_refresh = params.get("refresher") != "uas"

    # == refreshes from peers =====================================================================
    def absorb_update(self, ctx: RequestContext, call: Call, side: Side) -> bool:
        """A bodiless UPDATE from a peer with a session timer: the refresh of its own leg,
        answered here (True) rather than relayed."""
        request = ctx.request
        state: SessionState | None = side.session
        if state is None or request.method != "UPDATE" or request.body:
            return False
        if call.state is not CallState.ANSWERED:
            return False
        b2bua = self.b2bua
        if not side.dialog.accept_request(request):
            b2bua.dispatcher.reply(ctx, 500, "CSeq Out of Order")
            return True
        se, params = delta_seconds(request.headers.get("session-expires"))
        supports = "timer" in option_tags(request, "supported")
        if se is not None:
            if se < self.min_se:
                b2bua.dispatcher.reply(ctx, 422, headers=[("Min-SE", str(self.min_se))])
                return True
            state.interval, refresher = self._uas_choice(request, supports)
            state.we_refresh = refresher == "uas"
        user = call.dialed if side is call.a else b2bua.b_user(call)
        headers = [
            ("Session-Expires", f"{state.interval};refresher={state.refresher_param(False)}"),
            ("Contact", b2bua._contact(user, side.destination)),
        ]
        if supports:
            headers.append(("Require", "timer"))
        response = make_response(request, 200, headers=headers)
        b2bua.port.send_response(response, ctx.transaction)
        self.start(call, side, b2bua.port.now())
        b2bua._count("session_refreshed_by_peer")
        _ = params
        return True

    def relay_request(self, other: Side, request: Request, headers: list[tuple[str, str]]) -> None:
        """A relayed re-INVITE/UPDATE also refreshes the destination leg: say its interval."""
        state: SessionState | None = other.session
        if state is None or request.method not in ("INVITE", "UPDATE"):
            return
        headers.append(
            ("Session-Expires", f"{state.interval};refresher={state.refresher_param(True)}")
        )
        headers.append(("Supported", "timer"))

    def relayed_2xx(self, call: Call, source: Side, dest: Side, original: Request,
                    response: Response, headers: list[tuple[str, str]]) -> None:  # fmt: skip
        """A relayed re-INVITE/UPDATE was answered 2xx: both legs are refreshed (§10)."""
        if original.method not in ("INVITE", "UPDATE"):
            return
        now = self.b2bua.port.now()
        src: SessionState | None = source.session
        if src is not None:
            se, _ = delta_seconds(original.headers.get("session-expires"))
            supports = "timer" in option_tags(original, "supported")
            if se is not None:
                src.interval, refresher = self._uas_choice(original, supports)
                src.we_refresh = refresher == "uas"
            headers.append(
                ("Session-Expires", f"{src.interval};refresher={src.refresher_param(False)}")
            )
            if supports:
                headers.append(("Require", "timer"))
            self.start(call, source, now)
        dst: SessionState | None = dest.session
        if dst is not None:
            self._take_response(dst, response)
            self.start(call, dest, now)
