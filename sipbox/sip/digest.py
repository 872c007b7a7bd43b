"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Theory of operation
-------------------
*Header values.* `parse_credentials` reads an Authorization / Proxy-Authorization value and
`parse_challenge` a WWW-Authenticate / Proxy-Authenticate value. Both accept the scheme in any
case, quoted strings with backslash escapes, tokens, and optional whitespace around ``=`` and
``,``; anything else raises `RemoteProtocolError` (and nothing else: a property test checks
it). Parameter names are case-insensitive; a repeated parameter or a missing mandatory one is an
error; unknown parameters are kept, in order, in ``extra``. `format_challenge` and
`format_credentials` write the canonical form back.

*Hashes.* ``H`` is MD5 or SHA-256 (RFC 7616 §3.4.1; RFC 8760 for SIP). The stored secret is
``HA1 = H(username ":" realm ":" password)`` (`compute_ha1`); the ``-sess`` variants derive a
per-nonce key from it (`session_ha1`), which `compute_response` does by itself, so callers always
pass the stored HA1. Without ``qop`` the response is the RFC 2069 form
``H(HA1 ":" nonce ":" HA2)``; with ``qop=auth`` / ``auth-int`` it is
``H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)`` where ``HA2 = H(method ":" uri)``, or
``H(method ":" uri ":" H(body))`` for ``auth-int``.

*Stateless nonces.* The server keeps no per-challenge state (`NonceService`, after Kamailio's
``nonce.c``). A nonce is base64url(issue time in ms ‖ random bytes ‖ truncated
HMAC-SHA256(secret, time ‖ random ‖ realm)). Any node holding the secret can check it; the
application keeps the secret in ``state_dir`` so nonces survive a restart. A nonce is valid for
``lifetime`` seconds after issue and is refused (stale) from that instant on, or when it claims to
be issued more than ``max_skew`` seconds in the future.

*Replay protection.* With ``qop``, each request carries a nonce count ``nc``. The service keeps
a bounded table (nonce -> highest nc seen); a repeated or lower ``nc`` is `NonceCheck.REPLAYED`,
which the server answers like a stale nonce (a fresh challenge with ``stale=true``), not as an
authentication failure. Entries leave the table when their nonce expires; when the table is full
the entry with the oldest nonce is evicted and its issue time becomes a watermark: a nonce
issued at or before the watermark that is no longer in the table is also reported REPLAYED (it
cannot be proven fresh), so a full table costs an extra challenge round trip, never a replay.
Without ``qop`` there is no ``nc``: such a nonce may be reused freely until it expires (RFC 2069
has no replay protection; offer ``qop`` — the default — to get it).

*Verification order* (`DigestAuthenticator.verify`): structural checks (realm, algorithm, qop,
forged nonce) fail first; then the response hash is compared (`hmac.compare_digest`); only a
correct response can be told its nonce is stale (RFC 2617 §3.2.1: stale means "valid digest,
old nonce"), and only a correct response records its ``nc``, so a guesser can neither learn
anything from ``stale`` nor burn a legitimate client's counts.

*Usernames.* The response is computed over the username exactly as sent. A UA configured with
``user@realm`` as its authentication name hashes ``user@realm``, so the HA1 of the plain user does
not match it; that is why the HA1 source receives the username as sent: it may look up
``credentials.user_part(realm)`` and return an HA1 it stored for the ``user@realm`` form (or
return ``None``). ``userhash`` (RFC 7616 §3.4.4) is parsed but not supported by the server.

Randomness is injected (``random_bytes``) and time is passed in (``now``): nothing here reads a
clock or an entropy source.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import heapq
import hmac
import re
import struct
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sipbox.sip.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "DigestAuthenticator",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "HA1Source",
    "NonceCheck",
    "NonceService",
    "VerifyOutcome",
    "VerifyResult",
    "answer_challenge",
    "base_algorithm",
    "build_credentials",
    "canonical_algorithm",
    "choose_challenge",
    "compute_ha1",
    "compute_response",
    "format_challenge",
    "format_credentials",
    "hash_hex",
    "parse_challenge",
    "parse_credentials",
    "session_ha1",
    "uri_matches",
]

#: Longest header value we parse; longer is a peer's fault (every buffer has a bound).
MAX_VALUE_LENGTH = 16384

# ---------------------------------------------------------------------------------------------
# Algorithms (RFC 7616 §3.4.1, RFC 8760 §2)

#: Canonical spellings, in the order of preference for nothing in particular.
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
_CANONICAL: dict[str, str] = {name.upper(): name for name in SUPPORTED_ALGORITHMS}
#: Client preference when several challenges are offered (RFC 8760 §2.4: strongest first).
_PREFERENCE: tuple[str, ...] = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
_QOPS: frozenset[str] = frozenset({"auth", "auth-int"})


