"""Page-mode MESSAGE between local users (RFC 3428) and SUBSCRIBE (RFC 6665) -> 489.

MESSAGE out of any dialog is handled like a one-shot call set-up, statelessly for the PBX:

* the sender is authenticated exactly like a caller (407 digest or IP authorization, and the
  digest user must be the From user), so an anonymous source cannot use sipbox to spam phones;
* the Request-URI's user is looked up: unknown 404, disabled 480, not permitted by the sender's
  class of service 403, no live contact 480;
* the MESSAGE is sent to **every** live contact of the target (RFC 3428 §7 leaves forking to the
  proxy; a page should reach the phone the user is looking at), each as its own transaction
  with our own Call-ID/tags/Via, the sender's identity in From and P-Asserted-Identity (as for
  calls, `policy.py`), the body and Content-Type unchanged;
* the first 2xx (200 or 202) is relayed to the sender at once; if every contact fails, the
  sender gets a 6xx if one came, else the lowest 4xx/5xx that is not a timeout/unreachable
  (408, 480, 503 and transport errors become 480 — "the user is not reachable now").

MESSAGE inside a dialog (To tag) is relayed by the B2BUA like INFO (`B2BUA.on_in_dialog`).

SUBSCRIBE: sipbox implements no event package a phone could subscribe to yet (presence, dialog
and message-summary need state we do not keep), so **every** SUBSCRIBE gets 489 Bad Event
(RFC 6665: a package the notifier does not implement). `Allow-Events: refer` tells the truth: the
only package we run is REFER's implicit subscription (RFC 3515 §2.4.4), which needs no
SUBSCRIBE. Phones that subscribe for BLF or voicemail stop retrying on 489.
"""

from __future__ import annotations

import logging
from typing import Any

from sipbox.sip.headers import Headers, NameAddr
from sipbox.sip.message import Request, Response
from sipbox.sip.uri import SipUri, TelUri

from ..dispatcher import RequestContext
from .extbase import Owned
from .policy import IN_DIALOG_HEADERS, RESPONSE_HEADERS, copy_allowed

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["PageMessages", "page_failure"]

#: Failures that mean "cannot reach the device now" -> 480 for the sender.
_UNREACHABLE = frozenset({408, 480, 503})


def page_failure(statuses: list[int]) -> int:
    """The status for the sender when no contact took the MESSAGE."""
    if not statuses:
        return 480
    for status in statuses:
        if status >= 600:
            return status
    others = [s for s in statuses if s not in _UNREACHABLE]
    return min(others) if others else 480


class _Page:
    """One MESSAGE fanned out to the target's contacts."""

    __slots__ = ("answered", "ctx", "failures", "pending")

    def __init__(self, ctx: RequestContext, pending: int) -> None:
        self.ctx = ctx
        self.pending = pending
        self.failures: list[int] = []
        self.answered = False


class PageMessages:
    """Out-of-dialog MESSAGE relaying and SUBSCRIBE refusal."""

    __slots__ = ("b2bua", "stats")

    def __init__(self, b2bua: Any) -> None:
        self.b2bua = b2bua
        self.stats: dict[str, int] = {}

    def on_message(self, ctx: RequestContext) -> None:
        request = ctx.request
        b2bua = self.b2bua
        if request.to.tag is not None:
            b2bua.on_in_dialog(ctx)
            return
        dispatcher = b2bua.dispatcher
        result = b2bua.auth.authenticate(ctx, proxy=True)
        sender = result.user
        if sender is None:
            if not result.answered:
                dispatcher.reply(ctx, 403)
            return
        uri = request.uri
        number = (
            uri.user_decoded() if isinstance(uri, SipUri)
            else uri.digits() if isinstance(uri, TelUri) else None
        )  # fmt: skip
        users = b2bua.router.users
        target = users.user(number) if number else None
        if target is None or not number:
            dispatcher.reply(ctx, 404)
            return
        if not target.enabled:
            dispatcher.reply(ctx, 480)
            return
        if not b2bua.router.permitted(sender, number):
            dispatcher.reply(ctx, 403, "Not Allowed")
            return
        targets = users.targets(number)
        if not targets:
            dispatcher.reply(ctx, 480)
            return
        page = _Page(ctx, len(targets))
        display = sender.display_name or request.from_.display
        identity = str(NameAddr(SipUri(host=b2bua.domain, user=sender.number), display or None))
        max_forwards = request.max_forwards
        for target_contact in targets:
            headers = Headers()
            headers.add("From", f"{identity};tag={b2bua.ids()}")
            headers.add("To", f"<sip:{number}@{b2bua.domain}>")
            headers.add("Call-ID", f"{b2bua.ids()}@{b2bua.domain}")
            headers.add("CSeq", "1 MESSAGE")
            headers.add("Max-Forwards", str(69 if max_forwards is None else max_forwards - 1))
            headers.add("P-Asserted-Identity", identity)
            for name, value in copy_allowed(request.headers, IN_DIALOG_HEADERS):
                headers.add(name, value)
            content_type = request.headers.get("content-type")
            if request.body and content_type:
                headers.add("Content-Type", content_type)
            out = Request("MESSAGE", target_contact.request_uri, headers, request.body)
            tx = b2bua.port.send_request(
                out, target_contact.destination, target_contact.connection_id
            )
            b2bua._tx[tx] = Owned(
                lambda r, t, page=page: self._response(page, r, t),
                lambda status, t, page=page: self._failed(page, status),
            )
        self._count("relayed")

    def _response(self, page: _Page, response: Response, tx: object) -> None:
        if response.status < 200:
            return
        self.b2bua._tx.pop(tx, None)
        if response.status < 300:
            page.pending -= 1
            if not page.answered:
                page.answered = True
                headers = copy_allowed(response.headers, RESPONSE_HEADERS)
                self.b2bua.dispatcher.reply(page.ctx, response.status, response.reason,
                                            headers=headers)  # fmt: skip
                self._count("delivered")
            return
        self._failed(page, response.status)

    def _failed(self, page: _Page, status: int) -> None:
        page.pending -= 1
        page.failures.append(status)
        if page.pending <= 0 and not page.answered:
            page.answered = True
            self.b2bua.dispatcher.reply(page.ctx, page_failure(page.failures))
            self._count("failed")

    def on_subscribe(self, ctx: RequestContext) -> None:
        """Every event package is refused: 489 Bad Event (RFC 6665), see the module doc."""
        self.b2bua.dispatcher.reply(ctx, 489, headers=[("Allow-Events", "refer")])
        self._count("subscribe_489")

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1
