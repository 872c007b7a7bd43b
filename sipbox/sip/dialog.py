"""Dialog state (RFC 3261 §12): identifiers, sequence numbers, route set and remote target.

A dialog is the peer-to-peer relationship two UAs keep for the life of a call. This module holds
its state and builds the requests that travel inside it; it sends nothing and reads no clock
(the same rule as the rest of `sipbox.sip`). The B2BUA keeps one dialog per leg: towards the
caller it is the UAS side (`Dialog.as_uas`, §12.1.1), towards each callee the UAC side
(`Dialog.as_uac`, §12.1.2).

What the RFC asks, and where:

* Dialog id = Call-ID + local tag + remote tag (§12). The UAS's local tag is the To tag it put
  in its response; the UAC's local tag is its From tag.
* Route set (§12.1.1/§12.1.2): the Record-Route of the request (UAS, in order) or of the
  response (UAC, reversed). It is fixed when the dialog is created, except that a UAC's early
  dialog takes the route set of the 2xx that confirms it (§13.2.2.4, §12.2.1.2).
* Remote target: the peer's Contact; target-refresh requests (re-INVITE, UPDATE) and their 2xx
  replace it (§12.2.1.2, §12.2.2; RFC 3311 §5.1).
* CSeq: ours increases by one for every request but ACK and CANCEL (§12.2.1.1); theirs must
  not decrease — a lower number is answered 500 (§12.2.2).
* Building a request (§12.2.1.1): Request-URI = remote target and Route = route set when the
  first route is a loose router (`;lr`); otherwise (strict router, RFC 2543) the first route
  becomes the Request-URI and the remote target is appended as the last Route.
* The ACK for a 2xx (§13.2.2.4) carries the INVITE's CSeq number with method ACK and the same
  Route set; it may carry the answer of a delayed offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from .errors import RemoteProtocolError
from .headers import Headers, NameAddr, parse_name_addr
from .message import Request, Response
from .uri import SipUri, parse_uri

__all__ = ["Dialog", "DialogState", "TARGET_REFRESH_METHODS"]

#: Requests whose Contact (and 2xx Contact) replace the remote target (§12.2, RFC 3311, RFC 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(Enum):
    """§12: a dialog created by a 1xx with a To tag is early; a 2xx confirms it."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Dialog:
    """One side's view of a dialog. Mutable: sequence numbers and the target move on."""

    __slots__ = (
        "call_id",
        "local",
        "local_seq",
        "local_tag",
        "remote",
        "remote_seq",
        "remote_tag",
        "remote_target",
        "route_set",
        "secure",
        "state",
    )

    def __init__(
        self,
        *,
        call_id: str,
        local: NameAddr,
        local_tag: str,
        remote: NameAddr,
        remote_tag: str | None,
        remote_target: str,
        route_set: Iterable[str] = (),
        local_seq: int = 0,
        remote_seq: int | None = None,
        secure: bool = False,
        state: DialogState = DialogState.EARLY,
    ) -> None:
        self.call_id = call_id
        # The From/To addresses without their tags; the tags are kept apart (§12.1.1).
        self.local = local.with_params({k: v for k, v in local.params.items() if k != "tag"})
        self.local_tag = local_tag
        self.remote = remote.with_params({k: v for k, v in remote.params.items() if k != "tag"})
        self.remote_tag = remote_tag
        self.remote_target = remote_target
        self.route_set = list(route_set)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.state = state

    # == creation =================================================================================
    @classmethod
    def as_uas(cls, request: Request, local_tag: str, *, confirmed: bool = False) -> Dialog:
        """The UAS side, created by our response with To tag `local_tag` (§12.1.1)."""
        contacts = request.contacts
        target = str(contacts[0].address.uri) if contacts and contacts[0].address else ""
        return cls(
            call_id=request.call_id,
            local=request.to,
            local_tag=local_tag,
            remote=request.from_,
            remote_tag=request.from_.tag,
            remote_target=target,
            route_set=request.headers.values("record-route"),
            local_seq=0,
            remote_seq=request.cseq.seq,
            secure=request.uri_text.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """The UAC side, created by a 1xx/2xx with a To tag to our `request` (§12.1.2)."""
        contacts = response.contacts
        target = str(contacts[0].address.uri) if contacts and contacts[0].address else ""
        return cls(
            call_id=request.call_id,
            local=request.from_,
            local_tag=request.from_.tag or "",
            remote=response.to,
            remote_tag=response.to.tag,
            remote_target=target or request.uri_text,
            route_set=list(reversed(response.headers.values("record-route"))),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=request.uri_text.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
        )

    @property
    def id(self) -> tuple[str, str, str | None]:
        """(Call-ID, local tag, remote tag) — §12."""
        return (self.call_id, self.local_tag, self.remote_tag)

    # == updates ==================================================================================
    def confirm(self, response: Response) -> None:
        """A 2xx for the dialog-creating INVITE: confirmed; a UAC takes the 2xx's route set
        and target (§13.2.2.4: the early dialog's values are replaced by the 2xx's)."""
        if self.state is DialogState.EARLY:
            self.route_set = list(reversed(response.headers.values("record-route")))
            if response.to.tag:
                self.remote_tag = response.to.tag
        self.state = DialogState.CONFIRMED
        self.refresh_target(response)

    def refresh_target(self, message: Request | Response) -> None:
        """Take the Contact of a target-refresh request or of its 2xx (§12.2.1.2, §12.2.2)."""
        contacts = message.contacts
        if contacts and contacts[0].address is not None:
            self.remote_target = str(contacts[0].address.uri)

    def accept_request(self, request: Request) -> bool:
        """Check and record the CSeq of an in-dialog request (§12.2.2).

        False means the number went backwards: answer 500. ACK and CANCEL reuse the INVITE's
        number and are not checked. A target-refresh request updates the remote target.
        """
        method = request.method
        if method in ("ACK", "CANCEL"):
            return True
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        if method in TARGET_REFRESH_METHODS:
            self.refresh_target(request)
        return True

    # == building requests ========================================================================
    def _request_line_and_routes(self) -> tuple[str, list[str]]:
        """§12.2.1.1: loose routing keeps the remote target as Request-URI; a strict first
        route becomes the Request-URI and the remote target goes last in Route."""
        routes = self.route_set
        if not routes:
            return self.remote_target, []
        first = parse_name_addr(routes[0])
        uri = first.uri
        if isinstance(uri, SipUri) and "lr" not in uri.params:
            stripped = uri.with_(params={k: v for k, v in uri.params.items() if k != "method"})
            return str(stripped), [*routes[1:], f"<{self.remote_target}>"]
        return self.remote_target, list(routes)

    def _headers(self, cseq: str) -> Headers:
        headers = Headers()
        _, routes = self._request_line_and_routes()
        for route in routes:
            headers.add("Route", route)
        headers.add("From", f"{self.local};tag={self.local_tag}")
        remote = str(self.remote)
        headers.add("To", f"{remote};tag={self.remote_tag}" if self.remote_tag else remote)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", cseq)
        return headers

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A new in-dialog request with the next local CSeq (§12.2.1.1); not ACK or CANCEL."""
        if method in ("ACK", "CANCEL"):
            raise ValueError("ACK and CANCEL reuse a request's CSeq: use create_ack()")
        self.local_seq += 1
        out = self._headers(f"{self.local_seq} {method}")
        for name, value in headers:
            out.add(name, value)
        if body and content_type:
            out.add("Content-Type", content_type)
        uri, _ = self._request_line_and_routes()
        return Request(method, uri, out, body)

    def create_ack(
        self, invite_seq: int, *, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """The ACK for a 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4)."""
        out = self._headers(f"{invite_seq} ACK")
        if body and content_type:
            out.add("Content-Type", content_type)
        uri, _ = self._request_line_and_routes()
        return Request("ACK", uri, out, body)

    @property
    def next_hop_uri(self) -> str:
        """The URI the request is sent towards: the first Route, else the remote target
        (§8.1.2); the caller of this module decides the transport address (NAT, flows)."""
        if self.route_set:
            return str(parse_name_addr(self.route_set[0]).uri)
        return self.remote_target

    def __repr__(self) -> str:
        return f"<Dialog {self.call_id} {self.local_tag}/{self.remote_tag} {self.state.value}>"


def remote_target_uri(dialog: Dialog) -> SipUri | None:
    """The remote target as a SIP URI, or None if it is not one."""
    try:
        uri = parse_uri(dialog.remote_target)
    except RemoteProtocolError:  # a peer's bad Contact is not our error
        return None
    return uri if isinstance(uri, SipUri) else None
