"""Grammar of RFC 3261 §25 as compiled regular expressions and small scanners.

Each rule quotes the ABNF it implements. The scanners work on `str` (header sections are decoded
with `surrogateescape`, so arbitrary octets survive a round trip) and raise
`RemoteProtocolError` — never anything else — on input that does not match.
"""

from __future__ import annotations

import re
from typing import Final, TypeVar

from .errors import RemoteProtocolError

V = TypeVar("V")
#: Entries of each bounded memo of parsed values (URIs, addresses, Vias): the hot values (the
#: phones' own From/To/Contact, our Request-URI) come back right after a clear.
MEMO_MAX: Final = 8192


def remember(memo: dict[str, V], key: str, value: V, limit: int = MEMO_MAX) -> V:
    """Store `value` in a bounded memo (cleared when full) and return it."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN = rf"[{TOKEN_CHARS}]+"
TOKEN_RE = re.compile(rf"{TOKEN}\Z")

# Method = INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
# extension-method = token
METHOD_RE = TOKEN_RE

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
QUOTED_RE = re.compile(QUOTED, re.S)

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
SIP_VERSION_RE = re.compile(r"SIP/([0-9]+)\.([0-9]+)\Z", re.I)

# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF ; Status-Code = 3DIGIT
STATUS_LINE_RE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) (.*)\Z", re.S)

# hostname = *( domainlabel "." ) toplabel [ "." ]; IPv4address; IPv6reference = "[" IPv6address "]"
# The IPv6 rule is deliberately lenient (RFC 5118 §4.10: tolerate the three-colon form).
HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?\.?|[0-9.]+)"
HOST_RE = re.compile(rf"{HOST}\Z")
HOSTPORT_RE = re.compile(rf"({HOST})(?::([0-9]{{1,5}}))?\Z")

# gen-value = token / host / quoted-string (host covers bracketed IPv6 in received=, RFC 5118 §4.5)
PARAM_VALUE = rf"(?:{QUOTED}|\[[0-9A-Fa-f:.]+\]|[{TOKEN_CHARS}:\[\]]+)"

# generic-param = token [ EQUAL gen-value ] ; each preceded by SEMI, LWS allowed around ; and =
_PARAM_RE = re.compile(rf"[ \t]*;[ \t]*({TOKEN})(?:[ \t]*=[ \t]*({PARAM_VALUE}))?[ \t]*", re.S)

# One element of a comma-separated header value: quoted strings and <...> may hold commas.
_LIST_SPLIT_RE = re.compile(r'"(?:[^"\\]|\\.)*"|<[^>]*>|,|"', re.S)


def parse_params(text: str, start: int = 0) -> dict[str, str | None]:
    """Parse `*( SEMI generic-param )` from `text[start:]` to its end.

    Names are lower-cased (parameter names are case-insensitive, §7.3.1); values are kept as
    written, quotes included, because some values (tags, branches) are compared case-sensitively.
    A duplicate name keeps its first value. An empty parameter (`;;`) is an error (RFC 4475
    §3.1.2.1).
    """
    params: dict[str, str | None] = {}
    pos = start
    end = len(text)
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise RemoteProtocolError(f"malformed parameter near {text[pos : pos + 20]!r}")
            break
        name = m.group(1).lower()
        if name not in params:
            params[name] = m.group(2)
        pos = m.end()
    return params


def format_params(params: dict[str, str | None]) -> str:
    """Serialize parameters back as `;name=value` in their order."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value into its elements (§7.3.1).

    Commas inside quoted strings and inside `<...>` do not separate. An empty element (`a,,b`)
    or an unterminated quoted string is an error.
    """
    if "," not in value and '"' not in value:
        return [value.strip()]
    parts: list[str] = []
    last = 0
    for m in _LIST_SPLIT_RE.finditer(value):
        token = m.group(0)
        if token == ",":
            parts.append(value[last : m.start()].strip())
            last = m.end()
        elif token == '"':
            raise RemoteProtocolError("unterminated quoted string")
    parts.append(value[last:].strip())
    if any(not p for p in parts):
        raise RemoteProtocolError("empty element in a comma-separated list")
    return parts


def unquote(value: str) -> str:
    """Remove the quotes of a quoted-string and resolve its quoted-pairs."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "\\" in inner:
            return re.sub(r"\\(.)", r"\1", inner, flags=re.S)
        return inner
    return value


def quote(value: str) -> str:
    """Write `value` as a quoted-string, escaping `"` and `\\`."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
