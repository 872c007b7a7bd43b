"""Header fields: an ordered, case-insensitive multimap, and typed header values.

The multimap keeps every header line as written (name spelling and value) so that unknown
headers travel verbatim; which of them a B2BUA copies to the other leg is the PBX's policy.
Look-ups use the lower-case full name: compact forms (RFC 3261 §7.3.3) are expanded on entry.

Typed values (`NameAddr`, `Via`, `CSeq`) are parsed only when asked for; see `message.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._abnf import (
    QUOTED_RE,
    TOKEN,
    TOKEN_RE,
    format_params,
    parse_params,
    quote,
    remember,
    split_list,
    unquote,
)
from .errors import RemoteProtocolError
from .uri import SipUri, Uri, parse_uri

# Compact forms: RFC 3261 §7.3.3, plus o/u (RFC 6665), r (RFC 3515), x (RFC 4028),
# y (RFC 4474), b (RFC 3892) and a/j/d (RFC 3841).
COMPACT_FORMS: dict[str, str] = {
    "v": "via",
    "i": "call-id",
    "f": "from",
    "t": "to",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "x": "session-expires",
    "y": "identity",
    "b": "referred-by",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
}

# How we spell a header we create (canonical capitalisation).
CANONICAL_NAMES: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "rack": "RAck",
    "rseq": "RSeq",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "p-called-party-id": "P-Called-Party-ID",
    "mime-version": "MIME-Version",
}

# Headers whose value may be a comma-separated list (§7.3.1); others are never split.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "path",
        "service-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "in-reply-to",
        "p-associated-uri",
        "p-asserted-identity",
        "p-preferred-identity",
        "diversion",
        "history-info",
        "reason",
        "warning",
    }
)

# Headers that may appear at most once (RFC 4475 §3.3.8).
SINGLE_HEADERS: frozenset[str] = frozenset(
    {"to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type", "expires"}
)

_NAME_RE = re.compile(rf"{TOKEN}\Z")


def header_key(name: str) -> str:
    """The look-up key of a header name: lower case, compact form expanded."""
    key = _KEYS.get(name)
    if key is None:
        key = name.lower()
        key = COMPACT_FORMS.get(key, key)
    return key


# Names we look up all the time, already in key form.
_KEYS: dict[str, str] = {
    k: k
    for k in (
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "max-forwards",
        "content-length",
        "content-type",
        "route",
        "record-route",
        "expires",
        "authorization",
        "proxy-authorization",
        "require",
        "supported",
        "user-agent",
        "allow",
        "path",
    )
}


def canonical_name(key: str) -> str:
    """How we spell a header when we write it."""
    name = CANONICAL_NAMES.get(key)
    if name is None:
        name = "-".join(part.capitalize() for part in key.split("-"))
    return name


class Headers:
    """Ordered, case-insensitive header multimap.

    Stored as a list of `[key, name_as_written, value]` entries plus an index from key to its
    entries, built on first look-up. Values are whole header lines (after unfolding); `values()`
    splits list headers into their comma-separated elements. `generation` increases on every
    change so cached typed values know when they are stale.
    """

    __slots__ = ("_entries", "_index", "generation", "typed")

    def __init__(
        self,
        entries: list[list[str]] | None = None,
        index: dict[str, list[list[str]]] | None = None,
    ) -> None:
        self._entries: list[list[str]] = entries if entries is not None else []
        self._index: dict[str, list[list[str]]] | None = index
        self.generation = 0
        # Typed values parsed from these headers (see Message): cleared on every change.
        self.typed: dict[str, Any] = {}

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Headers:
        return cls([[header_key(n), n, v] for n, v in pairs])

    def copy(self) -> Headers:
        return Headers([list(e) for e in self._entries])

    def _lookup(self, key: str) -> list[list[str]]:
        index = self._index
        if index is None:
            index = {}
            for e in self._entries:
                found = index.get(e[0])
                if found is None:
                    index[e[0]] = [e]
                else:
                    found.append(e)
            self._index = index
        return index.get(key, _NONE)

    def _changed(self, key: str) -> None:
        self._index = None
        self.generation += 1
        typed = self.typed
        if typed:
            typed.pop(key, None)

    def first(self, key: str) -> str | None:
        """`get` for a key already in look-up form (lower case, full name): the hot path."""
        index = self._index
        found = (index if index is not None else self._index_now()).get(key)
        return found[0][2] if found else None

    def index(self) -> dict[str, list[list[str]]]:
        """Key -> its entries, in order (read-only view for validators)."""
        index = self._index
        return index if index is not None else self._index_now()

    def _index_now(self) -> dict[str, list[list[str]]]:
        self._lookup("")
        assert self._index is not None
        return self._index

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, name, value in self._entries:
            yield name, value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return bool(self._lookup(header_key(name)))

    def lower_names(self) -> list[str]:
        """Lower-case full names in order of appearance (repeated names repeated)."""
        return [e[0] for e in self._entries]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first header line's value, or `default`."""
        found = self._lookup(header_key(name))
        return found[0][2] if found else default

    def get_all(self, name: str) -> list[str]:
        """Every header line's value for `name`, unsplit."""
        return [e[2] for e in self._lookup(header_key(name))]

    def count(self, name: str) -> int:
        return len(self._lookup(header_key(name)))

    def values(self, name: str) -> list[str]:
        """All elements of a list header across its lines (commas split, §7.3.1)."""
        key = header_key(name)
        found = self._lookup(key)
        if key not in LIST_HEADERS:
            return [e[2] for e in found]
        if len(found) == 1:
            return split_list(found[0][2])
        out: list[str] = []
        for e in found:
            out.extend(split_list(e[2]))
        return out

    def add(self, name: str, value: str) -> None:
        """Append a header line at the end (the index stays valid: the line goes last)."""
        key = header_key(name)
        entry = [key, name if name != key else canonical_name(key), value]
        self._entries.append(entry)
        index = self._index
        if index is not None:
            found = index.get(key)
            if found is None:
                index[key] = [entry]
            else:
                found.append(entry)
        self.generation += 1
        typed = self.typed
        if typed:
            typed.pop(key, None)

    def add_first(self, name: str, value: str) -> None:
        """Insert a header line before the first line of the same name (or at the top)."""
        key = header_key(name)
        entry = [key, name if name != key else canonical_name(key), value]
        for i, e in enumerate(self._entries):
            if e[0] == key:
                self._entries.insert(i, entry)
                break
        else:
            self._entries.insert(0, entry)
        self._changed(key)

    def set(self, name: str, value: str) -> None:
        """Replace every line of `name` by one line, in the place of the first one."""
        key = header_key(name)
        entries = self._entries
        for i, e in enumerate(entries):
            if e[0] == key:
                e[2] = value
                if len(self._lookup(key)) > 1:
                    self._entries = entries[: i + 1] + [x for x in entries[i + 1 :] if x[0] != key]
                break
        else:
            entries.append([key, name if name != key else canonical_name(key), value])
        self._changed(key)

    def remove(self, name: str) -> int:
        """Remove every line of `name`; return how many were removed."""
        key = header_key(name)
        before = len(self._entries)
        self._entries = [e for e in self._entries if e[0] != key]
        removed = before - len(self._entries)
        if removed:
            self._changed(key)
        return removed

    def pop_first(self, name: str) -> str | None:
        """Remove the first element of a list header (e.g. the top Via); return it."""
        key = header_key(name)
        for i, e in enumerate(self._entries):
            if e[0] == key:
                elements = split_list(e[2]) if key in LIST_HEADERS else [e[2]]
                first = elements[0]
                if len(elements) > 1:
                    e[2] = ", ".join(elements[1:])
                else:
                    del self._entries[i]
                self._changed(key)
                return first
        return None

    def replace_first_element(self, name: str, value: str) -> bool:
        """Replace the first element of `name` (the top Via...) where it stands, keeping the
        other elements and lines; False if there is none. Cheaper than `pop_first` +
        `add_first`: the index stays valid (typed values of `name` are dropped)."""
        key = header_key(name)
        found = self._lookup(key)
        if not found:
            return False
        entry = found[0]
        if key in LIST_HEADERS and ("," in entry[2] or '"' in entry[2]):
            elements = split_list(entry[2])
            elements[0] = value
            entry[2] = ", ".join(elements)
        else:
            entry[2] = value
        self.generation += 1
        typed = self.typed
        if typed:
            typed.pop(key, None)
        return True

    def serialize(self) -> str:
        """`Name: value\\r\\n` for every line, in order."""
        return "".join([f"{name}: {value}\r\n" for _, name, value in self._entries])


