"""Anti-SIP-scanning guard: fail-to-ban, flood limits, black/white lists (pure, time passed in).

Servers on the Internet are scanned within minutes of going up (sipvicious: ``svmap`` finds
the server, ``svwar`` enumerates extensions, ``svcrack`` guesses passwords). This module is
the *decision engine* that notices and bans them. It does no I/O at all: the standard library
only, no asyncio, no clock reads (every call takes ``now``, seconds since the epoch as a
float), no logging. It returns frozen events (:class:`Banned`, :class:`Unbanned`,
:class:`FloodBlocked`, :class:`UserBlocked`) that the app persists and logs, in the spirit of
Kamailio's ``pike`` (flood) plus fail2ban (auth failures) rolled into one place.

Theory of operation
-------------------
* **Source key.** Every table is keyed by a *source key*: an IPv4 address string
  (``"203.0.113.7"``); an IPv4-mapped IPv6 address (``"::ffff:1.2.3.4"``) becomes its IPv4
  form; any other IPv6 address becomes its ``/ipv6_prefix`` network (``"2001:db8:1:2::/64"``)
  because one customer line gets a whole /64 and an attacker can rotate addresses within it.
  A host string that is not an IP address never raises: it is its own key. See
  :func:`source_key`.
* **Hot path.** The transport calls :meth:`Guard.is_allowed` for every datagram before parsing.
  It is one look-up in a per-host cache (raw host string -> ``(key, listed)``, where ``listed``
  says whitelisted/trusted, blacklisted or neither, computed once per host with the CIDR
  matching), then one ``dict.get`` in the ban table and one in the flood-block table. No
  allocation happens for an allowed host already in the cache. The cache is invalidated when
  the lists change and cleared when it reaches its bound.
* **Never lock out our own.** Whitelisted networks and *trusted* addresses (the resolved
  addresses of external line proxies and trunks, :meth:`Guard.add_trusted`) are always
  allowed, never counted, never banned, never flood-blocked; the whitelist wins over the
  blacklist. An office behind one NAT address that holds live authenticated registrations
  gets two protections: its flood limit is multiplied by its number of registrations, and one
  user's wrong password blocks only that ``(address, user)`` pair (:meth:`Guard.is_user_blocked`
  lets the PBX answer 403 without checking the password) instead of the whole office. Unknown
  user names, or many distinct users failing from one address (the scanning pattern), still ban
  the address. Manual bans that would cover a whitelisted or trusted address, or loopback
  (``127.0.0.0/8``, ``::1``), are refused with :class:`GuardRefused`. Automatic bans of
  loopback are *not* prevented (integration tests run sipvicious on loopback); whitelist it if
  you want it exempt.
* **Windows.** "``max_failures`` within ``window``" means within the half-open interval
  ``(now - window, now]``: failures at t=0 and t=60 are *not* within a 60 s window.
  A ban of duration ``d`` made at ``since`` drops datagrams while ``now < since + d``; at
  exactly ``since + d`` the source is allowed again (:meth:`Guard.expire` then reports it).
* **Repeat offenders.** A new ban of a source whose previous ban ended less than
  ``repeat_window`` ago is offence ``n + 1`` and lasts ``ban_time * 2**n``, capped at
  ``max_ban_time``. A manual :meth:`Guard.unban` forgets the offences (it was a mistake).
* **Flood.** A sliding-window counter per source (two one-second buckets, the previous one
  weighted by its overlap with the last second) measures requests per second; above
  ``flood_rate * max(1, registered_count)`` the source is blocked for ``flood_block``
  (:class:`FloodBlocked`). The estimate never under-counts a burst inside one bucket and may
  over-count by the boundary approximation; real phones stay far below 100 requests/s. The
  ``flood_ban_after``-th flood block within ``repeat_window`` becomes a real ban (reason
  ``flood``). Spoofed-source floods cannot be stopped per source; the bounds below keep them
  from growing memory.
* **Disabled.** With ``enabled=False`` :meth:`Guard.is_allowed` applies only the blacklist (and
  the whitelist exemption) and every ``record_*``/``inspect_*`` returns ``None``; manual bans
  are still recorded (and listed) but not enforced.

Bounds (memory under a spoofed-source flood)
--------------------------------------------
With ``S = GuardPolicy.max_sources`` (default 65,536) and ``B = GuardPolicy.max_bans``
(default 65,536):

* host cache: at most ``S`` hosts (cleared entirely when full; refilled on demand);
* flood counters, flood blocks, address failure records, enumeration records, user
  blocks, per-(address, user) failure records, offence counts, flood offence counts: at most
  ``S`` entries each; when a table is full, stale entries are swept and if that is not enough
  the oldest quarter is evicted (amortised O(1));
* each address failure record: at most ``max(max_failures, 10)`` user names and
  ``max_failures`` time stamps per counter; each enumeration record at most
  ``enumeration_threshold`` user names; each per-(address, user) record ``max_failures``
  time stamps; user names kept in ban details: 10, each cut to 64 characters; User-Agent cut
  to 200 characters;
* bans: at most ``B``; when full, expired bans are swept, then the oldest quarter is evicted
  from memory (silently: the store still holds them).

Log line grammar (:func:`format_log_line`)
-----------------------------------------
One line, no line breaks, stable field order, for fail2ban or a SIEM::

    line     = "sipbox-guard" 1*( SP field )
    field    = name "=" value
    name     = 1*%x61-7A                               ; lower-case letters
    value    = bare / quoted
    bare     = 1*( ALPHA / DIGIT / "." / ":" / "/" / "-" / "_" / "+" )
    quoted   = DQUOTE *( qchar / escape ) DQUOTE
    qchar    = any character but DQUOTE, "\\" and controls (%x00-1F / %x7F); UTF-8
    escape   = "\\" ( DQUOTE / "\\" / "n" / "r" / "t" ) / "\\x" 2HEXDIG  ; other controls
    time     = date "T" hh ":" mm ":" ss "Z"           ; ISO-8601 UTC, whole seconds

    ban:        action=ban source=S reason=R since=TIME until=TIME offence=N
                [users="U1,U2"] [ua="..."] [detail="..."]
    unban:      action=unban source=S reason=(expired|manual)
    flood:      action=flood-block source=S until=TIME rate=N
    user block: action=user-block source=S user="U" until=TIME

``source`` is a bare IPv4 address or an IPv6 network (``2001:db8::/64``: use fail2ban's
``<SUBNET>`` tag, or ``<ADDR>`` when ``ipv6_prefix=128``); it is quoted only if it is a
malformed host that contains other characters. ``users``, ``ua``, ``detail`` and ``user``
are always quoted; inside ``users`` a comma in a name is written ``\\x2c``. Optional fields
are left out when empty. A time outside the range of ``datetime`` is written as a bare
decimal number of seconds. Example::

    sipbox-guard action=ban source=203.0.113.7 reason=auth-failures since=2026-01-02T03:04:05Z
    until=2026-01-02T06:04:05Z offence=1 users="1001,1002" ua="friendly-scanner"

(one line). A fail2ban filter: ``failregex = ^.*sipbox-guard action=ban source=<SUBNET> ``.

Cost (bench note, not a timed test)
-----------------------------------
Measured in the development container (CPython 3.11.7, x86-64, shared and noisy) with::

    S='from sipbox.pbx.guard import Guard, GuardPolicy
    g = Guard(GuardPolicy(whitelist=("10.0.0.0/8", "2001:db8:ff::/48")))
    g.ban("198.51.100.9", 0.0); g.ban("2001:db8:1:2::1", 0.0)'
    .venv/bin/python -m timeit -s "$S" "g.is_allowed('203.0.113.7', 1.0)"

``is_allowed``, host already cached: unbanned IPv4 0.13-0.16 µs, banned IPv4 0.14 µs,
IPv6 0.13 µs, whitelisted 0.08 µs (``sys.getallocatedblocks()`` unchanged over 100,000
allowed calls). First sight of a host (parse + CIDR match, then cached): IPv4 about 2-4 µs,
IPv6 about 10 µs (``ipaddress`` formatting of the /64). ``record_request`` about 0.3 µs,
``inspect_signature`` of a legitimate User-Agent about 0.85 µs.

Not thread-safe: one event loop owns the guard.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)
from itertools import islice
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "Ban",
    "BanReason",
    "Banned",
    "Event",
    "FloodBlocked",
    "Guard",
    "GuardEvent",
    "GuardPolicy",
    "GuardRefused",
    "Unbanned",
    "UserBlocked",
    "format_log_line",
    "source_key",
]

BanReason: TypeAlias = Literal[
    "auth-failures", "scanner", "enumeration", "flood", "manual", "blacklist"
]
"""Why a source was banned. ``blacklist`` is reserved for bans the app records itself for
blacklisted sources: the guard answers blacklisted sources from the list, not from bans."""

UnbanReason: TypeAlias = Literal["expired", "manual"]

_HOUR: Final = 3600.0
_MAX_DETAIL_USERS: Final = 10
_MAX_NAME: Final = 64
_MAX_UA: Final = 200
_AUX_SWEEP_INTERVAL: Final = 10.0
_MAX_OFFENCE_SHIFT: Final = 32

# Host classification (second item of a host cache entry).
_NEUTRAL: Final = 0
_WHITE: Final = 1
_BLACK: Final = 2

_IPv4_MAPPED: Final = IPv6Network("::ffff:0:0/96")
_LOOPBACKS: Final[tuple[IPv4Network | IPv6Network, ...]] = (
    IPv4Network("127.0.0.0/8"),
    IPv6Network("::1/128"),
)
_BARE_VALUE: Final = re.compile(r"[A-Za-z0-9.:/_+-]+")
_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

_Net: TypeAlias = IPv4Network | IPv6Network
_Addr: TypeAlias = IPv4Address | IPv6Address


class GuardRefused(ValueError):
    """A manual action was refused because it would lock out our own (whitelisted, trusted or
    loopback) addresses, or names something that cannot be banned."""


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """Guard settings; the defaults are the zero-configuration behaviour (on by default).

    Times are in seconds. ``whitelist``/``blacklist`` are CIDR strings (a bare address means
    /32 or /128). User-Agent and From display patterns match as case-insensitive substrings.
    """

    enabled: bool = True
    max_failures: int = 5
    window: float = 60.0
    ban_time: float = 3 * _HOUR
    max_ban_time: float = 24 * _HOUR
    repeat_window: float = 24 * _HOUR
    flood_rate: int = 100
    flood_block: float = 300.0
    flood_ban_after: int = 3
    ipv6_prefix: int = 64
    whitelist: tuple[str, ...] = ()
    blacklist: tuple[str, ...] = ()
    scanner_user_agents: tuple[str, ...] = (
        "friendly-scanner",
        "sipvicious",
        "sundayddr",
        "iWar",
        "sip-scan",
        "smap",
    )
    scanner_from_display: tuple[str, ...] = ("sipvicious",)
    enumeration_threshold: int = 10
    max_sources: int = 65_536
    max_bans: int = 65_536

    def __post_init__(self) -> None:
        positive = {
            "max_failures": self.max_failures,
            "window": self.window,
            "ban_time": self.ban_time,
            "max_ban_time": self.max_ban_time,
            "flood_rate": self.flood_rate,
            "flood_block": self.flood_block,
            "flood_ban_after": self.flood_ban_after,
            "enumeration_threshold": self.enumeration_threshold,
            "max_sources": self.max_sources,
            "max_bans": self.max_bans,
        }
        for name, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"GuardPolicy.{name} must be a positive finite number: {value!r}")
        if not (self.repeat_window >= 0 and math.isfinite(self.repeat_window)):
            raise ValueError(f"GuardPolicy.repeat_window must be >= 0: {self.repeat_window!r}")
        if self.max_ban_time < self.ban_time:
            raise ValueError("GuardPolicy.max_ban_time must be >= ban_time")
        if not 0 <= self.ipv6_prefix <= 128:
            raise ValueError(f"GuardPolicy.ipv6_prefix must be 0..128: {self.ipv6_prefix!r}")


@dataclass(frozen=True, slots=True)
class Ban:
    """One ban of one source key, as persisted by the store.

    ``hit_count`` is the number of datagrams dropped while banned; the live count is kept in a
    mutable counter inside the guard and copied in by :meth:`Guard.active_bans`.
    ``users`` are the user names tried (at most 10), ``user_agent`` the last User-Agent seen,
    ``detail`` free text (a manual note, the measured flood rate, the scanner From name).
    """

    source: str
    reason: BanReason
    since: float
    until: float
    offence: int = 1
    hit_count: int = 0
    users: tuple[str, ...] = ()
    user_agent: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Banned:
    """A source was banned (automatically or by hand): persist and log it."""

    ban: Ban


@dataclass(frozen=True, slots=True)
class Unbanned:
    """A ban ended: ``reason`` is ``expired`` (swept by :meth:`Guard.expire`) or ``manual``."""

    source: str
    reason: UnbanReason


@dataclass(frozen=True, slots=True)
class FloodBlocked:
    """A source sent more than its limit of requests per second: dropped until ``until``.
    ``rate`` is the measured requests per second (rounded)."""

    source: str
    until: float
    rate: int


@dataclass(frozen=True, slots=True)
class UserBlocked:
    """One user's repeated failures from an address holding other live registrations: that
    ``(source, user)`` pair is refused (403 without a password check) until ``until``."""

    source: str
    user: str
    until: float


GuardEvent: TypeAlias = Banned | Unbanned | FloodBlocked | UserBlocked
Event: TypeAlias = GuardEvent


# --------------------------------------------------------------------------------------------
# Source keys


def _parse_v4(text: str) -> int | None:
    """A canonical dotted quad as an integer, or None (4x faster than ``IPv4Address``)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    n = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3:
            return None
        if len(part) > 1 and part[0] == "0":
            return None
        v = int(part)
        if v > 255:
            return None
        n = n << 8 | v
    return n