def canonical_algorithm(name: str | None) -> str | None:
    """The canonical spelling of an algorithm name, compared case-insensitively.

    ``None`` (the parameter was absent) means MD5 (RFC 2617 §3.2.1); an unknown name gives
    ``None``.
    """
    if name is None:
        return "MD5"
    return _CANONICAL.get(name.upper())


def _require_algorithm(name: str | None) -> str:
    canonical = canonical_algorithm(name)
    if canonical is None:
        raise ValueError(f"unsupported digest algorithm {name!r}")
    return canonical


def base_algorithm(name: str | None) -> str:
    """The hash behind an algorithm: ``"MD5"`` or ``"SHA-256"`` (``-sess`` removed).

    Raises `ValueError` for an unsupported name.
    """
    canonical = _require_algorithm(name)
    return canonical.removesuffix("-sess")


def hash_hex(algorithm: str | None, data: str | bytes) -> str:
    """``H(data)`` as lowercase hex for `algorithm` (strings are hashed as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if base_algorithm(algorithm) == "MD5":
        return hashlib.md5(raw, usedforsecurity=False).hexdigest()
    return hashlib.sha256(raw).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str | None = "MD5") -> str:
    """The stored secret ``H(username ":" realm ":" password)`` (RFC 7616 §3.4.2).

    For ``-sess`` algorithms this is still the stored value; the per-nonce key is derived by
    `session_ha1` (done by `compute_response` itself).
    """
    return hash_hex(algorithm, f"{username}:{realm}:{password}")


def session_ha1(ha1: str, nonce: str, cnonce: str, algorithm: str | None) -> str:
    """The ``-sess`` session key ``H(HA1 ":" nonce ":" cnonce)`` (RFC 7616 §3.4.2)."""
    return hash_hex(algorithm, f"{ha1}:{nonce}:{cnonce}")


def _format_nc(nc: int | str) -> str:
    if isinstance(nc, str):
        return nc
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError(f"nonce count out of range: {nc}")
    return f"{nc:08x}"


def compute_response(
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str | None = "MD5",
    qop: str | None = None,
    nc: int | str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest (RFC 7616 §3.4.1; RFC 2069 form when `qop` is None).

    `ha1` is the *stored* HA1 (`compute_ha1`); for ``-sess`` algorithms the session key is
    derived here from `nonce` and `cnonce`. `qop` is hashed as given (``auth`` / ``auth-int``,
    matched case-insensitively). `nc` is an int (written as 8 hex digits) or the string exactly
    as received. `body` is only used by ``auth-int``. Raises `ValueError` for an unsupported
    algorithm or qop, or when `cnonce`/`nc` are missing where needed.
    """
    canonical = _require_algorithm(algorithm)
    if canonical.endswith("-sess"):
        if cnonce is None:
            raise ValueError(f"{canonical} needs a cnonce")
        ha1 = session_ha1(ha1, nonce, cnonce, canonical)
    if qop is None:
        ha2 = hash_hex(canonical, f"{method}:{uri}")
        return hash_hex(canonical, f"{ha1}:{nonce}:{ha2}")
    kind = qop.lower()
    if kind not in _QOPS:
        raise ValueError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise ValueError("qop needs nc and cnonce")
    if kind == "auth-int":
        ha2 = hash_hex(canonical, f"{method}:{uri}:{hash_hex(canonical, body)}")
    else:
        ha2 = hash_hex(canonical, f"{method}:{uri}")
    return hash_hex(canonical, f"{ha1}:{nonce}:{_format_nc(nc)}:{cnonce}:{qop}:{ha2}")


# ---------------------------------------------------------------------------------------------
# Grammar (RFC 3261 §25.1 and §25 "Authorization"/"WWW-Authenticate"; RFC 2617 §3.2)

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN)
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII   (surrogates excluded: not UTF-8)
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
_QDTEXT = "[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\ud7ff\\ue000-\\U0010ffff]"
_QUOTED_PAIR = "\\\\[\\x00-\\x09\\x0b\\x0c\\x0e-\\x7f]"
# A run of qdtext (the same set, written as a negated class): `qdtext* (quoted-pair qdtext*)*`
# matches exactly what `(qdtext / quoted-pair)*` does without one alternation per character
# (2x faster on a nonce or response value).
_QDTEXT_RUN = '[^\\x00-\\x08\\x0a-\\x1f"\\\\\\x7f\\ud800-\\udfff]*'
# LWS = [*WSP CRLF] 1*WSP   (folded lines are unfolded first)
_FOLD_RE = re.compile(r"\r?\n[ \t]")
# credentials = "Digest" LWS digest-response
_SCHEME_RE = re.compile(rf"[ \t]*({_TOKEN})(?:[ \t]+|\Z)")
# auth-param = auth-param-name EQUAL ( token / quoted-string );  EQUAL = SWS "=" SWS
_PARAM_RE = re.compile(
    rf"({_TOKEN})[ \t]*=[ \t]*"
    rf"(?:({_TOKEN})|\"({_QDTEXT_RUN}(?:{_QUOTED_PAIR}{_QDTEXT_RUN})*)\")[ \t]*"
)
# COMMA = SWS "," SWS
_COMMA_RE = re.compile(r",[ \t]*")
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_NC_RE = re.compile(r"[0-9A-Fa-f]{1,8}")