_NONE: list[list[str]] = []


class NameAddr:
    """`name-addr / addr-spec` with header parameters (From, To, Contact, Route...).

    We always write brackets, which is always legal and avoids the URI/header parameter
    ambiguity (RFC 4475 §3.3.12). A value object: equal and hashed by URI and display name
    (not by parameters), never mutated once built (parsed values are shared through the memo).
    A plain slotted class, not a frozen dataclass: built several times per message, and a
    frozen dataclass costs ~20x more to construct once compiled (mypyc).
    """

    __slots__ = ("display", "params", "uri")

    def __init__(
        self, uri: Uri, display: str | None = None, params: dict[str, str | None] | None = None
    ) -> None:
        self.uri = uri
        self.display = display
        self.params: dict[str, str | None] = {} if params is None else params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return self.uri == other.uri and self.display == other.display

    def __hash__(self) -> int:
        return hash((self.uri, self.display))

    def __repr__(self) -> str:
        return f"NameAddr(uri={self.uri!r}, display={self.display!r}, params={self.params!r})"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def sip_uri(self) -> SipUri:
        """The URI, which must be sip:/sips: (raises a 416 hint otherwise)."""
        if not isinstance(self.uri, SipUri):
            raise RemoteProtocolError(f"unsupported URI scheme {self.uri.scheme}", 416)
        return self.uri

    def with_tag(self, tag: str) -> NameAddr:
        params = dict(self.params)
        params["tag"] = tag
        return NameAddr(self.uri, self.display, params)

    def with_params(self, params: dict[str, str | None]) -> NameAddr:
        return NameAddr(self.uri, self.display, params)

    def __str__(self) -> str:
        if self.display:
            return f"{quote(self.display)} <{self.uri}>{format_params(self.params)}"
        return f"<{self.uri}>{format_params(self.params)}"


