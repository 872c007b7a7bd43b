"""The PBX front door: common checks and the stateless OPTIONS answer, against a fake port."""

from __future__ import annotations

from sipbox.pbx.dispatcher import Dispatcher, RequestContext
from sipbox.sip.address import Address
from sipbox.sip.message import Request, Response
from sipbox.sip.parser import parse_message


class FakePort:
    def __init__(self) -> None:
        self.responses: list[Response] = []

    def now(self) -> float:
        return 0.0

    def send_response(self, response: Response, transaction: object | None = None) -> None:
        self.responses.append(response)

    def send_request(
        self, request: Request, destination: Address, connection_id: int | None = None
    ) -> object:
        raise AssertionError("not expected")

    def send_ack_2xx(
        self, ack: Request, destination: Address, connection_id: int | None = None
    ) -> None:
        raise AssertionError("not expected")

    def send_stateless(
        self, message: object, destination: Address, connection_id: int | None = None
    ) -> None:
        raise AssertionError("not expected")

    def local_address(self, destination: Address) -> Address:
        return Address("udp", "127.0.0.1", 5060)


def request(
    method: str = "OPTIONS", *, uri: str = "sip:pbx.test", extra: str = "", mf: int = 70
) -> Request:
    data = (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        f"From: <sip:a@pbx.test>;tag=1\r\nTo: <sip:b@pbx.test>\r\nCall-ID: c1\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: {mf}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def dispatch(d: Dispatcher, port: FakePort, req: Request) -> Response:
    d.handle_request(RequestContext(req, None, None))
    assert len(port.responses) == 1
    return port.responses.pop()


def test_options_answered_with_capabilities() -> None:
    port = FakePort()
    d = Dispatcher(port=port, user_agent="sipbox/test")
    r = dispatch(d, port, request())
    assert r.status == 200
    assert r.headers.get("Allow") == "OPTIONS"
    assert r.headers.get("Accept") == "application/sdp"
    assert r.to.tag  # a final response always carries a To-tag
    d.on_request("REGISTER", lambda ctx: None)
    assert dispatch(d, port, request()).headers.get("Allow") == "OPTIONS, REGISTER"


def test_common_checks() -> None:
    port = FakePort()
    d = Dispatcher(port=port)
    assert dispatch(d, port, request("FOO")).status == 501
    assert dispatch(d, port, request("SUBSCRIBE")).status == 405
    r = dispatch(d, port, request(extra="Require: 100rel, foo\r\n"))
    assert r.status == 420 and r.headers.get("Unsupported") == "100rel, foo"
    d.supported.add("100rel")
    r = dispatch(d, port, request(extra="Require: 100rel, foo\r\n"))
    assert r.headers.get("Unsupported") == "foo"
    assert dispatch(d, port, request("MESSAGE", mf=0)).status == 483
    assert dispatch(d, port, request("OPTIONS", mf=0)).status == 200
    assert dispatch(d, port, request(uri="urn:service:sos")).status == 416


def test_ack_is_never_answered_and_handlers_take_their_method() -> None:
    port = FakePort()
    d = Dispatcher(port=port)
    d.handle_request(RequestContext(request("ACK"), None, None))
    assert port.responses == []
    seen: list[str] = []
    d.on_request("MESSAGE", lambda ctx: seen.append(ctx.request.method))
    d.handle_request(RequestContext(request("MESSAGE"), None, None))
    assert seen == ["MESSAGE"] and port.responses == []


def test_to_tag_is_stable_for_a_retransmission() -> None:
    port = FakePort()
    d = Dispatcher(port=port)
    first = dispatch(d, port, request("FOO"))
    second = dispatch(d, port, request("FOO"))
    assert first.to.tag == second.to.tag


def test_stateless_options_answer_is_the_stateful_answer_byte_for_byte() -> None:
    """The endpoint's stateless hook writes the 200 without a Response object: it must be
    what the transaction path sends (two Via lines, an existing To tag and none, Supported)."""
    port = FakePort()
    d = Dispatcher(port=port, user_agent="sipbox/test", supported={"timer", "replaces"})
    d.on_request("REGISTER", lambda ctx: None)
    two_vias = "Via: SIP/2.0/UDP 198.51.100.9;branch=z9hG4bK2\r\n"
    for extra, to_tag in (("", False), (two_vias, False), ("", True)):
        req = request(extra=extra)
        if to_tag:
            req = parse_message(req.to_bytes().replace(b"<sip:b@pbx.test>", b"<sip:b@x>;tag=t9"))
            assert isinstance(req, Request)
        stateful = dispatch(d, port, req).to_bytes()
        assert d.answer_stateless(req, None) == stateful