def _parse_params(value: str, what: str) -> dict[str, str]:
    """Split ``Digest a=b, c="d"`` into lowercase names -> unescaped values, in order."""
    if len(value) > MAX_VALUE_LENGTH:
        raise RemoteProtocolError(f"{what} too long")
    text = _FOLD_RE.sub(" ", value) if "\n" in value else value
    m = _SCHEME_RE.match(text)
    if m is None:
        raise RemoteProtocolError(f"{what}: missing scheme")
    if m.group(1).lower() != "digest":
        raise RemoteProtocolError(f"{what}: unsupported scheme {m.group(1)!r}")
    end = len(text.rstrip(" \t"))
    pos = m.end()
    params: dict[str, str] = {}
    if pos >= end:
        raise RemoteProtocolError(f"{what}: no parameters")
    while True:
        pm = _PARAM_RE.match(text, pos, end)
        if pm is None:
            raise RemoteProtocolError(f"{what}: malformed parameter at offset {pos}")
        name = pm.group(1).lower()
        if name in params:
            raise RemoteProtocolError(f"{what}: duplicate parameter {name!r}")
        token, quoted = pm.group(2), pm.group(3)
        if token is not None:
            params[name] = token
        else:
            params[name] = _UNESCAPE_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = pm.end()
        if pos == end:
            return params
        cm = _COMMA_RE.match(text, pos, end)
        if cm is None:
            raise RemoteProtocolError(f"{what}: expected ',' at offset {pos}")
        pos = cm.end()


def _quote(value: str) -> str:
    """A quoted-string for `value`: ``"`` and ``\\`` and control characters escaped."""
    if "\r" in value or "\n" in value:
        raise LocalProtocolError("a header parameter cannot contain CR or LF")
    out = []
    for ch in value:
        if ch in '"\\' or (ch < " " and ch != "\t") or ch == "\x7f":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _token_or_quoted(value: str) -> str:
    return value if _TOKEN_RE.fullmatch(value) else _quote(value)


def _token(value: str, name: str) -> str:
    if not _TOKEN_RE.fullmatch(value):
        raise LocalProtocolError(f"{name} must be a token: {value!r}")
    return value


def _flag(value: str | None) -> bool:
    """RFC 2617 §3.2.1: anything but "true" (any case) is false."""
    return value is not None and value.lower() == "true"


def _frozen_extra(extra: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(extra))


def _decode_ext_value(value: str) -> str:
    """RFC 8187 ext-value ``charset'lang'pct-encoded`` (used by ``username*``, RFC 7616)."""
    parts = value.split("'", 2)
    if len(parts) != 3 or parts[0].lower() not in ("utf-8", "iso-8859-1"):
        raise RemoteProtocolError("username*: malformed or unsupported ext-value")
    try:
        decoded = urllib.parse.unquote(parts[2], encoding=parts[0].lower(), errors="strict")
    except (UnicodeDecodeError, LookupError) as exc:
        raise RemoteProtocolError("username*: undecodable") from exc
    if "\r" in decoded or "\n" in decoded or any(0xD800 <= ord(c) <= 0xDFFF for c in decoded):
        raise RemoteProtocolError("username*: forbidden characters")
    return decoded


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 7616 §3.3).

    `algorithm` is as received (``None`` when absent, meaning MD5); `qop` holds the offered
    options, lowercased; `extra` keeps unknown parameters (lowercase names).
    """

    realm: str
    nonce: str
    algorithm: str | None = None
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen_extra(self.extra))

    @property
    def canonical_algorithm(self) -> str | None:
        """The canonical algorithm name, or ``None`` when we do not support it."""
        return canonical_algorithm(self.algorithm)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """An Authorization / Proxy-Authorization value (RFC 7616 §3.4).

    Every field is as received: the response is computed over these exact strings. `nc` is the
    nonce count as sent (1-8 hex digits); `nc_value` is its integer. `qop`, `nc` and `cnonce`
    come together or not at all (checked by the parser).
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    userhash: bool = False
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen_extra(self.extra))

    @property
    def canonical_algorithm(self) -> str | None:
        """The canonical algorithm name (MD5 when absent), or ``None`` when unsupported."""
        return canonical_algorithm(self.algorithm)

    @property
    def nc_value(self) -> int | None:
        return int(self.nc, 16) if self.nc is not None else None

    def user_part(self, realm: str) -> str:
        """The username without a trailing ``@realm`` (realm compared case-insensitively).

        Some UAs authenticate as ``user@domain``; this gives the account name to look up. The
        response itself is still computed over `username` as sent.
        """
        suffix = "@" + realm
        if (
            realm
            and len(self.username) > len(suffix)
            and (self.username[-len(suffix) :].lower() == suffix.lower())
        ):
            return self.username[: -len(suffix)]
        return self.username

    def uri_matches(self, request_uri: str) -> bool:
        """Whether `uri` names the Request-URI (see `uri_matches`)."""
        return uri_matches(self.uri, request_uri)