_DISPLAY_TOKENS_RE = re.compile(rf"{TOKEN}(?:[ \t]+{TOKEN})*\Z")
_SIMPLE_NAME_ADDR_RE = re.compile(
    rf"[ \t]*((?:{TOKEN}(?:[ \t]+{TOKEN})*)?)[ \t]*<([^<>\s\"]+)>([ \t]*;[^<>\"]*)?[ \t]*\Z"
)


_QUOTED_NAME_ADDR_RE = re.compile(
    r'[ \t]*"([^"\\\r\n]*)"[ \t]*<([^<>\s\"]+)>([ \t]*;[^<>\"]*)?[ \t]*\Z'
)
# Parsed name-addr values by their text: the same From/To/Contact come back in every refresh
# and retransmission. Values are immutable (nobody mutates `params`); bounded, cleared when full.
_NAME_ADDR_CACHE: dict[str, NameAddr] = {}


def parse_name_addr(value: str) -> NameAddr:
    """Parse one element of From, To, Contact, Route, Record-Route, Refer-To...

    Strict where RFC 4475 asks (unbalanced quotes, spaces inside `<>`, unquoted commas), lenient
    where it asks (a display-name token written against `<`, §3.1.1.6). The value returned may
    be shared with other callers: never mutate it (or its `params`).
    """
    found = _NAME_ADDR_CACHE.get(value)
    if found is None:
        tagged = _with_fresh_tag(value)
        if tagged is not None:
            return tagged
        found = remember(_NAME_ADDR_CACHE, value, _parse_name_addr(value))
    return found


def _with_fresh_tag(value: str) -> NameAddr | None:
    """`<uri>;...;tag=T` parsed as the memoised `<uri>;...` plus `tag=T`: every dialog and
    every out-of-dialog request brings a new tag, so the whole text is never seen twice and
    would only churn the memo. The same result as a full parse (a property test checks it);
    None when the text does not end in a plain `;tag=token` (then the full parse runs)."""
    cut = value.rfind(";tag=")
    if cut <= 0:
        return None
    tag = value[cut + 5 :]
    if not TOKEN_RE.match(tag):
        return None
    try:
        base = parse_name_addr(value[:cut])
    except RemoteProtocolError:
        return None  # let the full parse report the error
    if "tag" in base.params:
        return None  # a duplicate keeps the first value: the full parse knows
    params = dict(base.params)
    params["tag"] = tag
    return NameAddr(base.uri, base.display, params)


