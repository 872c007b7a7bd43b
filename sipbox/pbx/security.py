"""The anti-scanning service: the pure `Guard` (guard.py) wired to the clock, the store, the log
and the transport (issue 6).

Why a service around the guard: the guard decides and never does I/O; somebody must feed it the
time, persist what it decides, log it in the documented line format, sweep expired bans on time
and close what a new ban must close. This module is that somebody, and nothing on the SIP path
ever waits for it:

* **Hot path.** `accept_source()` returns the closure the transport calls for every datagram and
  every TCP/TLS accept: ``guard.is_allowed(host, clock())``. The clock is ``time.time`` because
  bans are stored and logged with wall-clock times (they survive restarts); it is a C call as
  cheap as ``loop.time()``. `screen(ctx)` runs once per parsed request (the dispatcher's hook):
  flood accounting scaled by the live registrations of that address, scanner signatures
  (User-Agent, From display name) and unknown-target enumeration (svwar's pattern). It answers
  False for a request that must not be answered at all (its source was just banned or blocked).
* **Events.** Every guard event (`Banned`, `Unbanned`, `FloodBlocked`, `UserBlocked`) goes
  through `handle_event`: one log line on logger ``sipbox.security`` (`format_log_line`, the
  stable format fail2ban/SIEM parse), live TCP/TLS connections of a newly banned or blocked
  source closed through a callback, and a store write queued for the one background writer
  (bounded queue; when it is full the write is dropped and counted — the memory state and the
  log line stay right, only the audit row is lost).
* **Timer.** One `loop.call_later` handle for ``guard.expire()`` at ``guard.next_expiry()``
  (at most 10 s away, so the guard's stale-counter sweep runs even with no bans).
* **Lists.** White and black lists are the union of the config file (read-only) and the store
  (managed through the API, changed at run time). Trusted addresses (resolved external line and
  trunk proxies) come from `set_trusted_hosts`.
* **Restart.** `load()` restores active bans (with their offence counts) and the stored lists
  before the transport takes traffic; `stop()` writes the live hit counts back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sipbox.config import GuardSettings
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.uri import SipUri
from sipbox.storage import AddressListKind, NotFound, SecurityEvent, Store
from sipbox.storage import Ban as StoredBan

from .dispatcher import RequestContext
from .guard import (
    Ban,
    Banned,
    FloodBlocked,
    Guard,
    GuardEvent,
    GuardPolicy,
    GuardRefused,
    Unbanned,
    UserBlocked,
    format_log_line,
)

__all__ = ["ListEntry", "SecurityService", "policy_from_settings"]

log = logging.getLogger("sipbox.security")

_DISABLED_LIMIT = 1_000_000_000
"""What a setting of 0 ("this rule off") becomes in the guard, which wants positive numbers."""

_SWEEP_EVERY = 10.0
_QUEUE_BOUND = 10_000
# Methods whose Request-URI user names a target an out-of-dialog request is aimed at (svwar
# uses REGISTER, OPTIONS or INVITE; REGISTER targets are reported by the Authenticator).
_TARGETED = frozenset({"INVITE", "OPTIONS", "MESSAGE", "SUBSCRIBE"})

Origin = Literal["config", "api"]


class UserLookup(Protocol):
    """What the service needs of the user directory (`sipbox.pbx.users.UserDirectory`)."""

    def get(self, number: str) -> object | None: ...

    def ip_authorized_users(self, host: str) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One white/black list entry: config entries cannot be removed through the API."""

    kind: AddressListKind
    network: str
    note: str
    origin: Origin
    created_at: float | None = None


def policy_from_settings(settings: GuardSettings) -> GuardPolicy:
    """The guard policy for ``[guard]`` settings (0 for max_failures/flood_rate = rule off)."""
    return GuardPolicy(
        enabled=settings.enabled,
        max_failures=settings.max_failures or _DISABLED_LIMIT,
        window=settings.window,
        ban_time=settings.ban_time,
        max_ban_time=settings.max_ban_time,
        flood_rate=settings.flood_rate or _DISABLED_LIMIT,
        flood_block=settings.flood_block,
        ipv6_prefix=settings.ipv6_prefix,
        whitelist=tuple(settings.whitelist),
        blacklist=tuple(settings.blacklist),
        scanner_user_agents=tuple(settings.scanner_user_agents),
    )


def to_stored(ban: Ban) -> StoredBan:
    """A guard ban as a store record (users, User-Agent and note go in ``detail``)."""
    detail: dict[str, Any] = {}
    if ban.users:
        detail["users"] = list(ban.users)
    if ban.user_agent:
        detail["user_agent"] = ban.user_agent
    if ban.detail:
        detail["note"] = ban.detail
    return StoredBan(
        source=ban.source,
        reason=ban.reason,
        since=ban.since,
        until=ban.until,
        detail=detail,
        hit_count=ban.hit_count,
        manual=ban.reason == "manual",
        offence_count=ban.offence,
    )