def uri_matches(digest_uri: str, request_uri: str) -> bool:
    """Compare a credentials ``uri`` with the Request-URI (RFC 7616 §3.4.6).

    Exact string comparison after trimming whitespace and any ``<>``, except that the scheme is
    compared case-insensitively. Whether to enforce it is the caller's choice: proxies in front
    of us may legitimately rewrite the Request-URI.
    """

    def norm(uri: str) -> str:
        uri = uri.strip()
        if uri.startswith("<") and uri.endswith(">"):
            uri = uri[1:-1].strip()
        scheme, sep, rest = uri.partition(":")
        return scheme.lower() + sep + rest if sep else uri

    return norm(digest_uri) == norm(request_uri)


_CHALLENGE_KNOWN = frozenset(
    {"realm", "nonce", "algorithm", "qop", "opaque", "stale", "domain", "userhash"}
)
_CREDENTIALS_KNOWN = frozenset(
    {
        "username",
        "username*",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
        "userhash",
    }
)


def parse_challenge(value: str) -> DigestChallenge:
    """Parse a WWW-Authenticate / Proxy-Authenticate header value (Digest only).

    Raises `RemoteProtocolError` for anything malformed, another scheme, or a missing
    ``realm``/``nonce``.
    """
    params = _parse_params(value, "challenge")
    for name in ("realm", "nonce"):
        if name not in params:
            raise RemoteProtocolError(f"challenge: missing {name}")
    qop_value = params.get("qop")
    qop: tuple[str, ...] = ()
    if qop_value is not None:
        qop = tuple(q.strip(" \t").lower() for q in qop_value.split(",") if q.strip(" \t"))
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm"),
        qop=qop,
        opaque=params.get("opaque"),
        stale=_flag(params.get("stale")),
        domain=params.get("domain"),
        userhash=_flag(params.get("userhash")),
        extra={k: v for k, v in params.items() if k not in _CHALLENGE_KNOWN},
    )


def parse_credentials(value: str) -> DigestCredentials:
    """Parse an Authorization / Proxy-Authorization header value (Digest only).

    Mandatory: username (or RFC 7616 ``username*``, decoded into `username`), realm, nonce,
    uri, response; with qop also cnonce and nc. Raises `RemoteProtocolError` (hint 400) for
    anything malformed.
    """
    params = _parse_params(value, "credentials")
    if "username*" in params:
        if "username" in params:
            raise RemoteProtocolError("credentials: both username and username*")
        params["username"] = _decode_ext_value(params["username*"])
    for name in ("username", "realm", "nonce", "uri", "response"):
        if name not in params:
            raise RemoteProtocolError(f"credentials: missing {name}")
    qop = params.get("qop")
    nc = params.get("nc")
    if qop is not None and (nc is None or "cnonce" not in params):
        raise RemoteProtocolError("credentials: qop without nc and cnonce")
    if nc is not None:
        if qop is None:
            raise RemoteProtocolError("credentials: nc without qop")
        if not _NC_RE.fullmatch(nc):
            raise RemoteProtocolError("credentials: malformed nc")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm"),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
        qop=qop,
        nc=nc,
        userhash=_flag(params.get("userhash")),
        extra={k: v for k, v in params.items() if k not in _CREDENTIALS_KNOWN},
    )


def _extras(extra: Mapping[str, str], known: frozenset[str]) -> list[str]:
    parts = []
    for name, val in extra.items():
        if name in known:
            raise LocalProtocolError(f"extra parameter {name!r} shadows a known one")
        parts.append(f"{_token(name, 'parameter name')}={_token_or_quoted(val)}")
    return parts