def _parse_host(host: str) -> _Addr | None:
    """The address in a host string (brackets and IPv6 zone stripped), or None."""
    h = host
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if ":" in h:
        pct = h.find("%")
        if pct >= 0:
            h = h[:pct]
        try:
            a6 = IPv6Address(h)
        except ValueError:
            return None
        mapped = a6.ipv4_mapped
        return mapped if mapped is not None else a6
    try:
        return IPv4Address(h)
    except ValueError:
        return None


def _key_of(addr: _Addr, ipv6_prefix: int) -> str:
    if isinstance(addr, IPv4Address) or ipv6_prefix >= 128:
        return str(addr)
    shift = 128 - ipv6_prefix
    return str(IPv6Network(((int(addr) >> shift) << shift, ipv6_prefix)))


def source_key(host: str, ipv6_prefix: int = 64) -> str:
    """The key a source is counted and banned under.

    IPv4 -> the address; IPv4-mapped IPv6 -> the IPv4 address; other IPv6 -> its
    ``/ipv6_prefix`` network (the address itself when the prefix is 128); anything else (a
    malformed host) -> the string unchanged. Never raises.

    >>> source_key("::ffff:192.0.2.1"), source_key("2001:db8:0:1::5")
    ('192.0.2.1', '2001:db8:0:1::/64')
    """
    addr = _parse_host(host)
    return host if addr is None else _key_of(addr, ipv6_prefix)