def from_stored(stored: StoredBan) -> Ban:
    """A store record as a guard ban (a permanent stored ban becomes a very long one)."""
    detail = stored.detail or {}
    users = detail.get("users") or ()
    reason = stored.reason
    if reason not in ("auth-failures", "scanner", "enumeration", "flood", "manual", "blacklist"):
        reason = "manual"
    return Ban(
        source=stored.source,
        reason=reason,  # type: ignore[arg-type]
        since=stored.since,
        until=stored.until if stored.until is not None else math.inf,
        offence=max(1, stored.offence_count),
        hit_count=stored.hit_count,
        users=tuple(str(u) for u in users),
        user_agent=detail.get("user_agent") or None,
        detail=str(detail.get("note") or ""),
    )


def _event_record(event: GuardEvent) -> tuple[str, str, str, dict[str, Any]]:
    """(kind, source, reason, detail) of the audit row for a guard event."""
    if isinstance(event, Banned):
        b = event.ban
        detail: dict[str, Any] = {"since": b.since, "until": b.until, "offence": b.offence}
        if b.users:
            detail["users"] = list(b.users)
        if b.user_agent:
            detail["user_agent"] = b.user_agent
        if b.detail:
            detail["note"] = b.detail
        return "ban", b.source, b.reason, detail
    if isinstance(event, Unbanned):
        return "unban", event.source, event.reason, {}
    if isinstance(event, FloodBlocked):
        return "flood-block", event.source, "flood", {"until": event.until, "rate": event.rate}
    return "user-block", event.source, "auth-failures", {"user": event.user, "until": event.until}


def _display_of(from_value: str | None) -> str | None:
    """The display name of a raw From header value, without a full parse (svmap's From is
    ``"sipvicious"<sip:100@1.1.1.1>``); only consulted for the scanner signature."""
    if not from_value:
        return None
    text = from_value.lstrip()
    if text.startswith('"'):
        end = text.find('"', 1)
        return text[1:end] if end > 0 else text[1:]
    lt = text.find("<")
    return (text[:lt].strip() or None) if lt > 0 else None


