"""StreamFramer: RFC 3261 §18.3 framing and RFC 5626 §3.5.1 keep-alive pings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.framing import PING, FramedItem, StreamFramer


def message(body: bytes = b"", *, header: bytes = b"Content-Length", cseq: int = 1) -> bytes:
    return (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK" + str(cseq).encode() + b"\r\n"
        b"CSeq: "
        + str(cseq).encode()
        + b" OPTIONS\r\n"
        + header
        + b": "
        + str(len(body)).encode()
        + b"\r\n"
        b"\r\n" + body
    )


def feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[FramedItem]:
    items: list[FramedItem] = []
    for chunk in chunks:
        items.extend(framer.feed(chunk))
    return items


def test_one_message_in_one_feed() -> None:
    raw = message(b"v=0\r\n")
    assert StreamFramer().feed(raw) == [FramedItem("message", raw)]


def test_two_messages_in_one_feed_and_a_partial_third() -> None:
    a, b, c = message(b"a", cseq=1), message(b"bb", cseq=2), message(b"ccc", cseq=3)
    framer = StreamFramer()
    assert framer.feed(a + b + c[:10]) == [FramedItem("message", a), FramedItem("message", b)]
    assert framer.buffered == 10
    assert framer.feed(c[10:]) == [FramedItem("message", c)]
    assert framer.buffered == 0


def test_one_byte_at_a_time() -> None:
    raw = message(b"hello body")
    framer = StreamFramer()
    items = feed_all(framer, [raw[i : i + 1] for i in range(len(raw))])
    assert items == [FramedItem("message", raw)]


@pytest.mark.parametrize(
    "header",
    [b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"l", b"L", b"Content-Length  \t"],
)
def test_content_length_spellings(header: bytes) -> None:
    raw = message(b"12345", header=header)
    assert StreamFramer().feed(raw + raw) == [FramedItem("message", raw)] * 2


def test_content_length_with_surrounding_whitespace_and_folding() -> None:
    raw = b"BYE sip:a@b SIP/2.0\r\nContent-Length:   \r\n  3  \r\n\r\nabc"
    assert StreamFramer().feed(raw) == [FramedItem("message", raw)]


def test_header_whose_name_ends_in_l_is_not_content_length() -> None:
    raw = b"BYE sip:a@b SIP/2.0\r\nUrl: 99\r\nl: 0\r\n\r\n"
    assert StreamFramer().feed(raw) == [FramedItem("message", raw)]


def test_body_containing_blank_lines_is_not_split() -> None:
    body = b"v=0\r\n\r\n\r\n\r\nl: 5\r\n"
    raw = message(body)
    assert StreamFramer().feed(raw + raw) == [FramedItem("message", raw)] * 2


def test_ping_between_messages_and_lone_crlf_ignored() -> None:
    a, b = message(b"x", cseq=1), message(cseq=2)
    framer = StreamFramer()
    items = framer.feed(b"\r\n\r\n" + a + b"\r\n\r\n\r\n\r\n" + b"\r\n" + b)
    assert items == [PING, FramedItem("message", a), PING, PING, FramedItem("message", b)]
    assert items[0] is PING and PING.kind == "ping"


def test_ping_split_across_feeds() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [PING]
    assert framer.buffered == 0


def test_trailing_single_crlf_waits() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.buffered == 2
    raw = message()
    assert framer.feed(raw) == [FramedItem("message", raw)]


def test_missing_content_length_is_400() -> None:
    framer = StreamFramer()
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n")
    assert info.value.status_hint == 400


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1 2", b"", b"12345678901", b"0x10", b"+5"])
def test_invalid_content_length_is_400(value: bytes) -> None:
    framer = StreamFramer()
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: " + value + b"\r\n\r\n")
    assert info.value.status_hint == 400


def test_conflicting_content_lengths_are_400_but_equal_ones_pass() -> None:
    with pytest.raises(RemoteProtocolError):
        StreamFramer().feed(b"BYE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab")
    raw = b"BYE sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nab"
    assert StreamFramer().feed(raw) == [FramedItem("message", raw)]


def test_message_over_bound_is_513_before_the_body_arrives() -> None:
    framer = StreamFramer(max_message_size=1000)
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 990\r\n\r\n")
    assert info.value.status_hint == 513


def test_message_exactly_at_bound_passes() -> None:
    head = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 950\r\n\r\n"
    raw = head + b"x" * (1000 - len(head))
    raw = raw.replace(b"950", str(1000 - len(head)).encode())
    assert len(raw) == 1000
    assert StreamFramer(max_message_size=1000).feed(raw) == [FramedItem("message", raw)]


def test_unterminated_headers_over_bound_is_513() -> None:
    framer = StreamFramer(max_message_size=4096, max_headers_size=1024)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            framer.feed(b"X-Junk: " + b"y" * 50 + b"\r\n")
    assert info.value.status_hint == 513


def test_complete_headers_over_bound_is_513() -> None:
    framer = StreamFramer(max_message_size=4096, max_headers_size=100)
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(b"INVITE sip:a@b SIP/2.0\r\nX: " + b"y" * 100 + b"\r\nl: 0\r\n\r\n")
    assert info.value.status_hint == 513


def test_framer_is_dead_after_an_error() -> None:
    framer = StreamFramer()
    with pytest.raises(RemoteProtocolError):
        framer.feed(b"BYE sip:a@b SIP/2.0\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        framer.feed(message())
    assert framer.buffered == 0


def test_no_rescan_from_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Feeding a long header section in small pieces scans each byte a bounded number of times:
    the resume point moves forward, so the total work is linear."""
    framer = StreamFramer(max_message_size=1 << 20, max_headers_size=1 << 20)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    for _ in range(2000):
        framer.feed(b"X-A: bbbbbbbbbbbbbbbbbbbb\r\n")
        assert framer._scan_from >= framer.buffered - 3
    assert framer.feed(b"l: 0\r\n\r\n")[0].kind == "message"


def test_invalid_bounds() -> None:
    with pytest.raises(ValueError):
        StreamFramer(max_message_size=0)


# -- property: chunking does not matter ------------------------------------------------------

_bodies = st.binary(max_size=300)
_items = st.one_of(
    st.just(None),  # a keep-alive ping
    st.tuples(_bodies, st.sampled_from([b"Content-Length", b"l", b"content-LENGTH"])),
)


@given(
    items=st.lists(_items, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=20),
)
def test_any_chunking_yields_the_same_items(
    items: list[tuple[bytes, bytes] | None], cuts: list[int]
) -> None:
    stream = b""
    expected: list[FramedItem] = []
    for n, item in enumerate(items):
        if item is None:
            stream += b"\r\n\r\n"
            expected.append(PING)
        else:
            raw = message(item[0], header=item[1], cseq=n)
            stream += raw
            expected.append(FramedItem("message", raw))
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    framer = StreamFramer()
    assert feed_all(framer, chunks) == expected
    assert framer.buffered == 0


@given(st.binary(max_size=2000))
def test_garbage_frames_or_raises_remote_protocol_error(data: bytes) -> None:
    framer = StreamFramer(max_message_size=1024, max_headers_size=512)
    try:
        for item in framer.feed(data):
            assert item.kind in ("message", "ping")
    except RemoteProtocolError:
        pass
