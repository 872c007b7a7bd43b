"""Bytes to messages (RFC 3261 §7, §18.3) and the checks a message must pass before use.

`parse_message` does the minimum every datagram needs: size bound, start line, header section
boundary, Content-Length and body. The header lines themselves are split only when first used
(see `message.py`). `check_request` / `check_response` then validate the mandatory headers; a
transaction layer calls them before matching, so a message that reaches the PBX is sound.

Every failure is a `RemoteProtocolError` whose `status_hint` is the answer to send (400, 505,
513...). For responses the hint is ignored: a bad response is dropped.
"""

from __future__ import annotations

import re

from ._abnf import METHOD_RE
from .errors import RemoteProtocolError
from .headers import SINGLE_HEADERS
from .message import Message, Request, Response

DEFAULT_MAX_SIZE = 65536
DEFAULT_MAX_HEADERS = 256

_CONTENT_LENGTH_RE = re.compile(r"\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)
_REQUEST_LINE_RE = re.compile(r"([^ ]+) ([^ ]+) (SIP/[0-9]+\.[0-9]+)\Z")
_STATUS_LINE_RE = re.compile(r"(SIP/[0-9]+\.[0-9]+) ([0-9]{3}) (.*)\Z", re.S)


def parse_message(
    data: bytes,
    *,
    stream: bool = False,
    max_size: int = DEFAULT_MAX_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS,
) -> Message:
    """Parse one message from a datagram (or from one frame cut by `StreamFramer`).

    Over UDP a missing Content-Length means "the rest of the datagram" (§18.3); on a stream it
    is required. A Content-Length longer than the data is an error (400); trailing octets after
    the body are ignored (RFC 4475 §3.1.1.8).
    """
    if len(data) > max_size:
        raise RemoteProtocolError("message too large", 513)
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")  # §7.5: CRLFs before the start line are ignored
    end = data.find(b"\r\n\r\n")
    if end < 0:
        # No blank line: accept a header section that runs to the end (RFC 5118 §4.10 files).
        if not data.endswith(b"\r\n"):
            raise RemoteProtocolError("incomplete message: no end of header section")
        head_bytes = data[:-2]
        rest = b""
    else:
        head_bytes = data[:end]
        rest = data[end + 4 :]
    head = head_bytes.decode("utf-8", "surrogateescape")
    first_end = head.find("\r\n")
    if first_end < 0:
        start_line, header_text = head, ""
    else:
        start_line, header_text = head[:first_end], head[first_end + 2 :]
    if header_text.count("\n") >= max_headers:
        raise RemoteProtocolError("too many header lines", 400)

    body = _body(head, rest, stream)
    message: Message
    if start_line.startswith("SIP/"):
        m = _STATUS_LINE_RE.match(start_line)
        if m is None:
            raise RemoteProtocolError("malformed status line")
        if m.group(1) != "SIP/2.0":
            raise RemoteProtocolError("unsupported SIP version", 505)
        status = int(m.group(2))
        if status < 100 or status > 699:
            raise RemoteProtocolError("status code out of range")
        message = Response(status, m.group(3), None, body)
    else:
        m = _REQUEST_LINE_RE.match(start_line)
        problem: tuple[str, int] | None = None
        if m is None:
            problem = ("malformed request line", 400)
        else:
            method, uri_text, version = m.groups()
            if version != "SIP/2.0":
                problem = ("SIP version not supported", 505)
            elif not METHOD_RE.match(method):
                problem = ("malformed method", 400)
            elif uri_text.startswith("<"):
                problem = ("Request-URI enclosed in <>", 400)
        if problem is not None:
            raise RemoteProtocolError(*problem, partial=_partial(start_line, header_text, body))
        message = Request(method, uri_text, None, body)
    message._headers = None
    message._raw_headers = header_text
    return message


def _partial(start_line: str, header_text: str, body: bytes) -> Request:
    """A stand-in request for answering one whose start line we refuse: the endpoint can copy
    its Via/From/To/Call-ID/CSeq into a stateless error response."""
    first = start_line.split(" ", 1)[0]
    method = first if METHOD_RE.match(first) else "UNKNOWN"
    partial = Request(method, "sip:invalid", None, body)
    partial._headers = None
    partial._raw_headers = header_text
    return partial


def _body(head: str, rest: bytes, stream: bool) -> bytes:
    lengths = _CONTENT_LENGTH_RE.findall(head)
    if not lengths:
        if stream:
            raise RemoteProtocolError("missing Content-Length on a stream transport")
        return rest
    values = {v.strip() for v in lengths}
    if len(values) > 1:
        raise RemoteProtocolError("conflicting Content-Length headers")
    text = values.pop()
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise RemoteProtocolError("bad Content-Length")
    length = int(text)
    if length > len(rest):
        raise RemoteProtocolError("Content-Length larger than the message")
    return rest[:length]


_MANDATORY = ("via", "from", "to", "call-id", "cseq")
# The single-instance headers in a fixed order, so the same duplicate is always reported.
_SINGLE_ORDER = tuple(sorted(SINGLE_HEADERS))


def check_common(message: Message) -> None:
    """Validate what requests and responses share: mandatory headers present once and sound.

    The error names the header so the 400's reason phrase tells the sender what is wrong.
    """
    index = message.headers.index()
    if len(index) < len(message.headers):  # some name repeats: may it?
        for key in _SINGLE_ORDER:
            found = index.get(key)
            if found is not None and len(found) > 1:
                raise RemoteProtocolError(f"Duplicate {_display(key)} header")
    for key in _MANDATORY:
        if key not in index:
            raise RemoteProtocolError(f"Missing {_display(key)} header")
    name = "Via"
    try:
        _ = message.vias
        name = "From"
        _ = message.from_
        name = "To"
        _ = message.to
        name = "CSeq"
        _ = message.cseq
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"Bad {name} header: {exc.reason}", exc.status_hint) from None
    if not message.call_id:
        raise RemoteProtocolError("Bad Call-ID header")


def check_request(request: Request) -> None:
    """Everything a request must satisfy before a transaction is created for it."""
    check_common(request)
    if request.cseq.method != request.method:
        raise RemoteProtocolError("CSeq method does not match the request method")
    name = "Max-Forwards"
    try:
        _ = request.max_forwards
        name = "Request-URI"
        uri = request.uri
        name = "Contact"
        _ = request.contacts
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"Bad {name}: {exc.reason}", exc.status_hint) from None
    if getattr(uri, "headers", None):
        raise RemoteProtocolError("Request-URI must not contain headers")


def check_response(response: Response) -> None:
    """Everything a response must satisfy to be matched to a client transaction."""
    check_common(response)


def _display(key: str) -> str:
    return {"call-id": "Call-ID", "cseq": "CSeq"}.get(key) or "-".join(
        p.capitalize() for p in key.split("-")
    )