def _normalise_net(net: _Net) -> _Net:
    """An IPv4-mapped IPv6 network becomes the IPv4 network it maps."""
    if isinstance(net, IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_IPv4_MAPPED):
        return IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))
    return net


class _NetSet:
    """Exact addresses in a set plus a short list of wider networks, matched as integers
    (``ipaddress`` containment is slower); only consulted when a host is first seen."""

    __slots__ = ("hosts", "hosts4", "hosts6", "nets", "nets4", "nets6")

    def __init__(self, networks: Iterable[str | _Net | _Addr] = ()) -> None:
        self.hosts: set[_Addr] = set()
        self.nets: list[_Net] = []
        for item in networks:
            net = _normalise_net(
                item if isinstance(item, IPv4Network | IPv6Network) else _to_net(item)
            )
            if net.num_addresses == 1:
                self.hosts.add(net.network_address)
            elif net not in self.nets:
                self.nets.append(net)
        self.hosts4 = frozenset(int(h) for h in self.hosts if h.version == 4)
        self.hosts6 = frozenset(int(h) for h in self.hosts if h.version == 6)
        self.nets4 = tuple(
            (int(n.network_address), int(n.netmask)) for n in self.nets if n.version == 4
        )
        self.nets6 = tuple(
            (int(n.network_address), int(n.netmask)) for n in self.nets if n.version == 6
        )

    def __contains__(self, addr: _Addr) -> bool:
        return self.has(addr.version == 4, int(addr))

    def has(self, v4: bool, a: int) -> bool:
        hosts, nets = (self.hosts4, self.nets4) if v4 else (self.hosts6, self.nets6)
        if a in hosts:
            return True
        return any(a & mask == net for net, mask in nets)

    def overlaps(self, net: _Net) -> bool:
        return any(h in net for h in self.hosts) or any(_overlap(n, net) for n in self.nets)

    def __len__(self) -> int:
        return len(self.hosts) + len(self.nets)


