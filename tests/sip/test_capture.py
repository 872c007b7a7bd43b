"""`sipbox.sip.capture`: Call-ID extraction from raw bytes and the bounds of the call trace."""

from __future__ import annotations

from sipbox.sip.address import Address
from sipbox.sip.capture import CallCapture, call_id_of

PEER = Address("udp", "192.0.2.1", 5060)


def _msg(call_id_line: str, body: str = "") -> bytes:
    return (f"INVITE sip:1002@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n{call_id_line}\r\n"
            f"CSeq: 1 INVITE\r\n\r\n{body}").encode()  # fmt: skip


def test_call_id_forms() -> None:
    assert call_id_of(_msg("Call-ID: abc@h")) == b"abc@h"
    assert call_id_of(_msg("i:  compact@h ")) == b"compact@h"
    assert call_id_of(_msg("call-id :odd@h")) == b"odd@h"
    assert call_id_of(_msg("X-Other: 1", body="\r\ni: not-a-header")) is None


def test_ring_buffer_and_per_call_bounds() -> None:
    capture = CallCapture(2, max_messages=3)
    capture.current = (_msg("Call-ID: a1"), PEER)
    first = capture.begin("c1", "a1", 10.0)
    assert first is not None and len(first.messages) == 1  # the INVITE being processed
    capture.add_leg("c1", "b1", "1002")
    assert capture.watched[b"b1"] is first
    for _ in range(4):
        capture.record(first, b"x", False, PEER, 11.0)
    assert len(first.messages) == 3 and first.truncated == 2
    capture.begin("c2", "a2", 12.0)
    capture.begin("c3", "a3", 13.0)  # c1 dropped, and its Call-IDs no longer watched
    assert capture.get("c1") is None
    assert b"a1" not in capture.watched and b"b1" not in capture.watched
    assert capture.get("a3") is capture.get("c3") and len(capture) == 2
    assert CallCapture(0).begin("c", "a", 1.0) is None
