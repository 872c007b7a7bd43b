"""RFC 3261 §12 dialog state: creation on both sides, in-dialog requests, ACK, CSeq rules."""

from __future__ import annotations

import pytest

from sipbox.sip.dialog import Dialog, DialogState
from sipbox.sip.message import Request, Response
from sipbox.sip.parser import parse_message

INVITE = (
    b"INVITE sip:bob@b.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
    b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
    b'From: "Alice" <sip:alice@a.example>;tag=ta\r\n'
    b"To: <sip:bob@b.example>\r\n"
    b"Call-ID: c1\r\nCSeq: 5 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1:5062>\r\nContent-Length: 0\r\n\r\n"
)


def invite() -> Request:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    return message


def response(status: int = 200, rr: str = "<sip:p1.example;lr>, <sip:p2.example;lr>") -> Response:
    text = (
        f"SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
        f"Record-Route: {rr}\r\n"
        'From: "Alice" <sip:alice@a.example>;tag=ta\r\n'
        "To: <sip:bob@b.example>;tag=tb\r\nCall-ID: c1\r\nCSeq: 5 INVITE\r\n"
        "Contact: <sip:bob@10.0.0.2>\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Response)
    return message


def test_uas_dialog():
    d = Dialog.as_uas(invite(), "tb", confirmed=True)
    assert d.id == ("c1", "tb", "ta")
    assert d.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert d.remote_target == "sip:alice@10.0.0.1:5062"
    assert d.remote_seq == 5 and d.state is DialogState.CONFIRMED
    bye = d.create_request("BYE")
    assert bye.uri_text == "sip:alice@10.0.0.1:5062"
    assert bye.headers.get_all("route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert bye.from_.tag == "tb" and bye.to.tag == "ta"
    assert str(bye.to.uri) == "sip:alice@a.example" and bye.to.display == "Alice"
    assert bye.cseq.seq == 1 and bye.call_id == "c1"
    assert d.create_request("INFO").cseq.seq == 2


def test_uac_dialog_reverses_record_route_and_acks():
    d = Dialog.as_uac(invite(), response(180))
    assert d.state is DialogState.EARLY
    assert d.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert d.local_seq == 5 and d.remote_seq is None
    d.confirm(response(200, rr="<sip:p3.example;lr>"))
    assert d.state is DialogState.CONFIRMED and d.route_set == ["<sip:p3.example;lr>"]
    ack = d.create_ack(5, body=b"v=0\r\n", content_type="application/sdp")
    assert ack.method == "ACK" and ack.cseq.seq == 5 and ack.cseq.method == "ACK"
    assert ack.to.tag == "tb" and ack.from_.tag == "ta"
    assert ack.body == b"v=0\r\n" and ack.headers.get("content-type") == "application/sdp"
    assert d.local_seq == 5  # ACK does not consume a CSeq
    assert d.create_request("BYE").cseq.seq == 6
    with pytest.raises(ValueError):
        d.create_request("ACK")


def test_strict_router_first_route_becomes_request_uri():
    # UAC: the route set is the reversed Record-Route, so the strict router comes first.
    d = Dialog.as_uac(invite(), response(200, rr="<sip:loose.example;lr>, <sip:strict.example>"))
    request = d.create_request("BYE")
    assert request.uri_text == "sip:strict.example"
    assert request.headers.get_all("route") == ["<sip:loose.example;lr>", "<sip:bob@10.0.0.2>"]


def test_cseq_order_and_target_refresh():
    d = Dialog.as_uas(invite(), "tb")
    reinvite = parse_message(
        INVITE.replace(b"CSeq: 5", b"CSeq: 6").replace(b"10.0.0.1:5062", b"10.0.0.9")
    )
    assert isinstance(reinvite, Request)
    assert d.accept_request(reinvite)
    assert d.remote_target == "sip:alice@10.0.0.9"
    old = parse_message(INVITE.replace(b"INVITE sip", b"INFO sip").replace(b"5 INVITE", b"4 INFO"))
    assert isinstance(old, Request)
    assert not d.accept_request(old)
    assert d.next_hop_uri == "sip:p1.example;lr"