class SecurityService:
    """Owns the guard at run time; see the module docstring for the division of labour."""

    def __init__(
        self,
        settings: GuardSettings,
        store: Store | None,
        *,
        clock: Callable[[], float] = time.time,
        policy: GuardPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.guard = Guard(policy if policy is not None else policy_from_settings(settings))
        self._config_white = tuple(settings.whitelist)
        self._config_black = tuple(settings.blacklist)
        self._stored: dict[AddressListKind, dict[str, ListEntry]] = {
            "whitelist": {},
            "blacklist": {},
        }
        self._trusted: tuple[str, ...] = ()
        self.close_source: Callable[[str], object] | None = None
        self.users: UserLookup | None = None
        self.live_registrations_from: Callable[[str], int] = lambda host: 0
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats: dict[str, int] = {}

    # -- wiring ---------------------------------------------------------------------------
    def attach(
        self,
        *,
        users: UserLookup | None = None,
        live_registrations_from: Callable[[str], int] | None = None,
        close_source: Callable[[str], object] | None = None,
    ) -> None:
        """Give the service what it reads on the request path and what it closes on a ban."""
        if users is not None:
            self.users = users
        if live_registrations_from is not None:
            self.live_registrations_from = live_registrations_from
        if close_source is not None:
            self.close_source = close_source

    def accept_source(self) -> Callable[[str], bool]:
        """The transport's source hook: ``guard.is_allowed(host, now)``, nothing else."""
        is_allowed = self.guard.is_allowed
        clock = self.clock

        def accept(host: str) -> bool:
            return is_allowed(host, clock())

        return accept

    # -- life cycle -----------------------------------------------------------------------
    async def load(self) -> None:
        """Restore active bans and the stored lists (before the transport takes traffic)."""
        if self.store is None:
            return
        now = self.clock()
        stored = await self.store.list_active_bans(now)
        self.guard.restore(from_stored(b) for b in stored)
        with contextlib.suppress(Exception):
            await self.store.purge_expired_bans(now)
        for entry in await self.store.list_addresses():
            self._stored[entry.kind][entry.network] = ListEntry(
                entry.kind, entry.network, entry.note, "api", entry.created_at
            )
        self._apply_lists()
        if stored:
            log.info("restored %d active ban(s)", len(stored))

    def start(self) -> None:
        """Start the background writer and the expiry timer (on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(_QUEUE_BOUND)
        self._writer = self._loop.create_task(self._write_loop(), name="sipbox-security-writer")
        self._rearm()

    async def stop(self) -> None:
        """Stop the timer, write the live hit counts back, drain the writer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue is not None and self.store is not None:
            for ban in self.guard.active_bans(self.clock()):
                if ban.hit_count:
                    self._enqueue(lambda b=ban: self._store_ban(b))  # type: ignore[misc]
        if self._writer is not None:
            assert self._queue is not None
            try:
                await asyncio.wait_for(self._queue.join(), 5.0)
            except TimeoutError:
                log.warning("security writer did not drain within 5 s")
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    # -- the request path -------------------------------------------------------------------
    def screen(self, ctx: RequestContext) -> bool:
        """The dispatcher's per-request hook: False = drop silently (no response at all).

        Flood accounting first (cheapest), then scanner signatures, then unknown-target
        enumeration for out-of-dialog requests aimed at a user (only from addresses holding no
        live registrations and no IP-authorized user: an office dialling out is not scanning).
        """
        guard = self.guard
        if not guard.policy.enabled:
            return True
        remote = getattr(ctx.peer, "remote", None)
        host = getattr(remote, "host", None)
        if host is None:
            return True
        now = self.clock()
        live = self.live_registrations_from(host)
        event = guard.record_request(host, now, live)
        if event is not None:
            self.handle_event(event)
            if not isinstance(event, UserBlocked):
                return False
        request = ctx.request
        headers = request.headers
        display = _display_of(headers.get("from"))
        event = guard.inspect_signature(host, headers.get("user-agent"), display, now)
        if event is not None:
            self.handle_event(event)
            self._count("scanner")
            return False
        ctx.signature = (guard, display)  # auth need not inspect the same values again
        if request.method in _TARGETED and live == 0 and self.users is not None:
            uri = request.uri
            user = uri.user_decoded() if isinstance(uri, SipUri) else None
            if (
                user
                and self.users.get(user) is None
                and not self._in_dialog(ctx)
                and not self.users.ip_authorized_users(host)
            ):
                event = guard.record_unknown_target(host, user, now)
                if event is not None:
                    self.handle_event(event)
                    return False
        return True

    @staticmethod
    def _in_dialog(ctx: RequestContext) -> bool:
        try:
            return ctx.request.to.tag is not None
        except RemoteProtocolError:
            return False

    def handle_event(self, event: object) -> None:
        """Log, close connections, queue the store write, re-arm the timer. Never raises."""
        if not isinstance(event, Banned | Unbanned | FloodBlocked | UserBlocked):
            return
        try:
            log.warning(format_log_line(event))
            kind = type(event).__name__
            self._count(kind)
            if isinstance(event, Banned | FloodBlocked):
                self._close(event.ban.source if isinstance(event, Banned) else event.source)
            self._persist(event)
            if isinstance(event, Banned):
                self._rearm()
        except Exception:
            log.exception("security event handling failed")

    def _close(self, source: str) -> None:
        closer = self.close_source
        if closer is None:
            return
        try:
            closer(source)
        except Exception:
            log.exception("closing connections of %s failed", source)

    # -- persistence --------------------------------------------------------------------------
    def _persist(self, event: GuardEvent) -> None:
        if self.store is None:
            return
        kind, source, reason, detail = _event_record(event)
        at = self.clock()
        if isinstance(event, Banned):
            ban = event.ban
            self._enqueue(lambda: self._store_ban(ban))
        elif isinstance(event, Unbanned):
            self._enqueue(lambda: self._delete_ban(source))
        store = self.store
        self._enqueue(lambda: store.append_security_event(at, kind, source, reason, detail))

    async def _store_ban(self, ban: Ban) -> None:
        assert self.store is not None
        await self.store.upsert_ban(to_stored(ban))

    async def _delete_ban(self, source: str) -> None:
        assert self.store is not None
        await self.store.delete_ban(source)

    def _enqueue(self, job: Callable[[], Awaitable[object]]) -> None:
        queue = self._queue
        if queue is None:
            return
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            if not self.stats.get("store_dropped"):
                log.warning("security store queue full: dropping audit writes")
            self._count("store_dropped")

    async def _write_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            job = await queue.get()
            try:
                await job()
            except Exception:
                log.exception("security store write failed")
            finally:
                queue.task_done()

    # -- the expiry timer ---------------------------------------------------------------------
    def _rearm(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = self.clock()
        nxt = self.guard.next_expiry()
        when = min(nxt if nxt is not None else math.inf, now + _SWEEP_EVERY)
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_later(max(0.0, when - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        try:
            for event in self.guard.expire(self.clock()):
                self.handle_event(event)
        finally:
            self._rearm()

    # -- management (the API) -----------------------------------------------------------------
    def active_bans(self) -> list[Ban]:
        """Bans in force now, with live hit counts, oldest first."""
        return self.guard.active_bans(self.clock())

    def ban(self, source: str, duration: float | None = None, note: str = "") -> Ban:
        """Ban by hand; raises `GuardRefused` (white-listed, trusted, loopback, not an address,
        a network wider than one ban key) or ValueError (bad duration)."""
        event = self.guard.ban(source, self.clock(), duration, "manual", note)
        self.handle_event(event)
        return event.ban

    def unban(self, source: str) -> bool:
        """Lift a ban by hand; False if the source was not banned."""
        event = self.guard.unban(source, self.clock())
        if event is None:
            return False
        self.handle_event(event)
        return True

    def set_trusted_hosts(self, hosts: Iterable[str]) -> None:
        """The resolved addresses of every external line proxy and trunk: never banned."""
        self._trusted = tuple(hosts)
        self.guard.set_trusted(self._trusted)

    def list_entries(self, kind: AddressListKind) -> list[ListEntry]:
        """Config entries first, then the API-managed ones."""
        config = self._config_white if kind == "whitelist" else self._config_black
        out = [
            ListEntry(kind, str(ipaddress.ip_network(n, strict=False)), "", "config")
            for n in config
        ]
        out.extend(sorted(self._stored[kind].values(), key=lambda e: e.network))
        return out

    async def add_entry(self, kind: AddressListKind, network: str, note: str = "") -> ListEntry:
        """Store and apply a list entry at once. White-listing lifts the bans it covers;
        black-listing closes live connections it covers. `AlreadyExists` on duplicates."""
        canonical = str(ipaddress.ip_network(network.strip(), strict=False))
        if self.store is None:
            raise RuntimeError("no store")
        config = self._config_white if kind == "whitelist" else self._config_black
        if any(str(ipaddress.ip_network(n, strict=False)) == canonical for n in config):
            from sipbox.storage import AlreadyExists

            raise AlreadyExists(f"{kind} already contains {canonical} (configuration file)")
        stored = await self.store.add_address(kind, canonical, note)
        entry = ListEntry(kind, stored.network, stored.note, "api", stored.created_at)
        self._stored[kind][stored.network] = entry
        self._apply_lists()
        net = ipaddress.ip_network(stored.network)
        if kind == "whitelist":
            for ban in self.guard.active_bans(self.clock()):
                if _covers(net, ban.source):
                    self.unban(ban.source)
        else:
            self._close_listed()
        return entry

    async def reload_lists(self) -> None:
        """Re-read the API-managed white/black lists from the store and apply them, as
        `add_entry` does for one entry (white-listed bans lifted, black-listed connections
        closed). Why: the YAML import writes its entries inside one store transaction and
        must not touch the live guard before it commits; it calls this once afterwards."""
        if self.store is None:
            return
        stored: dict[AddressListKind, dict[str, ListEntry]] = {"whitelist": {}, "blacklist": {}}
        for entry in await self.store.list_addresses():
            stored[entry.kind][entry.network] = ListEntry(
                entry.kind, entry.network, entry.note, "api", entry.created_at
            )
        self._stored = stored
        self._apply_lists()
        nets = [ipaddress.ip_network(n) for n in stored["whitelist"]]
        for ban in self.guard.active_bans(self.clock()):
            if any(_covers(net, ban.source) for net in nets):
                self.unban(ban.source)
        self._close_listed()

    async def remove_entry(self, kind: AddressListKind, network: str) -> None:
        """Remove an API-managed entry; config entries are refused (`ValueError`)."""
        canonical = str(ipaddress.ip_network(network.strip(), strict=False))
        config = self._config_white if kind == "whitelist" else self._config_black
        if any(str(ipaddress.ip_network(n, strict=False)) == canonical for n in config):
            raise GuardRefused(
                f"{canonical} is in [guard] {kind} of the configuration file: remove it there"
            )
        if self.store is None:
            raise NotFound(f"{kind} does not contain {canonical}")
        await self.store.remove_address(kind, canonical)
        self._stored[kind].pop(canonical, None)
        self._apply_lists()

    def _apply_lists(self) -> None:
        self.guard.set_whitelist([*self._config_white, *self._stored["whitelist"]])
        self.guard.set_blacklist([*self._config_black, *self._stored["blacklist"]])

    def _close_listed(self) -> None:
        """After a blacklist change: the closer is asked for a network key it may match."""
        for entry in self._stored["blacklist"].values():
            self._close(entry.network)

    async def events(self, *, limit: int = 100, since: float | None = None) -> list[SecurityEvent]:
        """The audit trail, newest first (read from the store)."""
        if self.store is None:
            return []
        return await self.store.list_security_events(limit=limit, since=since)

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1


def _covers(net: ipaddress.IPv4Network | ipaddress.IPv6Network, source: str) -> bool:
    """Does a network overlap a ban key (an address or an IPv6 prefix)?"""
    try:
        other = ipaddress.ip_network(source, strict=False)
    except ValueError:
        return False
    return net.version == other.version and net.overlaps(other)