def _overlap(a: _Net, b: _Net) -> bool:
    if isinstance(a, IPv4Network) and isinstance(b, IPv4Network):
        return a.overlaps(b)
    if isinstance(a, IPv6Network) and isinstance(b, IPv6Network):
        return a.overlaps(b)
    return False


def _to_net(item: str | _Addr) -> _Net:
    if isinstance(item, IPv4Address | IPv6Address):
        return ip_network(item)
    text = item.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:].replace("]", "", 1)
    try:
        return ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or CIDR network: {item!r}") from None


# --------------------------------------------------------------------------------------------
# Mutable per-source state (internal; __slots__ to keep them small)


class _BanState:
    __slots__ = ("ban", "hits", "until")

    def __init__(self, ban: Ban) -> None:
        self.ban = ban
        self.until = ban.until
        self.hits = ban.hit_count

    def snapshot(self) -> Ban:
        return (
            self.ban if self.hits == self.ban.hit_count else replace(self.ban, hit_count=self.hits)
        )


class _Rate:
    __slots__ = ("cur", "prev", "start")

    def __init__(self, now: float) -> None:
        self.start = now
        self.cur = 0
        self.prev = 0


class _AddrFailures:
    """Failures from one source key: all of them, the unknown-user ones, users tried."""

    __slots__ = ("all", "last", "unknown", "user_agent", "users")

    def __init__(self, max_failures: int) -> None:
        self.all: deque[float] = deque(maxlen=max_failures)
        self.unknown: deque[float] = deque(maxlen=max_failures)
        self.users: dict[str, float] = {}
        self.user_agent: str | None = None
        self.last = -math.inf


class _Offences:
    __slots__ = ("count", "last_until")

    def __init__(self, count: int, last_until: float) -> None:
        self.count = count
        self.last_until = last_until


