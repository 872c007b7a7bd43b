"""Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3) and keep-alive pings.

Theory of operation
-------------------
A stream carries messages back to back. Each one is a start-line and headers ending with an
empty line (CRLF CRLF), then exactly `Content-Length` bytes of body; on a stream the header is
mandatory (§18.3, §20.14), so a message without one cannot be delimited and the connection is
lost. Between messages a peer may send keep-alives (RFC 5626 §3.5.1, §4.4.1): a double CRLF
"ping", to be answered with a single CRLF "pong". A lone CRLF before a start-line is ignored
(RFC 3261 §7.5) — it is also what a pong looks like to the side that pinged.

`StreamFramer.feed(data)` appends to a `bytearray` and returns a list of `FramedItem`:
``FramedItem("message", raw_bytes)`` for each complete message and the shared `PING` item
(``kind == "ping"``, ``data == b"\\r\\n\\r\\n"``) for each ping, in stream order. The framer
only delimits: the message bytes are handed unparsed to the SIP parser.

State is two numbers: where to resume the search for the end of the headers (so each byte is
scanned once, however the stream is chunked), and, once the headers are complete, the total
length of the message being waited for. Every buffer is bounded: a header section longer than
`max_headers_size` or a message longer than `max_message_size` raises `RemoteProtocolError`
with status hint 513 (Message Too Large, §21.5.14); a missing or malformed Content-Length
raises it with 400. After any error the framer is failed: the connection must be closed, and
further calls to `feed` raise again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from sipbox.sip.errors import RemoteProtocolError

__all__ = ["PING", "FramedItem", "StreamFramer"]

_CRLF: Final = b"\r\n"
_CRLFCRLF: Final = b"\r\n\r\n"

# RFC 3261 §7.3.1 / §25.1: header-name HCOLON value, HCOLON = *( SP / HTAB ) ":" SWS; a value
# may continue on lines starting with whitespace (LWS folding). `l` is the compact form of
# Content-Length (§7.3.3, §20.14). Matched after the CRLF ending the previous line, so only at
# the start of a header line, case-insensitively (§7.3.1).
_CONTENT_LENGTH_RE: Final = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.IGNORECASE
)
# Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT; ten digits is already > 4 GiB.
_DIGITS_RE: Final = re.compile(rb"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class FramedItem:
    """One thing found on the stream: a complete message (its raw bytes) or a keep-alive ping."""

    kind: Literal["message", "ping"]
    data: bytes


PING: Final = FramedItem("ping", _CRLFCRLF)
"""The one item returned for every RFC 5626 double-CRLF ping (compare with `is` or `.kind`)."""


class StreamFramer:
    """Delimit SIP messages on one stream connection (one framer per connection).

    `max_message_size` bounds a whole message (headers and body); `max_headers_size` bounds the
    start-line and headers (it never exceeds `max_message_size`).
    """

    __slots__ = ("_buffer", "_failed", "_max_headers", "_max_message", "_need", "_scan_from")

    def __init__(self, max_message_size: int = 65536, max_headers_size: int = 32768) -> None:
        if max_message_size <= 0 or max_headers_size <= 0:
            raise ValueError("size bounds must be positive")
        self._max_message = max_message_size
        self._max_headers = min(max_headers_size, max_message_size)
        self._buffer = bytearray()
        self._scan_from = 0  # where the search for CRLFCRLF resumes
        self._need = 0  # total length of the message whose headers are complete, or 0
        self._failed: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned (a partial message or a pending CRLF)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[FramedItem]:
        """Add bytes from the stream; return the messages and pings they complete, in order.

        Raises `RemoteProtocolError` when the stream cannot be framed (the connection must be
        closed); once raised, every later call raises too.
        """
        if self._failed is not None:
            raise RemoteProtocolError(
                f"stream already failed: {self._failed.reason}", self._failed.status_hint
            )
        buf = self._buffer
        buf += data
        items: list[FramedItem] = []
        try:
            while buf:
                if self._need:
                    if len(buf) < self._need:
                        break
                    items.append(FramedItem("message", bytes(buf[: self._need])))
                    del buf[: self._need]
                    self._need = 0
                    continue
                if buf[0] == 13:  # CR: a keep-alive or a stray CRLF before a start-line
                    if buf.startswith(_CRLFCRLF):
                        items.append(PING)
                        del buf[:4]
                        continue
                    if _CRLFCRLF.startswith(buf):
                        break  # "\r", "\r\n" or "\r\n\r": wait to see which
                    if buf.startswith(_CRLF):
                        del buf[:2]  # a lone CRLF (RFC 3261 §7.5; or a pong to our ping)
                        continue
                end = buf.find(_CRLFCRLF, self._scan_from)
                if end < 0:
                    if len(buf) > self._max_headers:
                        raise RemoteProtocolError("header section too large", 513)
                    self._scan_from = max(0, len(buf) - 3)
                    break
                self._scan_from = 0
                header_length = end + 4
                if header_length > self._max_headers:
                    raise RemoteProtocolError("header section too large", 513)
                total = header_length + _content_length(buf, header_length)
                if total > self._max_message:
                    raise RemoteProtocolError("message too large", 513)
                self._need = total
        except RemoteProtocolError as exc:
            self._failed = exc
            buf.clear()
            raise
        return items


def _content_length(buf: bytearray, header_length: int) -> int:
    """The body length declared by the headers in `buf[:header_length]` (RFC 3261 §20.14).

    Repeated Content-Length headers are accepted only when they agree (RFC 7230 §3.3.2 reasons
    apply: disagreeing lengths are how requests get smuggled).
    """
    length: int | None = None
    for match in _CONTENT_LENGTH_RE.finditer(buf, 0, header_length):
        value = match.group(1).replace(b"\r\n", b"").strip(b" \t")
        if _DIGITS_RE.fullmatch(value) is None:
            raise RemoteProtocolError("invalid Content-Length", 400)
        this = int(value)
        if length is not None and this != length:
            raise RemoteProtocolError("conflicting Content-Length headers", 400)
        length = this
    if length is None:
        raise RemoteProtocolError("Content-Length is mandatory on a stream (RFC 3261 §18.3)", 400)
    return length
