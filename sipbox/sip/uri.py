"""SIP, SIPS, TEL and other URIs (RFC 3261 §19.1, RFC 3966), with §19.1.4 comparison.

A URI is parsed once into an immutable value; `str()` gives it back in canonical form.
The user part is kept as written (escaped), because escapes are decoded only to compare
(`value%2541` decodes once to `value%41`, RFC 4475 §3.1.1.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote_to_bytes

from ._abnf import HOST, format_params, parse_params, remember
from .errors import RemoteProtocolError

# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_WHITESPACE_RE = re.compile(r"[\s<>\"]")

# Parameters that must match when present in either URI (§19.1.4).
_SIGNIFICANT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


@dataclass(frozen=True, slots=True)
class SipUri:
    """A `sip:` or `sips:` URI. `params` keys are lower-case; values as written."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False)
    headers: str | None = None

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def host_bare(self) -> str:
        """The host without IPv6 brackets, as socket functions want it."""
        h = self.host
        return h[1:-1] if h.startswith("[") else h

    def user_decoded(self) -> str | None:
        """The user part with %-escapes decoded once (for look-ups and comparison)."""
        if self.user is None:
            return None
        if "%" not in self.user:
            return self.user
        return unquote_to_bytes(self.user).decode("utf-8", "surrogateescape")

    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_(self, **changes: object) -> SipUri:
        """A copy with some fields changed (`params` must be given as a new dict)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(format_params(self.params))
        if self.headers:
            out.append("?" + self.headers)
        return "".join(out)

    def equivalent(self, other: Uri) -> bool:
        """RFC 3261 §19.1.4 comparison."""
        if not isinstance(other, SipUri) or self.scheme != other.scheme:
            return False
        if self.user_decoded() != other.user_decoded():
            return False
        if _decode(self.password) != _decode(other.password):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        for name in _SIGNIFICANT_PARAMS:
            a, b = self.params.get(name, _MISSING), other.params.get(name, _MISSING)
            if a is _MISSING and b is _MISSING:
                continue
            if a is _MISSING or b is _MISSING or _lower(a) != _lower(b):
                return False
        for name, value in self.params.items():
            if name in other.params and _lower(value) != _lower(other.params[name]):
                return False
        return _header_set(self.headers) == _header_set(other.headers)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A `tel:` URI (RFC 3966): the number as written and its parameters."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False)
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def digits(self) -> str:
        """The number without visual separators (`-`, `.`, `(`, `)`)."""
        return re.sub(r"[\-.()]", "", self.number)

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"

    def equivalent(self, other: Uri) -> bool:
        return (
            isinstance(other, TelUri)
            and self.digits() == other.digits()
            and {k: _lower(v) for k, v in self.params.items()}
            == {k: _lower(v) for k, v in other.params.items()}
        )


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other scheme (`isbn:`, `soap.beep://`...): parsed as opaque text (RFC 4475 §3.3.2)."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def equivalent(self, other: Uri) -> bool:
        return isinstance(other, AbsoluteUri) and str(self) == str(other)


Uri = SipUri | TelUri | AbsoluteUri

_MISSING = object()


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _decode(value: str | None) -> bytes | None:
    return None if value is None else unquote_to_bytes(value)


def _header_set(headers: str | None) -> frozenset[tuple[bytes, bytes]]:
    if not headers:
        return frozenset()
    pairs = []
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        pairs.append((unquote_to_bytes(name).lower(), unquote_to_bytes(value)))
    return frozenset(pairs)


# Parsed URIs by their text. URIs are immutable values (nobody mutates `params`), and the same
# few texts come back all the time (our domain as Request-URI, a phone's AOR and contact in
# every REGISTER refresh), so a hit saves the whole parse. Bounded: cleared when full.
_CACHE: dict[str, Uri] = {}


def parse_uri(text: str) -> Uri:
    """Parse a URI as it appears in a Request-URI or inside `<...>`.

    Raises `RemoteProtocolError` (400) for anything malformed, including whitespace inside the
    URI (RFC 4475 §3.1.2.8) and an IPv6 address without brackets (RFC 5118 §4.2). The value
    returned may be shared with other callers: never mutate it (or its `params`).
    """
    uri = _CACHE.get(text)
    if uri is None:
        uri = remember(_CACHE, text, _parse_uri(text))
    return uri


def _parse_uri(text: str) -> Uri:
    colon = text.find(":")
    if colon <= 0:
        raise RemoteProtocolError(f"not a URI: {text[:40]!r}")
    scheme = text[:colon]
    if not _SCHEME_RE.match(scheme):
        raise RemoteProtocolError(f"bad URI scheme {scheme[:20]!r}")
    if _WHITESPACE_RE.search(text):
        raise RemoteProtocolError("whitespace or delimiter inside a URI")
    scheme = scheme.lower()
    rest = text[colon + 1 :]
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number or not re.match(r"\+?[0-9A-Fa-f*#\-.()]+\Z", number):
            raise RemoteProtocolError(f"bad tel URI number {number[:30]!r}")
        return TelUri(number, parse_params(";" + params) if params else {})
    if not rest:
        raise RemoteProtocolError("empty URI")
    return AbsoluteUri(scheme, rest)


_ESC = r"%[0-9A-Fa-f]{2}"
_PARAMCHAR = rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|{_ESC})"
# The whole sip:/sips: URI after the colon in one match (speed: one C-level pass):
# [ user [ ":" password ] "@" ] hostport *( ";" uri-parameter ) [ "?" headers ]
# The user may contain ';' and '?' (user-unreserved), so it is only taken when an '@' follows.
_SIP_URI_RE = re.compile(
    rf"(?:((?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|{_ESC})+)"
    rf"(?::((?:[A-Za-z0-9\-_.!~*'()&=+$,]|{_ESC})*))?@)?"
    rf"({HOST})(?::([0-9]{{1,5}}))?"
    rf"((?:;{_PARAMCHAR}+(?:={_PARAMCHAR}*)?)*)"
    rf"(?:\?((?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$&=]|{_ESC})*))?\Z"
)


# The same rule without %-escapes: much less backtracking, and identical results on text that
# has no '%' (the escape alternatives of the full rule can then never match).
_PLAIN_PARAMCHAR = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]"
_PLAIN_SIP_URI_RE = re.compile(
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/]+)"
    r"(?::([A-Za-z0-9\-_.!~*'()&=+$,]*))?@)?"
    rf"({HOST})(?::([0-9]{{1,5}}))?"
    rf"((?:;{_PLAIN_PARAMCHAR}+(?:={_PLAIN_PARAMCHAR}*)?)*)"
    r"(?:\?([A-Za-z0-9\-_.!~*'()\[\]/?:+$&=]*))?\Z"
)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    m = (_SIP_URI_RE if "%" in rest else _PLAIN_SIP_URI_RE).match(rest)
    if m is None:
        raise RemoteProtocolError(f"malformed SIP URI near {rest[:40]!r}")
    user, password, host, port_text, param_text, headers = m.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise RemoteProtocolError("port out of range in SIP URI")
    params: dict[str, str | None] = {}
    if param_text:
        for item in param_text[1:].split(";"):
            name, eq, value = item.partition("=")
            name = name.lower()
            if name not in params:
                params[name] = value if eq else None
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=scheme,
        params=params,
        headers=headers,
    )


def parse_sip_uri(text: str) -> SipUri:
    """Parse and require a `sip:`/`sips:` URI (registrar AORs, contacts)."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise RemoteProtocolError(f"expected a sip: or sips: URI, got {uri.scheme}:", 416)
    return uri