def _parse_name_addr(value: str) -> NameAddr:
    m = _SIMPLE_NAME_ADDR_RE.match(value)
    if m is not None:  # fast path: [token-display] <uri> [params], no quotes
        words, uri_text, rest = m.groups()
        params = parse_params(rest) if rest else {}
        return NameAddr(parse_uri(uri_text), words or None, params)
    m = _QUOTED_NAME_ADDR_RE.match(value)
    if m is not None:  # fast path: "display without escapes" <uri> [params]
        quoted, uri_text, rest = m.groups()
        params = parse_params(rest) if rest else {}
        return NameAddr(parse_uri(uri_text), quoted, params)
    text = value.strip()
    if not text:
        raise RemoteProtocolError("empty address")
    display: str | None = None
    if text[0] == '"':
        m = QUOTED_RE.match(text)
        if m is None:
            raise RemoteProtocolError("unterminated quoted display name")
        display = unquote(m.group(0))
        rest = text[m.end() :].lstrip()
        if not rest.startswith("<"):
            raise RemoteProtocolError("quoted display name not followed by <URI>")
        text = rest
    lt = text.find("<")
    if lt >= 0:
        if display is None and lt > 0:
            words = text[:lt].strip()
            if words:
                if not _DISPLAY_TOKENS_RE.match(words):
                    raise RemoteProtocolError("display name must be tokens or a quoted string")
                display = words
        gt = text.find(">", lt)
        if gt < 0:
            raise RemoteProtocolError("missing '>' after URI")
        uri_text = text[lt + 1 : gt]
        if uri_text != uri_text.strip():
            raise RemoteProtocolError("whitespace inside <URI>")
        uri = parse_uri(uri_text)
        params = parse_params(text, gt + 1) if gt + 1 < len(text) else {}
        return NameAddr(uri, display, params)
    # addr-spec: parameters after the URI belong to the header (§20.10); a bare URI may not
    # contain ',', ';' or '?' of its own (RFC 4475 §3.1.2.13).
    semi = text.find(";")
    uri_text = text if semi < 0 else text[:semi]
    if "?" in uri_text or "," in uri_text:
        raise RemoteProtocolError("URI with headers must be enclosed in <>")
    uri = parse_uri(uri_text.rstrip())
    params = parse_params(text, semi) if semi >= 0 else {}
    return NameAddr(uri, None, params)


class Contact:
    """A Contact element: an address, or the `*` wildcard of REGISTER (§10.2.2). A value
    object (see `NameAddr` for why not a frozen dataclass)."""

    __slots__ = ("address",)

    def __init__(self, address: NameAddr | None) -> None:
        self.address = address

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Contact):
            return NotImplemented
        return self.address == other.address

    def __hash__(self) -> int:
        return hash(self.address)

    def __repr__(self) -> str:
        return f"Contact(address={self.address!r})"

    @property
    def is_star(self) -> bool:
        return self.address is None

    @property
    def expires(self) -> int | None:
        if self.address is None:
            return None
        value = self.address.params.get("expires")
        return parse_delta_seconds(value) if value is not None else None


def parse_contact(value: str) -> Contact:
    if value.strip() == "*":
        return _STAR
    return Contact(parse_name_addr(value))


_STAR = Contact(None)


class Via:
    """One Via element (§20.42): transport, sent-by and parameters. A value object, equal and
    hashed by protocol, transport and sent-by (not by parameters); see `NameAddr` for why
    not a frozen dataclass (two are built per request)."""

    __slots__ = ("host", "params", "port", "protocol", "transport")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.params: dict[str, str | None] = {} if params is None else params
        self.protocol = protocol

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (
            self.transport == other.transport
            and self.host == other.host
            and self.port == other.port
            and self.protocol == other.protocol
        )

    def __hash__(self) -> int:
        return hash((self.transport, self.host, self.port, self.protocol))

    def __repr__(self) -> str:
        return (
            f"Via(transport={self.transport!r}, host={self.host!r}, port={self.port!r}, "
            f"params={self.params!r}, protocol={self.protocol!r})"
        )

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        value = self.params.get("received")
        if value and value.startswith("["):
            return value[1:-1]
        return value

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return int(value) if value and value.isascii() and value.isdigit() else None

    @property
    def host_bare(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def sent_by(self) -> tuple[str, int | None]:
        return self.host_bare, self.port

    def with_params(self, params: dict[str, str | None]) -> Via:
        return Via(self.transport, self.host, self.port, params, self.protocol)

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hp}{format_params(self.params)}"


