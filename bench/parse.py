"""Parse + serialize throughput of typical messages, in messages per second on one core.

Run: .venv/bin/python bench/parse.py [--seconds 2]

Four figures per message: parse only (headers untouched: what a dropped or statelessly
answered datagram costs), parse + the typed headers a transaction and dialog need (Via, From,
To, Call-ID, CSeq, Contact) + validation, the same with the URI / name-addr / CSeq caches
emptied before every message (a first sight of every value: the worst case), and serialize of
a parsed message.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from sipbox.sip import headers as headers_module
from sipbox.sip import uri as uri_module
from sipbox.sip.message import Request
from sipbox.sip.parser import check_request, check_response, parse_message

INVITE = (
    b"INVITE sip:1002@pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:1001@pbx.example.com>;tag=1928301774\r\n'
    b"To: <sip:1002@pbx.example.com>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:1001@192.0.2.10:5062;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO, UPDATE\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: Yealink SIP-T46S 66.86.0.15\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 142\r\n\r\n"
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)
REGISTER = (
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnashds7;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:1001@pbx.example.com>;tag=456248\r\n"
    b"To: <sip:1001@pbx.example.com>\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:1001@192.0.2.10:5062>;expires=3600\r\n"
    b'Authorization: Digest username="1001", realm="pbx.example.com", '
    b'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:pbx.example.com", '
    b'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, qop=auth, nc=00000001, '
    b'cnonce="0a4f113b"\r\n'
    b"User-Agent: baresip v1.0.0\r\n"
    b"Content-Length: 0\r\n\r\n"
)
OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b'From: "Alice" <sip:1001@pbx.example.com>;tag=1928301774\r\n'
    b"To: <sip:1002@pbx.example.com>;tag=a6c85cf\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:1002@192.0.2.20:5060>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn`, measured over about `seconds` of CPU time."""
    n = 0
    batch = 1000
    start = time.process_time()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return n / elapsed


def clear_caches() -> None:
    """Forget every parsed URI / name-addr / CSeq, so each parse is a first sight."""
    uri_module._CACHE.clear()
    headers_module._NAME_ADDR_CACHE.clear()
    headers_module._CSEQ_CACHE.clear()


def touched(data: bytes, cold: bool = False) -> Callable[[], object]:
    def run() -> object:
        if cold:
            clear_caches()
        m = parse_message(data)
        if isinstance(m, Request):
            check_request(m)
        else:
            check_response(m)  # type: ignore[arg-type]
        return m.vias, m.from_, m.to, m.call_id, m.cseq, m.contacts

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    gc.freeze()
    print(
        f"{'message':10} {'parse only/s':>14} {'parse+headers/s':>16} {'(cold caches)':>14} "
        f"{'serialize/s':>12}"
    )
    for name, data in (("INVITE", INVITE), ("REGISTER", REGISTER), ("200 OK", OK_200)):
        parsed = parse_message(data)
        _ = parsed.headers

        def serialize(m=parsed) -> bytes:  # type: ignore[no-untyped-def]
            return m.to_bytes()

        print(
            f"{name:10} {rate(lambda d=data: parse_message(d), args.seconds):14,.0f} "
            f"{rate(touched(data), args.seconds):16,.0f} "
            f"{rate(touched(data, cold=True), args.seconds):14,.0f} "
            f"{rate(serialize, args.seconds):12,.0f}"
        )


if __name__ == "__main__":
    main()