def format_challenge(challenge: DigestChallenge) -> str:
    """The canonical header value: ``Digest realm="..", nonce="..", algorithm=MD5, qop="auth"``.

    realm, domain, nonce, opaque and qop are quoted; algorithm, stale and userhash are not.
    """
    parts = [f"realm={_quote(challenge.realm)}"]
    if challenge.domain is not None:
        parts.append(f"domain={_quote(challenge.domain)}")
    parts.append(f"nonce={_quote(challenge.nonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if challenge.stale:
        parts.append("stale=true")
    if challenge.algorithm is not None:
        parts.append(f"algorithm={_token(challenge.algorithm, 'algorithm')}")
    if challenge.qop:
        parts.append(f"qop={_quote(','.join(challenge.qop))}")
    if challenge.userhash:
        parts.append("userhash=true")
    parts.extend(_extras(challenge.extra, _CHALLENGE_KNOWN))
    return "Digest " + ", ".join(parts)


def format_credentials(credentials: DigestCredentials) -> str:
    """The canonical header value: ``Digest username="..", realm="..", ..., nc=00000001``.

    username, realm, nonce, uri, response, cnonce and opaque are quoted; algorithm, qop, nc and
    userhash are not (RFC 2617 §3.2.2 grammar).
    """
    c = credentials
    parts = [
        f"username={_quote(c.username)}",
        f"realm={_quote(c.realm)}",
        f"nonce={_quote(c.nonce)}",
        f"uri={_quote(c.uri)}",
        f"response={_quote(c.response)}",
    ]
    if c.algorithm is not None:
        parts.append(f"algorithm={_token(c.algorithm, 'algorithm')}")
    if c.cnonce is not None:
        parts.append(f"cnonce={_quote(c.cnonce)}")
    if c.opaque is not None:
        parts.append(f"opaque={_quote(c.opaque)}")
    if c.qop is not None:
        parts.append(f"qop={_token(c.qop, 'qop')}")
    if c.nc is not None:
        parts.append(f"nc={_token(c.nc, 'nc')}")
    if c.userhash:
        parts.append("userhash=true")
    parts.extend(_extras(c.extra, _CREDENTIALS_KNOWN))
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# Stateless nonces


class NonceCheck(enum.Enum):
    """What `NonceService.check` found."""

    VALID = "valid"
    #: Genuine but expired, or issued too far in the future: re-challenge with stale=true.
    STALE = "stale"
    #: Not one of ours (bad MAC, wrong realm, undecodable): an authentication failure.
    FORGED = "forged"
    #: Genuine but its nc was already used (or cannot be proven unused): like STALE.
    REPLAYED = "replayed"


_TIME = struct.Struct(">q")
_NONCE_CHARS_RE = re.compile(r"[A-Za-z0-9_-]+")


class NonceService:
    """Issues and checks stateless, time-bound, HMAC-signed nonces (see the module docstring).

    `secret` (at least 16 bytes) signs nonces; share it between nodes and keep it across
    restarts. `random_bytes(n)` must return `n` unpredictable bytes (e.g. ``secrets.token_bytes``
    supplied by the application). `lifetime` and `max_skew` are seconds; `max_entries` bounds the
    nonce-count table.
    """

    __slots__ = (
        "_forgotten_ms",
        "_heap",
        "_random_bytes",
        "_secret",
        "_seen",
        "lifetime",
        "mac_size",
        "max_entries",
        "max_skew",
        "random_size",
    )

    def __init__(
        self,
        secret: bytes,
        random_bytes: Callable[[int], bytes],
        *,
        lifetime: float = 300.0,
        max_skew: float = 5.0,
        max_entries: int = 50_000,
        random_size: int = 8,
        mac_size: int = 16,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if lifetime <= 0 or max_skew < 0 or max_entries < 1:
            raise ValueError("lifetime > 0, max_skew >= 0 and max_entries >= 1 are required")
        if not 4 <= random_size <= 64 or not 8 <= mac_size <= 32:
            raise ValueError("random_size in 4..64 and mac_size in 8..32 are required")
        self._secret = secret
        self._random_bytes = random_bytes
        self.lifetime = lifetime
        self.max_skew = max_skew
        self.max_entries = max_entries
        self.random_size = random_size
        self.mac_size = mac_size
        self._seen: dict[bytes, int] = {}  # time ‖ random -> highest nc seen
        self._heap: list[tuple[int, bytes]] = []  # (issue ms, key), exactly the keys of _seen
        self._forgotten_ms: int | None = None  # evicted under pressure up to this issue time

    def _mac(self, body: bytes, realm: str) -> bytes:
        digest = hmac.digest(self._secret, body + realm.encode("utf-8"), "sha256")
        return digest[: self.mac_size]

    def issue(self, now: float, realm: str = "") -> str:
        """A fresh nonce for `realm`, issued at `now` (seconds)."""
        rnd = self._random_bytes(self.random_size)
        if len(rnd) != self.random_size:
            raise ValueError("random_bytes returned the wrong number of bytes")
        body = _TIME.pack(int(now * 1000)) + rnd
        return base64.urlsafe_b64encode(body + self._mac(body, realm)).rstrip(b"=").decode()

    def _decode(self, nonce: str, realm: str) -> tuple[bytes, int] | None:
        """(key, issue ms) of a genuine nonce, or None."""
        size = _TIME.size + self.random_size + self.mac_size
        if len(nonce) != (size * 4 + 2) // 3 or not _NONCE_CHARS_RE.fullmatch(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        # Several strings decode alike (unused low bits): accept only the canonical one.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != nonce:
            return None
        key, mac = raw[: -self.mac_size], raw[-self.mac_size :]
        if not hmac.compare_digest(mac, self._mac(key, realm)):
            return None
        return key, _TIME.unpack_from(key)[0]

    def check(self, nonce: str, now: float, realm: str = "", nc: int | None = None) -> NonceCheck:
        """Check a nonce received at `now` for `realm`.

        With `nc` (qop in use) a VALID nonce is also checked against the highest count seen for
        it, and the count is *recorded*: call it with `nc` only once the response is known to be
        correct. Without `nc` nothing is recorded and the nonce stays usable until it expires.
        """
        decoded = self._decode(nonce, realm)
        if decoded is None:
            return NonceCheck.FORGED
        state = self._age_check(decoded[1], now)
        if nc is None or state is not NonceCheck.VALID:
            return state
        return self._count(decoded[0], decoded[1], nc, now)

    def _age_check(self, issued_ms: int, now: float) -> NonceCheck:
        """VALID or STALE for a genuine nonce issued at `issued_ms`."""
        issued = issued_ms / 1000.0
        if now - issued >= self.lifetime or issued - now > self.max_skew:
            return NonceCheck.STALE
        return NonceCheck.VALID

    def _count(self, key: bytes, issued_ms: int, nc: int, now: float) -> NonceCheck:
        self._expire(now)
        highest = self._seen.get(key)
        if highest is None:
            if self._forgotten_ms is not None and issued_ms <= self._forgotten_ms:
                return NonceCheck.REPLAYED
            if nc <= 0:
                return NonceCheck.REPLAYED
            self._seen[key] = nc
            heapq.heappush(self._heap, (issued_ms, key))
            while len(self._seen) > self.max_entries:
                old_ms, old_key = heapq.heappop(self._heap)
                del self._seen[old_key]
                if self._forgotten_ms is None or old_ms > self._forgotten_ms:
                    self._forgotten_ms = old_ms
            return NonceCheck.VALID
        if nc <= highest:
            return NonceCheck.REPLAYED
        self._seen[key] = nc
        return NonceCheck.VALID

    def _expire(self, now: float) -> None:
        """Forget counts of nonces that have expired (they are refused as STALE anyway)."""
        limit_ms = (now - self.lifetime) * 1000.0
        heap = self._heap
        while heap and heap[0][0] <= limit_ms:
            _, key = heapq.heappop(heap)
            del self._seen[key]

    @property
    def tracked(self) -> int:
        """How many nonces the nonce-count table holds (bounded by `max_entries`)."""
        return len(self._seen)


# ---------------------------------------------------------------------------------------------
# Server side


class VerifyOutcome(enum.Enum):
    OK = "ok"
    #: Correct response but expired or replayed nonce: re-challenge with ``stale=true``.
    STALE = "stale"
    #: A final authentication failure (wrong response, forged nonce, wrong realm, ...).
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    outcome: VerifyOutcome
    reason: str
    #: The username as sent, and the canonical algorithm used, when known.
    username: str | None = None
    algorithm: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is VerifyOutcome.OK


#: Where the verifier gets HA1: a callable ``(username_as_sent, base_algorithm) -> HA1 | None``
#: (base_algorithm is ``"MD5"`` or ``"SHA-256"``), or a mapping ``base_algorithm -> HA1`` for a
#: user the caller already looked up.
HA1Source = Callable[[str, str], str | None] | Mapping[str, str]


class DigestAuthenticator:
    """The server side of Digest for one realm (RFC 3261 §22.1, RFC 8760 §2.4).

    `algorithms` are offered in the order given (one challenge each, all with the same nonce):
    the application offers ``("MD5",)`` or ``("MD5", "SHA-256")``. `qop` is the offered qop
    options (``("auth",)`` by default; ``()`` for RFC 2069 clients). With `require_qop` (the
    default when qop is offered) a response without qop is refused, since it has no replay
    protection.
    """

    __slots__ = ("_templates", "algorithms", "nonces", "qop", "realm", "require_qop")

    def __init__(
        self,
        realm: str,
        nonces: NonceService,
        algorithms: Iterable[str] = ("MD5",),
        qop: Iterable[str] = ("auth",),
        require_qop: bool = True,
    ) -> None:
        self.realm = realm
        self.nonces = nonces
        self.algorithms: tuple[str, ...] = tuple(_require_algorithm(a) for a in algorithms)
        if not self.algorithms:
            raise ValueError("at least one algorithm must be offered")
        self.qop: tuple[str, ...] = tuple(q.lower() for q in qop)
        if not set(self.qop) <= _QOPS:
            raise ValueError(f"unsupported qop in {self.qop!r}")
        self.require_qop = require_qop and bool(self.qop)
        self._templates: dict[bool, list[tuple[str, str]]] | None = None

    def build_challenges(self, now: float, stale: bool = False) -> list[DigestChallenge]:
        nonce = self.nonces.issue(now, self.realm)
        return [
            DigestChallenge(realm=self.realm, nonce=nonce, algorithm=alg, qop=self.qop, stale=stale)
            for alg in self.algorithms
        ]

    def challenges(self, now: float, stale: bool = False) -> list[str]:
        """One WWW-/Proxy-Authenticate value per offered algorithm, in order.

        Exactly `format_challenge` of `build_challenges`, without building the values: the
        text around the nonce is the same for every challenge and made once.
        """
        templates = self._templates
        if templates is None:
            templates = self._templates = self._make_templates()
        nonce = self.nonces.issue(now, self.realm)
        return [head + nonce + tail for head, tail in templates[stale]]

    def _make_templates(self) -> dict[bool, list[tuple[str, str]]]:
        out: dict[bool, list[tuple[str, str]]] = {}
        marker = "\x00nonce\x00"
        for stale in (False, True):
            pairs = []
            for alg in self.algorithms:
                text = format_challenge(
                    DigestChallenge(
                        realm=self.realm, nonce=marker, algorithm=alg, qop=self.qop, stale=stale
                    )
                )
                head, _, tail = text.partition(_quote(marker))
                pairs.append((head + '"', '"' + tail))
            out[stale] = pairs
        return out

    def verify(
        self,
        credentials: DigestCredentials,
        method: str,
        ha1: HA1Source,
        now: float,
        body: bytes = b"",
    ) -> VerifyResult:
        """Check `credentials` for a request with `method` (and `body`, for auth-int).

        `ha1` gives the stored HA1 for the username *as sent* (see `HA1Source`); ``None`` means
        unknown user. The Request-URI check is the caller's (`DigestCredentials.uri_matches`).
        """
        c = credentials

        def failed(reason: str, algorithm: str | None = None) -> VerifyResult:
            return VerifyResult(VerifyOutcome.FAILED, reason, c.username, algorithm)

        if c.userhash:
            return failed("userhash is not supported")
        if c.realm != self.realm:
            return failed(f"realm mismatch: {c.realm!r}")
        algorithm = c.canonical_algorithm
        if algorithm is None or algorithm not in self.algorithms:
            return failed(f"algorithm not offered: {c.algorithm!r}")
        if c.qop is None:
            if self.require_qop:
                return failed("qop missing", algorithm)
        elif c.qop.lower() not in self.qop:
            return failed(f"qop not offered: {c.qop!r}", algorithm)
        if not c.uri:
            return failed("empty uri", algorithm)
        if algorithm.endswith("-sess") and not c.cnonce:
            return failed("-sess algorithm without cnonce", algorithm)
        nonces = self.nonces
        decoded = nonces._decode(c.nonce, self.realm)  # decoded once: HMAC checked once
        if decoded is None:
            return failed("nonce not issued by us", algorithm)
        state = nonces._age_check(decoded[1], now)
        base = algorithm.removesuffix("-sess")
        stored = ha1.get(base) if isinstance(ha1, Mapping) else ha1(c.username, base)
        if stored is None:
            return failed("no credentials for user", algorithm)
        expected = compute_response(
            stored.lower(), c.nonce, method, c.uri, algorithm, c.qop, c.nc, c.cnonce, body
        )
        if not hmac.compare_digest(expected.encode(), c.response.lower().encode()):
            return failed("wrong response", algorithm)
        if state is NonceCheck.STALE:
            return VerifyResult(VerifyOutcome.STALE, "nonce expired", c.username, algorithm)
        if c.qop is not None:
            nc = c.nc_value
            assert nc is not None  # the parser requires nc with qop
            counted = nonces._count(decoded[0], decoded[1], nc, now)
            if counted is not NonceCheck.VALID:
                return VerifyResult(
                    VerifyOutcome.STALE, f"nonce count {counted.value}", c.username, algorithm
                )
        return VerifyResult(VerifyOutcome.OK, "ok", c.username, algorithm)


# ---------------------------------------------------------------------------------------------
# Client side


def _choose_qop(offered: tuple[str, ...]) -> str | None:
    if not offered:
        return None
    if "auth" in offered:
        return "auth"
    if "auth-int" in offered:
        return "auth-int"
    raise RemoteProtocolError(f"challenge offers no supported qop: {offered!r}")


def build_credentials(
    challenge: DigestChallenge | str,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int,
    body: bytes = b"",
) -> DigestCredentials:
    """Answer a challenge (RFC 7616 §3.4): qop ``auth`` when offered, else ``auth-int``, else
    the RFC 2069 form; algorithm and opaque echoed. `cnonce` should be fresh per nonce
    (unpredictable); `nc` counts requests under that nonce from 1. Raises
    `RemoteProtocolError` if the challenge is malformed or uses an unsupported algorithm/qop.
    """
    if isinstance(challenge, str):
        challenge = parse_challenge(challenge)
    algorithm = challenge.canonical_algorithm
    if algorithm is None:
        raise RemoteProtocolError(f"unsupported digest algorithm {challenge.algorithm!r}")
    qop = _choose_qop(challenge.qop)
    nc_text = _format_nc(nc) if qop is not None else None
    use_cnonce = qop is not None or algorithm.endswith("-sess")
    ha1 = compute_ha1(username, challenge.realm, password, algorithm)
    response = compute_response(
        ha1,
        challenge.nonce,
        method,
        uri,
        algorithm,
        qop,
        nc_text,
        cnonce if use_cnonce else None,
        body,
    )
    return DigestCredentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=cnonce if use_cnonce else None,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc_text,
    )


def answer_challenge(
    challenge: DigestChallenge | str,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int,
    body: bytes = b"",
) -> str:
    """`build_credentials`, formatted as an Authorization / Proxy-Authorization value."""
    return format_credentials(
        build_credentials(challenge, method, uri, username, password, cnonce, nc, body)
    )


def choose_challenge(
    challenges: Iterable[DigestChallenge | str], realm: str | None = None
) -> DigestChallenge | None:
    """The best challenge we can answer: SHA-256, then SHA-256-sess, MD5, MD5-sess (RFC 8760
    §2.4); the first offered wins ties. Unparseable values, other schemes, unsupported
    algorithms or qop-only-unknown challenges are skipped; with `realm`, other realms too.
    (A 407 from a forking proxy may carry challenges for several realms: answer each realm.)
    """
    best: DigestChallenge | None = None
    best_rank = len(_PREFERENCE)
    for item in challenges:
        if isinstance(item, str):
            try:
                item = parse_challenge(item)
            except RemoteProtocolError:
                continue
        algorithm = item.canonical_algorithm
        if algorithm is None or (realm is not None and item.realm != realm):
            continue
        if item.qop and not set(item.qop) & _QOPS:
            continue
        rank = _PREFERENCE.index(algorithm)
        if rank < best_rank:
            best, best_rank = item, rank
    return best


class DigestClient:
    """Answers challenges for one account, counting ``nc`` per nonce (for external lines).

    A new nonce gets a new cnonce (hex of ``random_bytes(16)``) and nc 1; answering again for
    the same nonce and realm reuses the cnonce with the next nc, so credentials can be sent
    pre-emptively on refreshes until the server says ``stale``.
    """

    __slots__ = ("_cnonce", "_key", "_nc", "_random_bytes", "password", "username")

    def __init__(self, username: str, password: str, random_bytes: Callable[[int], bytes]) -> None:
        self.username = username
        self.password = password
        self._random_bytes = random_bytes
        self._key: tuple[str, str] | None = None
        self._cnonce = ""
        self._nc = 0

    def authorize(
        self, challenge: DigestChallenge | str, method: str, uri: str, body: bytes = b""
    ) -> str:
        """The header value answering `challenge` for this request."""
        if isinstance(challenge, str):
            challenge = parse_challenge(challenge)
        key = (challenge.realm, challenge.nonce)
        if key != self._key:
            self._key = key
            self._cnonce = self._random_bytes(16).hex()
            self._nc = 0
        self._nc += 1
        return answer_challenge(
            challenge,
            method,
            uri,
            self.username,
            self.password,
            self._cnonce,
            self._nc,
            body,
        )
