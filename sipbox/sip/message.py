"""SIP requests and responses (RFC 3261 §7): start line, headers, body, and typed accessors.

A message parsed from the wire keeps its header section as text until a header is first asked
for (`Message.headers`), so a datagram that is dropped or answered from the start line alone
costs no header parsing. Typed values (Via list, From, To, CSeq...) are parsed on first use and
cached until the headers change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, TypeVar

from .errors import RemoteProtocolError
from .headers import (
    Contact,
    CSeq,
    Headers,
    NameAddr,
    Via,
    header_key,
    parse_contact,
    parse_cseq,
    parse_delta_seconds,
    parse_name_addr,
    parse_via,
)
from .uri import Uri, parse_uri

T = TypeVar("T")
_MISSING: Final = object()

_UNFOLD_RE = re.compile(r"\r?\n[ \t]+")
_HEADER_LINE_RE = re.compile(r"([^\s:]+)[ \t]*:[ \t]*(.*)\Z", re.S)

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
}


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status) or REASON_PHRASES.get(status // 100 * 100, "Unknown")


class Message:
    """Common part of requests and responses."""

    __slots__ = ("_headers", "_raw_headers", "body")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self._headers = headers
        self._raw_headers: str | None = None
        self.body = body

    # -- headers -------------------------------------------------------------------------
    @property
    def headers(self) -> Headers:
        """The header multimap, parsed from the wire text on first access."""
        headers = self._headers
        if headers is None:
            headers = self._headers = _parse_header_lines(self._raw_headers or "")
            self._raw_headers = None
        return headers

    def _typed(self, key: str, parse: Callable[[Headers], T]) -> T:
        """A typed header value, parsed once; the cache lives in the Headers object and is
        cleared whenever they change."""
        headers = self._headers
        if headers is None:
            headers = self.headers
        cache = headers.typed
        value = cache.get(key, _MISSING)  # not try/except: the first access always misses
        if value is _MISSING:
            value = cache[key] = parse(headers)
        return value  # type: ignore[no-any-return]

    # The accessors read every message call their parser directly instead of through `_typed`:
    # once compiled (mypyc) a direct call is native, a call through a Callable argument is not.
    @property
    def vias(self) -> list[Via]:
        """Every Via element, top first."""
        headers = self._headers or self.headers
        value = headers.typed.get("via", _MISSING)
        if value is _MISSING:
            value = headers.typed["via"] = _parse_vias(headers)
        return value  # type: ignore[no-any-return]

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise RemoteProtocolError("missing Via")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        headers = self._headers or self.headers
        value = headers.typed.get("from", _MISSING)
        if value is _MISSING:
            value = headers.typed["from"] = _parse_from(headers)
        return value  # type: ignore[no-any-return]

    @property
    def to(self) -> NameAddr:
        headers = self._headers or self.headers
        value = headers.typed.get("to", _MISSING)
        if value is _MISSING:
            value = headers.typed["to"] = _parse_to(headers)
        return value  # type: ignore[no-any-return]

    @property
    def call_id(self) -> str:
        headers = self._headers or self.headers
        value = headers.typed.get("call-id", _MISSING)
        if value is _MISSING:
            value = headers.typed["call-id"] = _parse_call_id(headers)
        return value  # type: ignore[no-any-return]

    @property
    def cseq(self) -> CSeq:
        headers = self._headers or self.headers
        value = headers.typed.get("cseq", _MISSING)
        if value is _MISSING:
            value = headers.typed["cseq"] = _parse_cseq_header(headers)
        return value  # type: ignore[no-any-return]

    @property
    def contacts(self) -> list[Contact]:
        headers = self._headers or self.headers
        value = headers.typed.get("contact", _MISSING)
        if value is _MISSING:
            value = headers.typed["contact"] = _parse_contacts(headers)
        return value  # type: ignore[no-any-return]

    @property
    def routes(self) -> list[NameAddr]:
        return self._typed("route", _parse_routes)

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._typed("record-route", _parse_record_routes)

    @property
    def expires(self) -> int | None:
        return self._typed("expires", _parse_expires)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def option_tags(self, name: str) -> list[str]:
        """Tokens of Require / Supported / Proxy-Require (lower-cased)."""
        return [t.strip().lower() for t in self.headers.values(name) if t.strip()]

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    # -- serialization ---------------------------------------------------------------------
    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message as sent on the wire; Content-Length always equals the body length."""
        headers = self.headers
        length = str(len(self.body))
        if headers.get("content-length") != length:
            headers.set("Content-Length", length)
        head = self._start_line() + "\r\n" + headers.serialize() + "\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


