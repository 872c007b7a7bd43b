"""Test kit for the B2BUA: a fake port with explicit time that records everything sent, fake
users and contacts, and helpers to play the caller and the callees' phones."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from sipbox.pbx.calls.b2bua import B2BUA
from sipbox.pbx.calls.routing import Router, UserResolver
from sipbox.pbx.dispatcher import Dispatcher, RequestContext
from sipbox.pbx.location import Target
from sipbox.sip.address import Address, Peer
from sipbox.sip.events import AckReceived, ResponseReceived, TransactionTimedOut
from sipbox.sip.ids import counter_id_source
from sipbox.sip.message import Request, Response
from sipbox.sip.parser import parse_message
from sipbox.sip.replies import make_response
from sipbox.storage.records import Cdr, User

DOMAIN = "pbx.test"
SERVER = Address("udp", "192.0.2.10", 5060)
CALLER = Address("udp", "198.51.100.7", 5062)
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
SDP_B = SDP.replace(b"198.51.100.7", b"203.0.113.9").replace(b"4000", b"5000")


def user(number: str, **kw: object) -> User:
    values: dict[str, object] = dict(
        id=int(number), number=number, display_name=f"User {number}", ha1_md5=None,
        ha1_sha256=None, realm=None, enabled=True, max_contacts=None, ip_auth=(),
        static_contact=None, nat="auto", ring_timeout=None, max_calls=None,
        class_of_service="local", settings={}, created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    values.update(kw)
    return User(**values)  # type: ignore[arg-type]


class FakePort:
    """Records what the B2BUA sends; transaction ids are "tx1", "tx2"..."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.responses: list[Response] = []
        self.requests: list[tuple[str, Request, Address]] = []
        self.cancels: list[tuple[object, str | None]] = []
        self.acks: list[tuple[Request, Address, bytes]] = []
        self._ids = itertools.count(1)

    def now(self) -> float:
        return self.t

    def send_response(self, response: Response, transaction: object | None = None) -> None:
        self.responses.append(response)

    def send_request(
        self, request: Request, destination: Address, connection_id: int | None = None
    ) -> object:
        tx = f"tx{next(self._ids)}"
        self.requests.append((tx, request, destination))
        return tx

    def send_cancel(self, transaction: object, reason: str | None = None) -> object | None:
        self.cancels.append((transaction, reason))
        return f"{transaction}-cancel"

    def send_ack_2xx(
        self, ack: Request, destination: Address, connection_id: int | None = None
    ) -> None:
        self.acks.append((ack, destination, ack.to_bytes()))

    def send_stateless(self, message: object, destination: Address, connection_id=None) -> None:
        raise AssertionError("not expected")

    def local_address(self, destination: Address) -> Address:
        return SERVER


class FakeAuth:
    """IP authorization for everybody in `users`."""

    def __init__(self, users: dict[str, User]) -> None:
        self.users = users

    def authenticate(self, ctx: RequestContext, *, proxy: bool):
        from sipbox.pbx.auth import AuthResult

        number = ctx.request.from_.uri.user  # type: ignore[union-attr]
        found = self.users.get(number or "")
        return AuthResult(found, "ip" if found else None)