_VIA_RE = re.compile(
    rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


# Parsed Via elements by their text with the branch value cut out: a client's Via differs
# from one request to the next only in its branch (§8.1.1.7). Bounded, cleared when full.
_VIA_CACHE: dict[str, Via] = {}


def parse_via(value: str) -> Via:
    """Parse one Via element, tolerating LWS around `/` and `:` (RFC 4475 §3.1.1.1).

    The value returned is not shared, but its parameters may have been copied from an earlier
    parse of the same text with another branch (a property test checks it equals a full parse).
    """
    cut = value.find(";branch=")
    if cut < 0 or '"' in value:  # unquoted: every ';' separates parameters
        return _parse_via(value)
    start = cut + 8
    end = value.find(";", start)
    branch = value[start:] if end < 0 else value[start:end]
    if not branch or not TOKEN_RE.match(branch):
        return _parse_via(value)
    key = value[:start] if end < 0 else value[:start] + value[end:]
    template = _VIA_CACHE.get(key)
    if template is None:
        return remember(_VIA_CACHE, key, _parse_via(value))
    params = dict(template.params)
    params["branch"] = branch
    return Via(template.transport, template.host, template.port, params, template.protocol)


def _parse_via(value: str) -> Via:
    m = _VIA_RE.match(value)
    if m is None:
        raise RemoteProtocolError("malformed Via")
    name, version, transport, host, port_text = m.groups()
    if name.upper() != "SIP":
        raise RemoteProtocolError("Via protocol is not SIP")
    if version != "2.0":
        raise RemoteProtocolError("unsupported SIP version in Via", 505)
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise RemoteProtocolError("Via port out of range")
    params = parse_params(value, m.end())
    branch = params.get("branch", "")
    if branch is not None and branch == "" and "branch" in params:
        raise RemoteProtocolError("empty Via branch")
    return Via(transport.upper(), host, port, params)


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq (§20.16): a 32-bit sequence number and a method."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSEQ_RE = re.compile(rf"[ \t]*([0-9]{{1,10}})[ \t]+({TOKEN})[ \t]*\Z")
MAX_CSEQ = 2**31 - 1 + 2**31  # 2**32 - 1


_CSEQ_CACHE: dict[str, CSeq] = {}


def parse_cseq(value: str) -> CSeq:
    found = _CSEQ_CACHE.get(value)
    if found is None:
        found = remember(_CSEQ_CACHE, value, _parse_cseq(value), 1024)
    return found


def _parse_cseq(value: str) -> CSeq:
    m = _CSEQ_RE.match(value)
    if m is None:
        raise RemoteProtocolError("malformed CSeq")
    seq = int(m.group(1))
    if seq > MAX_CSEQ:
        raise RemoteProtocolError("CSeq number out of range")
    return CSeq(seq, m.group(2))


def parse_delta_seconds(value: str) -> int:
    """delta-seconds: digits; values beyond 2**32-1 saturate (RFC 3261 §20.19 says so for
    Expires, RFC 4475 §3.1.2.4), negative or non-numeric values are errors."""
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise RemoteProtocolError(f"bad delta-seconds {text[:20]!r}")
    number = int(text[:12])
    return min(number, MAX_CSEQ)


def parse_token_list(value: str) -> list[str]:
    """Option tags, methods...: comma-separated tokens."""
    out = []
    for item in split_list(value):
        if not TOKEN_RE.match(item):
            raise RemoteProtocolError(f"bad token {item[:20]!r}")
        out.append(item)
    return out


def is_token(text: str) -> bool:
    return bool(_NAME_RE.match(text))