class Request(Message):
    """A SIP request. `uri` is parsed from `uri_text` on first use."""

    __slots__ = ("_uri", "method", "uri_text")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body)
        self.method = method
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri: Uri | None = None
        else:
            self.uri_text = str(uri)
            self._uri = uri

    @property
    def uri(self) -> Uri:
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_uri(self.uri_text)
        return uri

    @uri.setter
    def uri(self, value: Uri) -> None:
        self._uri = value
        self.uri_text = str(value)

    @property
    def max_forwards(self) -> int | None:
        headers = self._headers or self.headers
        value = headers.typed.get("max-forwards", _MISSING)
        if value is _MISSING:
            value = headers.typed["max-forwards"] = _parse_max_forwards(headers)
        return value  # type: ignore[no-any-return]

    def _start_line(self) -> str:
        return f"{self.method} {self.uri_text} SIP/2.0"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body)
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _required(headers: Headers, key: str) -> str:
    value = headers.first(key)
    if value is None:
        raise RemoteProtocolError(f"missing {key} header")
    return value


def _parse_vias(h: Headers) -> list[Via]:
    return [parse_via(v) for v in h.values("via")]


def _parse_from(h: Headers) -> NameAddr:
    return parse_name_addr(_required(h, "from"))


def _parse_to(h: Headers) -> NameAddr:
    return parse_name_addr(_required(h, "to"))


def _parse_call_id(h: Headers) -> str:
    return _required(h, "call-id").strip()


def _parse_cseq_header(h: Headers) -> CSeq:
    return parse_cseq(_required(h, "cseq"))


def _parse_contacts(h: Headers) -> list[Contact]:
    return [parse_contact(v) for v in h.values("contact")]


def _parse_routes(h: Headers) -> list[NameAddr]:
    return [parse_name_addr(v) for v in h.values("route")]


def _parse_record_routes(h: Headers) -> list[NameAddr]:
    return [parse_name_addr(v) for v in h.values("record-route")]


def _parse_expires(h: Headers) -> int | None:
    value = h.first("expires")
    return None if value is None else parse_delta_seconds(value)


def _parse_max_forwards(h: Headers) -> int | None:
    value = h.first("max-forwards")
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii() or int(text) > 255:
        raise RemoteProtocolError("Max-Forwards out of range", 400)
    return int(text)


def _parse_header_lines(text: str) -> Headers:
    """Split an unparsed header section into the multimap (unfolding continuation lines)."""
    if not text:
        return Headers()
    if "\n " in text or "\n\t" in text:
        text = _UNFOLD_RE.sub(" ", text)
    entries: list[list[str]] = []
    index: dict[str, list[list[str]]] = {}
    keys = _KEY_CACHE
    for line in text.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise RemoteProtocolError(f"header line without a colon: {line[:30]!r}")
        known = keys.get(name)
        if known is None:
            stripped = name.rstrip(" \t")
            if not stripped or not _NAME_OK.match(stripped):
                raise RemoteProtocolError(f"bad header name {name[:30]!r}")
            known = (header_key(stripped), stripped)
            if len(keys) < 4096:
                keys[name] = known
        entry = [known[0], known[1], value.strip(" \t")]
        entries.append(entry)
        same = index.get(entry[0])
        if same is None:
            index[entry[0]] = [entry]
        else:
            same.append(entry)
    return Headers(entries, index)


_NAME_OK = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# Header names seen before -> key; bounded so odd names cannot grow it without limit.
_KEY_CACHE: dict[str, tuple[str, str]] = {}
