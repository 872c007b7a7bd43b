"""Property tests of the parser (the h11 invariant): any input parses or raises
`RemoteProtocolError`, never anything else; a parsed message serializes to bytes that parse
back to the same message."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.headers import header_key
from sipbox.sip.message import Message, Request
from sipbox.sip.parser import check_request, check_response, parse_message

T = TypeVar("T")

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "rfc4475"
CORPUS = sorted(CORPUS_DIR.glob("*.dat")) if CORPUS_DIR.exists() else []
SEEDS = [p.read_bytes() for p in CORPUS] or [
    b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n"
]


def _exercise(data: bytes) -> Message | None:
    """Parse, validate and touch every typed accessor; only RemoteProtocolError may escape."""
    try:
        message = parse_message(data)
        if isinstance(message, Request):
            check_request(message)
            _ = message.uri, message.max_forwards
        else:
            check_response(message)  # type: ignore[arg-type]
        _ = message.vias, message.from_, message.to, message.cseq, message.call_id
        _ = message.contacts, message.routes, message.record_routes, message.expires
        return message
    except RemoteProtocolError:
        return None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=8)), max_size=6),
)
def test_mutated_torture_messages_never_crash(seed: bytes, edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(seed)
    for position, replacement in edits:
        at = position % (len(data) + 1)
        data[at : at + len(replacement)] = replacement
    _exercise(bytes(data))


def test_ten_thousand_random_mutations_never_crash() -> None:
    """Byte flips, deletions and duplications of every torture message (seeded, repeatable)."""
    rng = random.Random(4475)
    alphabet = b' \t\r\n:;,<>"\\=@%[]0123456789abcSIP/'
    for i in range(10_000):
        data = bytearray(SEEDS[i % len(SEEDS)])
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            at = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(at, len(data) - 1)] = rng.choice(alphabet)
            elif op == 1:
                del data[at : at + rng.randint(1, 16)]
            else:
                data[at:at] = data[at : at + rng.randint(1, 32)]
        _exercise(bytes(data))


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12)
_user = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!*_+~", min_size=1, max_size=12)
_host = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE", "MESSAGE", "FOO"]))
    user = draw(_user)
    host = draw(_host)
    branch = "z9hG4bK" + draw(_token)
    extra = draw(
        st.lists(
            st.tuples(st.sampled_from(["X-A", "Subject", "User-Agent", "Foo-Bar"]), _token),
            max_size=4,
        )
    )
    body = draw(st.binary(max_size=64))
    lines = [
        f"{method} sip:{user}@{host} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{draw(st.integers(1, 65535))};branch={branch};rport",
        f'From: "{draw(_token)}" <sip:{draw(_user)}@{host}>;tag={draw(_token)}',
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {draw(_token)}@{host}",
        f"CSeq: {draw(st.integers(0, 2**32 - 1))} {method}",
        f"Max-Forwards: {draw(st.integers(0, 255))}",
        f"Contact: <sip:{user}@{host};transport=udp>;expires={draw(st.integers(0, 10**6))}",
    ]
    lines += [f"{n}: {v}" for n, v in extra]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@settings(max_examples=300)
@given(_requests())
def test_generated_requests_round_trip(data: bytes) -> None:
    message = _exercise(data)
    assert message is not None
    again = parse_message(message.to_bytes())
    assert isinstance(again, Request) and isinstance(message, Request)
    assert again.method == message.method and again.uri_text == message.uri_text
    strip = lambda m: [(n, v) for n, v in m.headers if header_key(n) != "content-length"]  # noqa: E731
    assert strip(again) == strip(message)
    assert again.body == message.body
    assert again.cseq == message.cseq and str(again.to) == str(message.to)


# == the fresh-tag shortcut of parse_name_addr ================================================
_ADDRESS_PARTS = st.sampled_from(
    [
        "<sip:alice@example.com>",
        '"Alice" <sip:alice@example.com>',
        'Bob Smith <sip:bob@10.0.0.1:5060;transport=tcp>',
        "sip:carol@example.com",
        "sip:carol@example.com;user=phone",
        "<sips:d@[2001:db8::1]>;expires=60",
        '"semi;tag=x" <sip:e@f>',
        "<sip:g@h;tag=inside>",
        "<sip:i@j>;tag=first",
        "<tel:+15551234>",
        "<sip:k@l> ",
        "",
        " ",
        "<sip:bad space@x>",
        '"unterminated <sip:x@y>',
    ]
)
_TAGS = st.one_of(
    st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True),
    st.text(max_size=6),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_ADDRESS_PARTS, st.sampled_from([";tag=", ";tag = ", ";TAG=", ";tag=;"]), _TAGS)
def test_fresh_tag_shortcut_gives_the_full_parse(base: str, sep: str, tag: str) -> None:
    from sipbox.sip.headers import _parse_name_addr, parse_name_addr

    value = base + sep + tag
    expected, got = _parsed(_parse_name_addr, value), _parsed(parse_name_addr, value)
    if expected is None or got is None:
        assert expected is got, value
        return
    assert (got.uri, got.display, got.params) == (expected.uri, expected.display, expected.params)
    assert list(got.params) == list(expected.params), value  # the order written back


def _parsed(parse: Callable[[str], T], value: str) -> T | None:
    """`parse(value)`, or None when it raises the parser's one error type."""
    try:
        return parse(value)
    except RemoteProtocolError:
        return None


# == the branch-free memo of parse_via ============================================================
_VIA_BASES = st.sampled_from(
    [
        "SIP/2.0/UDP 127.0.0.1:5999;branch={b}",
        "SIP/2.0/UDP 127.0.0.1:5999;branch={b};rport",
        "SIP/2.0/UDP 10.0.0.1;rport=5060;branch={b};received=192.0.2.1",
        "SIP/2.0/TCP [2001:db8::1]:5061;branch={b};alias",
        "SIP/2.0/UDP h;branch={b};branch=second",
        "SIP/2.0/UDP h;branch=first;branch={b}",
        'SIP/2.0/UDP h;x="a;branch={b};y";branch=real',
        'SIP/2.0/UDP h;x="a;branch={b}"',
        "SIP/2.0/UDP h ;branch={b}",
        "SIP/2.0/UDP h;branch={b} ;ttl=1",
        "SIP/3.0/UDP h;branch={b}",
        "SIP/2.0/UDP h;branch={b};;",
        "SIP/2.0/UDP h:99999;branch={b}",
    ]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_VIA_BASES, _TAGS, _TAGS)
def test_via_memo_gives_the_full_parse(base: str, first: str, second: str) -> None:
    from sipbox.sip.headers import _parse_via, parse_via

    for branch in (first, second):  # the second one may come from the memo
        value = base.format(b=branch)
        expected, got = _parsed(_parse_via, value), _parsed(parse_via, value)
        if expected is None or got is None:
            assert expected is got, value
            continue
        assert got == expected, value
        assert list(got.params.items()) == list(expected.params.items()), value