def _full(times: deque[float], now: float, window: float) -> bool:
    """True when the bounded deque holds maxlen stamps all within ``(now - window, now]``."""
    return len(times) == times.maxlen and now - times[0] < window


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def _make_room(table: dict[Any, Any], limit: int) -> None:
    """Evict the oldest-inserted quarter of a table at its bound (amortised O(1))."""
    if len(table) >= limit:
        doomed = list(islice(table, max(1, limit // 4)))
        for k in doomed:
            del table[k]


# --------------------------------------------------------------------------------------------
# The guard


class Guard:
    """The decision engine. Construct once with a :class:`GuardPolicy`; feed it ``now``."""

    __slots__ = (
        "_bans",
        "_black",
        "_display_needles",
        "_enforce",
        "_enum",
        "_failures",
        "_flood_offences",
        "_flood_until",
        "_hosts",
        "_max",
        "_next_aux_sweep",
        "_next_expiry",
        "_offences",
        "_policy",
        "_rates",
        "_trusted",
        "_ua_needles",
        "_user_blocks",
        "_user_failures",
        "_white",
    )

    def __init__(self, policy: GuardPolicy | None = None) -> None:
        p = policy if policy is not None else GuardPolicy()
        self._policy = p
        self._enforce = p.enabled
        self._max = p.max_sources
        self._white = _NetSet(p.whitelist)
        self._trusted = _NetSet()
        self._black = _NetSet(p.blacklist)
        # raw host string -> (source key, _NEUTRAL | _WHITE | _BLACK)
        self._hosts: dict[str, tuple[str, int]] = {}
        self._bans: dict[str, _BanState] = {}
        self._flood_until: dict[str, float] = {}
        self._rates: dict[str, _Rate] = {}
        self._flood_offences: dict[str, _Offences] = {}
        self._failures: dict[str, _AddrFailures] = {}
        self._user_failures: dict[tuple[str, str], deque[float]] = {}
        self._user_blocks: dict[tuple[str, str], float] = {}
        self._enum: dict[str, dict[str, float]] = {}
        self._offences: dict[str, _Offences] = {}
        self._next_expiry = math.inf
        self._next_aux_sweep = -math.inf
        self._ua_needles = _needles(p.scanner_user_agents)
        self._display_needles = _needles(p.scanner_from_display)

    @property
    def policy(self) -> GuardPolicy:
        return self._policy

    # ---- lists -------------------------------------------------------------------------------

    def set_whitelist(self, networks: Iterable[str | _Net | _Addr]) -> None:
        """Replace the whitelist (CIDRs or addresses; raises ValueError on a malformed one)."""
        self._white = _NetSet(networks)
        self._hosts.clear()

    def set_blacklist(self, networks: Iterable[str | _Net | _Addr]) -> None:
        """Replace the blacklist (CIDRs or addresses; raises ValueError on a malformed one)."""
        self._black = _NetSet(networks)
        self._hosts.clear()

    def add_trusted(self, hosts: Iterable[str | _Net | _Addr]) -> None:
        """Add the resolved addresses of external line proxies and trunks: treated like the
        whitelist (never banned, never flood-blocked, never counted)."""
        self._trusted = _NetSet([*self._trusted.hosts, *self._trusted.nets, *hosts])
        self._hosts.clear()

    def set_trusted(self, hosts: Iterable[str | _Net | _Addr]) -> None:
        """Replace the trusted addresses (after the app re-resolves its lines and trunks)."""
        self._trusted = _NetSet(hosts)
        self._hosts.clear()

    # ---- hot path ------------------------------------------------------------------------------

    def _classify(self, host: str) -> tuple[str, int]:
        """Key and list membership of a host seen for the first time (then cached)."""
        a4 = _parse_v4(host)
        if a4 is not None:
            key, v4, a = host, True, a4
        else:
            addr = _parse_host(host)
            if addr is None:
                key, v4, a = host, False, -1
            else:
                key, v4, a = _key_of(addr, self._policy.ipv6_prefix), addr.version == 4, int(addr)
        if a < 0:
            kind = _NEUTRAL
        elif self._white.has(v4, a) or self._trusted.has(v4, a):
            kind = _WHITE
        elif self._black.has(v4, a):
            kind = _BLACK
        else:
            kind = _NEUTRAL
        entry = (key, kind)
        hosts = self._hosts
        if len(hosts) >= self._max:
            hosts.clear()
        hosts[host] = entry
        return entry

    def key(self, host: str) -> str:
        """The source key of ``host`` (see :func:`source_key`), from the host cache."""
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._classify(host)
        return entry[0]

    def is_allowed(self, host: str, now: float) -> bool:
        """Should a datagram from ``host`` be processed at all? Called for every datagram.

        False when blacklisted, or when its source key is banned (``now < until``) or
        flood-blocked; always True when whitelisted or trusted. O(1): a cached host look-up and
        two dict look-ups, no allocation for an allowed, already-seen host.
        """
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._classify(host)
        kind = entry[1]
        if kind:
            return kind == _WHITE
        if not self._enforce:
            return True
        key = entry[0]
        ban = self._bans.get(key)
        if ban is not None and now < ban.until:
            ban.hits += 1
            return False
        until = self._flood_until.get(key)
        return until is None or now >= until

    def record_request(self, host: str, now: float, registered_count: int = 0) -> GuardEvent | None:
        """Count one request for flood detection (call it once per parsed request).

        The limit is ``flood_rate * max(1, registered_count)`` requests per second, where
        ``registered_count`` is the number of live authenticated registrations held by this
        address. Above it the source is blocked for ``flood_block`` (:class:`FloodBlocked`),
        or banned (reason ``flood``, :class:`Banned`) on the ``flood_ban_after``-th block
        within ``repeat_window``.
        """
        if not self._enforce:
            return None
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._classify(host)
        if entry[1]:
            return None
        key = entry[0]
        rate = self._rates.get(key)
        if rate is None:
            if len(self._rates) >= self._max:
                self._room(self._rates, now)
            rate = self._rates[key] = _Rate(now)
        elapsed = now - rate.start
        if elapsed >= 1.0:
            if elapsed >= 2.0:
                rate.prev = 0
                rate.start = now
                elapsed = 0.0
            else:
                rate.prev = rate.cur
                rate.start += 1.0
                elapsed -= 1.0
            rate.cur = 0
        elif elapsed < 0.0:
            elapsed = 0.0
        rate.cur += 1
        limit = self._policy.flood_rate * (registered_count if registered_count > 1 else 1)
        if rate.cur <= limit and rate.prev == 0:
            return None
        estimate = rate.prev * (1.0 - elapsed) + rate.cur
        if estimate <= limit:
            return None
        return self._flood(key, now, estimate)

    def _flood(self, key: str, now: float, estimate: float) -> GuardEvent:
        p = self._policy
        del self._rates[key]
        fo = self._flood_offences.get(key)
        if fo is not None and now < fo.last_until + p.repeat_window:
            fo.count += 1
        else:
            if fo is None and len(self._flood_offences) >= self._max:
                self._room(self._flood_offences, now)
            fo = self._flood_offences[key] = _Offences(1, now)
        until = now + p.flood_block
        fo.last_until = until
        rate = round(estimate)
        if fo.count >= p.flood_ban_after:
            del self._flood_offences[key]
            self._flood_until.pop(key, None)
            return self._ban(key, now, "flood", detail=f"rate={rate}/s")
        if key not in self._flood_until and len(self._flood_until) >= self._max:
            self._room(self._flood_until, now)
        self._flood_until[key] = until
        return FloodBlocked(key, until, rate)

    # ---- what the PBX reports -------------------------------------------------------------------

    def _counted_key(self, host: str, now: float) -> str | None:
        """The key of a host whose behaviour counts, or None (disabled, white/trusted, or
        already banned: in-flight messages of a just-banned source change nothing)."""
        if not self._enforce:
            return None
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._classify(host)
        if entry[1] == _WHITE:
            return None
        key = entry[0]
        ban = self._bans.get(key)
        if ban is not None and now < ban.until:
            return None
        return key

    def record_auth_failure(
        self,
        host: str,
        user: str | None,
        now: float,
        user_known: bool,
        user_agent: str | None,
        has_live_registrations_from_host: bool = False,
    ) -> GuardEvent | None:
        """Report a *final* authentication failure (wrong password, unknown user after a
        challenge, forged nonce, IP-authorised user claimed from the wrong address).

        Not failures (do not call): the first 401/407 challenge; stale, expired or replayed
        nonces. Rules, all counted within ``window``:

        * without live registrations from this address: ``max_failures`` failures ban it;
        * with live registrations (an office behind NAT): ``max_failures`` failures of one
          known user block that ``(address, user)`` pair only (:class:`UserBlocked`);
          ``max_failures`` unknown-user failures, or ``max_failures`` distinct users failing,
          ban the address (the scanning pattern).
        """
        key = self._counted_key(host, now)
        if key is None:
            return None
        p = self._policy
        name = _clip(user, _MAX_NAME) if user else ""
        known = user_known and bool(name)
        af = self._failures.get(key)
        if af is None:
            if len(self._failures) >= self._max:
                self._room(self._failures, now)
            af = self._failures[key] = _AddrFailures(p.max_failures)
        af.last = now
        af.all.append(now)
        if not known:
            af.unknown.append(now)
        users = af.users
        users.pop(name, None)
        users[name] = now
        if len(users) > max(p.max_failures, _MAX_DETAIL_USERS):
            del users[next(iter(users))]
        if user_agent:
            af.user_agent = _clip(user_agent, _MAX_UA)

        if not has_live_registrations_from_host:
            if _full(af.all, now, p.window):
                return self._ban(key, now, "auth-failures")
            return None
        if not known and _full(af.unknown, now, p.window):
            return self._ban(key, now, "auth-failures", detail="unknown users")
        cutoff = now - p.window
        if sum(1 for t in users.values() if t > cutoff) >= p.max_failures:
            return self._ban(key, now, "auth-failures", detail="many users")
        if not known:
            return None
        pair = (key, name)
        uf = self._user_failures.get(pair)
        if uf is None:
            if len(self._user_failures) >= self._max:
                self._room(self._user_failures, now)
            uf = self._user_failures[pair] = deque(maxlen=p.max_failures)
        uf.append(now)
        if not _full(uf, now, p.window):
            return None
        del self._user_failures[pair]
        until = now + p.ban_time
        if pair not in self._user_blocks and len(self._user_blocks) >= self._max:
            self._room(self._user_blocks, now)
        self._user_blocks[pair] = until
        return UserBlocked(key, name, until)

    def is_user_blocked(self, host: str, user: str, now: float) -> bool:
        """Is ``user`` blocked from ``host`` (answer 403 without checking the password)?"""
        if not self._user_blocks:
            return False
        until = self._user_blocks.get((self.key(host), _clip(user, _MAX_NAME)))
        return until is not None and now < until

    def unblock_user(self, host: str, user: str) -> bool:
        """Lift a user block by hand (the phone's password was fixed). True if there was one."""
        pair = (self.key(host), _clip(user, _MAX_NAME))
        self._user_failures.pop(pair, None)
        return self._user_blocks.pop(pair, None) is not None

    def record_unknown_target(self, host: str, user: str, now: float) -> GuardEvent | None:
        """Report a request aimed at a user that does not exist (svwar enumeration): requests
        for ``enumeration_threshold`` distinct unknown users within ``window`` ban the source,
        credentials or not."""
        key = self._counted_key(host, now)
        if key is None:
            return None
        p = self._policy
        seen = self._enum.get(key)
        if seen is None:
            if len(self._enum) >= self._max:
                self._room(self._enum, now)
            seen = self._enum[key] = {}
        name = _clip(user, _MAX_NAME)
        seen.pop(name, None)
        seen[name] = now
        cutoff = now - p.window
        if len(seen) >= p.enumeration_threshold:
            for old in [u for u, t in seen.items() if t <= cutoff]:
                del seen[old]
        if len(seen) >= p.enumeration_threshold:
            return self._ban(key, now, "enumeration", users=tuple(seen))
        return None

    def inspect_signature(
        self, host: str, user_agent: str | None, from_display: str | None, now: float
    ) -> GuardEvent | None:
        """Ban at once a source whose User-Agent or From display name is a known scanner's
        (case-insensitive substring match)."""
        ua_hit = user_agent is not None and _matches(user_agent, self._ua_needles)
        display_hit = from_display is not None and _matches(from_display, self._display_needles)
        if not (ua_hit or display_hit):
            return None
        key = self._counted_key(host, now)
        if key is None:
            return None
        detail = (
            "" if ua_hit or not from_display else f"from-display={_clip(from_display, _MAX_UA)}"
        )
        return self._ban(
            key,
            now,
            "scanner",
            user_agent=_clip(user_agent, _MAX_UA) if user_agent else None,
            detail=detail,
        )

    # ---- bans --------------------------------------------------------------------------------

    def _ban(
        self,
        key: str,
        now: float,
        reason: BanReason,
        *,
        duration: float | None = None,
        users: tuple[str, ...] | None = None,
        user_agent: str | None = None,
        detail: str = "",
    ) -> Banned:
        p = self._policy
        off = self._offences.get(key)
        if off is not None and now < off.last_until + p.repeat_window:
            off.count += 1
        else:
            if off is None and len(self._offences) >= self._max:
                self._room(self._offences, now)
            off = self._offences[key] = _Offences(1, now)
        if duration is None:
            shift = min(off.count - 1, _MAX_OFFENCE_SHIFT)
            duration = min(p.ban_time * (1 << shift), p.max_ban_time)
        until = now + duration
        off.last_until = until
        af = self._failures.pop(key, None)
        if users is None:
            users = tuple(islice(reversed(af.users), _MAX_DETAIL_USERS)) if af else ()
            users = tuple(reversed(users))
        if user_agent is None and af is not None:
            user_agent = af.user_agent
        ban = Ban(
            source=key,
            reason=reason,
            since=now,
            until=until,
            offence=off.count,
            users=tuple(islice(users, _MAX_DETAIL_USERS)),
            user_agent=user_agent,
            detail=detail,
        )
        self._enum.pop(key, None)
        self._rates.pop(key, None)
        self._install(ban, now)
        return Banned(ban)

    def _install(self, ban: Ban, now: float | None) -> None:
        bans = self._bans
        if ban.source not in bans and len(bans) >= self._policy.max_bans:
            if now is not None:
                self._sweep_bans(now, [])  # drops expired bans silently: memory before events
            _make_room(bans, self._policy.max_bans)
        bans[ban.source] = _BanState(ban)
        if ban.until < self._next_expiry:
            self._next_expiry = ban.until

    def _manual_key(self, source: str) -> str:
        """Normalise and vet a manually named source; raise GuardRefused when refused."""
        text = source.strip()
        try:
            net = _normalise_net(_to_net(text))
        except ValueError:
            raise GuardRefused(f"not an IP address: {source!r}") from None
        prefix = self._policy.ipv6_prefix
        if isinstance(net, IPv4Network):
            if net.prefixlen != 32:
                raise GuardRefused(
                    f"a ban covers one IPv4 address, not {net}: use the blacklist for networks"
                )
            covered: _Net = net
        else:
            if net.prefixlen < prefix:
                raise GuardRefused(
                    f"a ban covers one IPv6 /{prefix}, not {net}: use the blacklist for networks"
                )
            covered = net.supernet(new_prefix=prefix) if net.prefixlen > prefix else net
        if any(_overlap(covered, lo) for lo in _LOOPBACKS):
            raise GuardRefused(f"refusing to ban loopback {covered}")
        if self._white.overlaps(covered):
            raise GuardRefused(f"refusing to ban {covered}: it covers a whitelisted address")
        if self._trusted.overlaps(covered):
            raise GuardRefused(f"refusing to ban {covered}: it covers a trusted line/trunk address")
        return _key_of(covered.network_address, prefix)

    def ban(
        self,
        source: str,
        now: float,
        duration: float | None = None,
        reason: BanReason = "manual",
        detail: str = "",
    ) -> Banned:
        """Ban ``source`` by hand (an address, or an IPv6 network of exactly the ban prefix).

        ``duration`` None follows the repeat-offender schedule (``ban_time`` doubling). Raises
        :class:`GuardRefused` for loopback, whitelisted or trusted addresses, networks wider
        than one ban key, and strings that are not addresses; ValueError for a non-positive
        duration. An existing ban of the same source is replaced.
        """
        if duration is not None and not (duration > 0 and math.isfinite(duration)):
            raise ValueError(f"ban duration must be a positive finite number: {duration!r}")
        key = self._manual_key(source)
        return self._ban(key, now, reason, duration=duration, users=(), detail=detail)

    def _lenient_key(self, source: str) -> str:
        addr = _parse_host(source)
        if addr is not None:
            return _key_of(addr, self._policy.ipv6_prefix)
        try:
            net = _normalise_net(ip_network(source, strict=False))
        except ValueError:
            return source
        prefix = self._policy.ipv6_prefix
        if isinstance(net, IPv6Network) and net.prefixlen >= prefix:
            return _key_of(net.network_address, prefix)
        if isinstance(net, IPv4Network) and net.prefixlen == 32:
            return str(net.network_address)
        return str(net)

    def unban(self, source: str, now: float) -> Unbanned | None:
        """Lift a ban by hand (``source`` is an address or a ban key). Also forgets the
        source's flood block, failure counts and offences. None if it was not banned."""
        key = self._lenient_key(source)
        self._flood_until.pop(key, None)
        self._failures.pop(key, None)
        self._enum.pop(key, None)
        self._offences.pop(key, None)
        self._flood_offences.pop(key, None)
        state = self._bans.pop(key, None)
        if state is None:
            return None
        return Unbanned(key, "manual")

    def restore(self, bans: Iterable[Ban]) -> None:
        """Load bans from the store after a restart (expired ones are reported by the next
        :meth:`expire`). The offence count of each source is restored with it."""
        for ban in bans:
            key = self._lenient_key(ban.source)
            if key != ban.source:
                ban = replace(ban, source=key)
            old = self._bans.get(key)
            if old is not None and old.until >= ban.until:
                continue
            self._install(ban, None)
            off = self._offences.get(key)
            if off is None:
                if len(self._offences) >= self._max:
                    _make_room(self._offences, self._max)
                self._offences[key] = _Offences(ban.offence, ban.until)
            elif ban.until >= off.last_until:
                off.count = max(off.count, ban.offence)
                off.last_until = ban.until

    def active_bans(self, now: float) -> list[Ban]:
        """Bans in force at ``now`` (with their live hit counts), oldest first."""
        live = [s.snapshot() for s in self._bans.values() if now < s.until]
        live.sort(key=lambda b: (b.since, b.source))
        return live

    def next_expiry(self) -> float | None:
        """When :meth:`expire` next has a ban to report (may be early, never late), or None."""
        return None if not self._bans else self._next_expiry

    def expire(self, now: float) -> list[GuardEvent]:
        """Sweep: report bans that ended (``until <= now``) as :class:`Unbanned` and drop them;
        every 10 s also drop stale counters, flood and user blocks."""
        events: list[GuardEvent] = []
        if self._bans and now >= self._next_expiry:
            self._sweep_bans(now, events)
        if now >= self._next_aux_sweep:
            self._sweep_aux(now)
        return events

    def _sweep_bans(self, now: float, events: list[GuardEvent]) -> None:
        nxt = math.inf
        for key, state in list(self._bans.items()):
            if state.until <= now:
                del self._bans[key]
                events.append(Unbanned(key, "expired"))
            elif state.until < nxt:
                nxt = state.until
        self._next_expiry = nxt

    def _sweep_aux(self, now: float) -> None:
        p = self._policy
        self._next_aux_sweep = now + _AUX_SWEEP_INTERVAL
        cutoff = now - p.window
        for k in [k for k, r in self._rates.items() if now - r.start >= 2.0]:
            del self._rates[k]
        for k in [k for k, t in self._flood_until.items() if t <= now]:
            del self._flood_until[k]
        for pair in [k for k, t in self._user_blocks.items() if t <= now]:
            del self._user_blocks[pair]
        for k in [k for k, af in self._failures.items() if af.last <= cutoff]:
            del self._failures[k]
        for pair in [k for k, d in self._user_failures.items() if not d or d[-1] <= cutoff]:
            del self._user_failures[pair]
        for k in [k for k, s in self._enum.items() if not s or max(s.values()) <= cutoff]:
            del self._enum[k]
        forget = now - p.repeat_window
        for table in (self._offences, self._flood_offences):
            for k in [k for k, o in table.items() if o.last_until <= forget]:
                del table[k]

    def _room(self, table: dict[Any, Any], now: float) -> None:
        """Make room in a full table: sweep stale entries (at most once a second), then evict
        the oldest quarter if still full."""
        if now >= self._next_aux_sweep - _AUX_SWEEP_INTERVAL + 1.0:
            self._sweep_aux(now)
        _make_room(table, self._max)

    def stats(self) -> dict[str, int]:
        """Table sizes (for metrics and for the bound tests)."""
        return {
            "hosts": len(self._hosts),
            "bans": len(self._bans),
            "flood_blocks": len(self._flood_until),
            "rates": len(self._rates),
            "flood_offences": len(self._flood_offences),
            "failures": len(self._failures),
            "user_failures": len(self._user_failures),
            "user_blocks": len(self._user_blocks),
            "enumeration": len(self._enum),
            "offences": len(self._offences),
        }


def _needles(patterns: Iterable[str]) -> tuple[str, ...]:
    return tuple(n.lower() for n in patterns if n)


def _matches(text: str, needles: tuple[str, ...]) -> bool:
    """Case-insensitive substring match (``str.lower`` + ``in``: ~5x faster than an
    IGNORECASE regex alternation)."""
    if not needles:
        return False
    lowered = text.lower()
    for needle in needles:  # noqa: SIM110 - no generator per request (any() would make one)
        if needle in lowered:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Log lines


def _time(t: float) -> str:
    if math.isnan(t):
        return "nan"
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return repr(float(t)) if math.isfinite(t) else ("inf" if t > 0 else "-inf")


def _escape_char(c: str) -> str:
    esc = _ESCAPES.get(c)
    if esc is not None:
        return esc
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"\\x{ord(c):02x}"
    return c


def _escaped(text: str) -> str:
    return "".join(_escape_char(c) for c in text)


def _quoted(text: str) -> str:
    return '"' + _escaped(text) + '"'


def _bare(text: str) -> str:
    return text if _BARE_VALUE.fullmatch(text) else _quoted(text)


def format_log_line(event: GuardEvent) -> str:
    """One stable log line for ``event`` (grammar in the module docstring).

    >>> format_log_line(Unbanned("203.0.113.7", "expired"))
    'sipbox-guard action=unban source=203.0.113.7 reason=expired'
    """
    if isinstance(event, Banned):
        b = event.ban
        parts = [
            "sipbox-guard action=ban",
            f"source={_bare(b.source)}",
            f"reason={_bare(b.reason)}",
            f"since={_time(b.since)}",
            f"until={_time(b.until)}",
            f"offence={b.offence}",
        ]
        if b.users:
            names = ",".join(_escaped(u).replace(",", "\\x2c") for u in b.users)
            parts.append(f'users="{names}"')
        if b.user_agent:
            parts.append(f"ua={_quoted(b.user_agent)}")
        if b.detail:
            parts.append(f"detail={_quoted(b.detail)}")
        return " ".join(parts)
    if isinstance(event, Unbanned):
        return (
            f"sipbox-guard action=unban source={_bare(event.source)} reason={_bare(event.reason)}"
        )
    if isinstance(event, FloodBlocked):
        return (
            f"sipbox-guard action=flood-block source={_bare(event.source)}"
            f" until={_time(event.until)} rate={event.rate}"
        )
    return (
        f"sipbox-guard action=user-block source={_bare(event.source)}"
        f" user={_quoted(event.user)} until={_time(event.until)}"
    )