@dataclass
class Kit:
    port: FakePort
    b2bua: B2BUA
    dispatcher: Dispatcher
    users: dict[str, User]
    contacts: dict[str, list[Target]]
    cdrs: list[Cdr] = field(default_factory=list)
    wall: list[float] = field(default_factory=lambda: [1_700_000_000.0])
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))

    # -- time ---------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        self.port.t += seconds
        self.wall[0] += seconds
        self.b2bua.handle_timer(self.port.t)

    # -- the caller ---------------------------------------------------------------------------
    def invite(
        self, dialed: str = "1002", *, caller: str = "1001", body: bytes = SDP,
        extra: str = "", call_id: str | None = None, max_forwards: int = 70,
    ) -> Request:  # fmt: skip
        n = next(self._seq)
        call_id = call_id or f"a{n}@198.51.100.7"
        lines = [
            f"INVITE sip:{dialed}@{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKa{n};rport=5062"
            ";received=198.51.100.7",
            f'From: "Alice" <sip:{caller}@{DOMAIN}>;tag=from{n}',
            f"To: <sip:{dialed}@{DOMAIN}>",
            f"Call-ID: {call_id}",
            "CSeq: 10 INVITE",
            f"Max-Forwards: {max_forwards}",
            "Contact: <sip:1001@198.51.100.7:5062>",
            "Record-Route: <sip:proxy.example;lr>",
            "P-Preferred-Identity: <sip:9999@evil.example>",
            "P-Asserted-Identity: <sip:9998@evil.example>",
            "X-Secret: do-not-copy",
            "Subject: hello",
            "Supported: replaces, 100rel, timer",
        ]
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        text = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
        request = parse_message(text.encode() + body)
        assert isinstance(request, Request)
        return request

    def send(self, request: Request, source: Address = CALLER, tx: str | None = None) -> None:
        ctx = RequestContext(request, Peer(source, SERVER), tx or f"srv-{request.call_id}")
        if request.method == "ACK":
            self.b2bua.on_ack(AckReceived(request, Peer(source, SERVER)))
            return
        self.dispatcher.handle_request(ctx)

    def cancel(self, invite: Request, reason: str | None = None) -> None:
        h = invite.headers
        lines = [
            f"CANCEL {invite.uri_text} SIP/2.0",
            f"Via: {h.get('via')}",
            f"From: {h.get('from')}",
            f"To: {h.get('to')}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {invite.cseq.seq} CANCEL",
            "Max-Forwards: 70",
        ]
        if reason:
            lines.append(f"Reason: {reason}")
        cancel = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
        assert isinstance(cancel, Request)
        self.send(cancel)

    def a_responses(self, call_id: str) -> list[Response]:
        return [
            r for r in self.port.responses if r.call_id == call_id and r.cseq.method == "INVITE"
        ]

    def a_statuses(self, call_id: str) -> list[int]:
        return [r.status for r in self.a_responses(call_id)]

    def ack_from_a(self, invite: Request, ok: Response, body: bytes = b"") -> Request:
        lines = [
            f"ACK sip:1002@{SERVER.hostport()} SIP/2.0",
            "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKack;rport",
            f"From: {invite.headers.get('from')}",
            f"To: {ok.headers.get('to')}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {invite.cseq.seq} ACK",
            "Max-Forwards: 70",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        text = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
        ack = parse_message(text.encode() + body)
        assert isinstance(ack, Request)
        self.send(ack)
        return ack

    def in_dialog_from_a(
        self, invite: Request, ok: Response, method: str, cseq: int, body: bytes = b"",
        extra: str = "",
    ) -> Request:  # fmt: skip
        lines = [
            f"{method} sip:1002@{SERVER.hostport()} SIP/2.0",
            f"Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKind{cseq}{method};rport",
            f"From: {invite.headers.get('from')}",
            f"To: {ok.headers.get('to')}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            "Contact: <sip:1001@198.51.100.7:5062>",
        ]
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        text = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
        request = parse_message(text.encode() + body)
        assert isinstance(request, Request)
        self.send(request)
        return request

    # -- the callees --------------------------------------------------------------------------
    def b_requests(self, method: str = "INVITE") -> list[tuple[str, Request, Address]]:
        return [r for r in self.port.requests if r[1].method == method]

    def reply(
        self, tx: str, status: int, *, tag: str | None = None, body: bytes = b"",
        extra: list[tuple[str, str]] | None = None, contact: str = "sip:1002@203.0.113.9:5070",
    ) -> Response:  # fmt: skip
        request = next(r for t, r, _ in self.port.requests if t == tx)
        headers = list(extra or [])
        if status > 100:
            headers.append(("Contact", f"<{contact}>"))
        response = make_response(
            request, status, to_tag=tag or f"bt-{tx}", headers=headers, body=body,
            content_type="application/sdp" if body else None,
        )  # fmt: skip
        # What the endpoint hands up: our Via popped (we never see our own Via as the TU).
        response.headers.pop_first("via")
        self.b2bua.on_response(
            ResponseReceived(response, tx, Peer(Address("udp", "203.0.113.9", 5070), SERVER))  # type: ignore[arg-type]
        )
        return response

    def retransmit_2xx(self, response: Response, tx: str | None) -> None:
        self.b2bua.on_response(
            ResponseReceived(response, tx, Peer(Address("udp", "203.0.113.9", 5070), SERVER))  # type: ignore[arg-type]
        )

    def timeout(self, tx: str) -> None:
        request = next(r for t, r, _ in self.port.requests if t == tx)
        self.b2bua.on_transaction_failed(TransactionTimedOut(tx, request))  # type: ignore[arg-type]

    def request_from_b(self, leg_invite: Request, ok: Response, method: str, cseq: int,
                       body: bytes = b"", extra: str = "") -> Request:  # fmt: skip
        lines = [
            f"{method} sip:1001@{SERVER.hostport()} SIP/2.0",
            f"Via: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bKb{cseq}{method};rport",
            f"From: {ok.headers.get('to')}",
            f"To: {leg_invite.headers.get('from')}",
            f"Call-ID: {leg_invite.call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            "Contact: <sip:1002@203.0.113.9:5070>",
        ]
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        text = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
        request = parse_message(text.encode() + body)
        assert isinstance(request, Request)
        self.send(request, Address("udp", "203.0.113.9", 5070))
        return request

    def last_cdr(self) -> Cdr:
        return self.cdrs[-1]


def target(number: str, n: int) -> Target:
    destination = Address("udp", "203.0.113.9", 5070 + n)
    return Target(f"sip:{number}@203.0.113.9:{5070 + n}", destination)


def make_kit(
    contacts: dict[str, int] | None = None, *, users: dict[str, User] | None = None,
    max_duration: float = 0.0, ring_timeout: float = 30.0,
) -> Kit:  # fmt: skip
    port = FakePort()
    dispatcher = Dispatcher(port=port)  # type: ignore[arg-type]
    users = users or {n: user(n) for n in ("1001", "1002", "1003", "1004")}
    contact_map = {
        number: [target(number, i) for i in range(count)]
        for number, count in (contacts or {"1002": 2, "1003": 1}).items()
    }
    holder: list[B2BUA] = []
    resolver = UserResolver(
        users, lambda n: list(contact_map.get(n, [])), lambda n: holder[0].active_calls(n),
        ring_timeout,
    )  # fmt: skip
    kit_cdrs: list[Cdr] = []
    wall = [1_700_000_000.0]
    b2bua = B2BUA(
        port, dispatcher, FakeAuth(users), Router(resolver), domain=DOMAIN,  # type: ignore[arg-type]
        id_source=counter_id_source("c"), cdr_sink=kit_cdrs.append,
        wall_clock=lambda: wall[0], max_duration=max_duration,
    )  # fmt: skip
    holder.append(b2bua)
    for method in ("INVITE",):
        dispatcher.on_request(method, b2bua.on_invite)
    dispatcher.on_request("CANCEL", b2bua.on_cancel)
    for method in ("BYE", "UPDATE", "INFO", "MESSAGE", "NOTIFY"):
        dispatcher.on_request(method, b2bua.on_in_dialog)
    return Kit(port, b2bua, dispatcher, users, contact_map, kit_cdrs, wall)


__all__ = ["SDP", "SDP_B", "Kit", "make_kit", "replace", "user"]
