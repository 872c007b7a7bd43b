"""``/bans``, ``/whitelist``, ``/blacklist``, ``/security-events``: the anti-scanning guard.

Bans are read from the guard's memory (the live truth, with live hit counts); the store only
keeps them for restart. A manual ban that would cover a white-listed, trusted or loopback
address is refused with 422 naming why (`GuardRefused`), so an administrator cannot lock out
their own office by mistake. A path segment cannot hold the ``/`` of a network or IPv6 ban
prefix (servers decode ``%2F`` before routing), so every DELETE also takes the value as a query
parameter: ``DELETE /bans?source=2001:db8::/64``, ``DELETE /whitelist?network=10.0.0.0/8``;
``DELETE /bans/203.0.113.7`` (or any address inside a banned IPv6 prefix) works as a path.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sipbox.api import examples as ex
from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.examples import examples
from sipbox.api.routes.common import AUTH_ERRORS, error_responses
from sipbox.config import parse_duration
from sipbox.pbx.guard import Ban, GuardRefused
from sipbox.pbx.security import ListEntry
from sipbox.storage import AddressListKind, SecurityEvent

__all__ = ["router"]

router = APIRouter(tags=["security"], responses=AUTH_ERRORS)


class SecurityView(Protocol):
    """What the routes need of `sipbox.pbx.security.SecurityService` (``server.security``)."""

    def active_bans(self) -> list[Ban]: ...
    def ban(self, source: str, duration: float | None = None, note: str = "") -> Ban: ...
    def unban(self, source: str) -> bool: ...
    def list_entries(self, kind: AddressListKind) -> list[ListEntry]: ...
    async def add_entry(self, kind: AddressListKind, network: str, note: str = "") -> ListEntry: ...
    async def remove_entry(self, kind: AddressListKind, network: str) -> None: ...
    async def events(
        self, *, limit: int = 100, since: float | None = None
    ) -> list[SecurityEvent]: ...


# ------------------------------------------------------------------------------------ bodies


class BanOut(BaseModel):
    """One ban in force."""

    model_config = ConfigDict(json_schema_extra=examples(ex.BAN))

    source: str = Field(description="Banned address, or IPv6 prefix (2001:db8:1:2::/64)")
    reason: str = Field(
        description="auth-failures, scanner, enumeration, flood, manual or blacklist"
    )
    since: float = Field(description="Start (epoch seconds)")
    until: float | None = Field(description="End (epoch seconds); null = permanent")
    expires_in: int | None = Field(description="Seconds left")
    offence: int = Field(description="1 for a first ban; repeat offenders get longer bans")
    hit_count: int = Field(description="Datagrams/connections dropped while banned")
    users: list[str] = Field(description="User names tried (at most 10)")
    user_agent: str | None = None
    detail: str = ""


class BanList(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.BAN_LIST))
    total: int
    bans: list[BanOut]


class BanIn(BaseModel):
    """A manual ban: ``duration`` in seconds or a duration text ("1h", "30m"); default: the
    configured ban time (doubling for repeat offenders)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=examples(ex.BAN_IN))

    source: str = Field(description="An IP address (an IPv6 address bans its prefix)")
    duration: float | None = Field(None, description="Seconds, or text like 1h / 30m / 2d")
    reason: str = Field("", max_length=200, description="A note kept with the ban")

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is None:
            return None
        seconds = parse_duration(value)
        if not seconds > 0:
            raise ValueError("must be greater than 0")
        return seconds


class EntryOut(BaseModel):
    """A white/black list entry; ``origin`` config entries are changed in the config file."""

    model_config = ConfigDict(json_schema_extra=examples(ex.ENTRY))

    network: str
    note: str
    origin: Literal["config", "api"]
    created_at: float | None = None


class EntryList(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.ENTRY_LIST))
    total: int
    entries: list[EntryOut]


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=examples(ex.ENTRY_IN))

    network: str = Field(description="An address or a CIDR network (203.0.113.0/24)")
    note: str = Field("", max_length=200)

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {value!r}") from None


class SecurityEventOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.SECURITY_EVENT))
    id: int
    at: float
    kind: str = Field(description="ban, unban, flood-block or user-block")
    source: str
    reason: str
    detail: dict[str, Any]


class SecurityEventList(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.SECURITY_EVENT_LIST))
    total: int
    events: list[SecurityEventOut]


class UnbannedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.UNBANNED))
    source: str
    unbanned: bool = True


# ------------------------------------------------------------------------------------ routes


def _security(services: ServicesDep) -> SecurityView:
    security: SecurityView | None = getattr(services.context, "security", None)
    if security is None:
        raise ApiError(503, "the anti-scanning guard is not running")
    return security


def _ban_out(ban: Ban, now: float) -> BanOut:
    until = ban.until if ban.until != float("inf") else None
    return BanOut(
        source=ban.source,
        reason=ban.reason,
        since=ban.since,
        until=until,
        expires_in=None if until is None else max(0, int(until - now)),
        offence=ban.offence,
        hit_count=ban.hit_count,
        users=list(ban.users),
        user_agent=ban.user_agent,
        detail=ban.detail,
    )


@router.get("/bans", summary="List bans in force", responses=error_responses(503))
async def list_bans(services: ServicesDep) -> BanList:
    """Every ban in force with its reason, start, end, offence number and hit count."""
    now = time.time()
    bans = [_ban_out(b, now) for b in _security(services).active_bans()]
    return BanList(total=len(bans), bans=bans)


@router.post(
    "/bans",
    status_code=201,
    summary="Ban a source by hand",
    responses=error_responses(422, 503),
)
async def add_ban(body: BanIn, services: ServicesDep) -> BanOut:
    """Ban one address (or IPv6 prefix) now. Refused (422, naming why) for loopback,
    white-listed or trusted (external line/trunk) addresses and for wider networks (use the
    blacklist for those)."""
    try:
        ban = _security(services).ban(body.source, body.duration, body.reason)
    except GuardRefused as exc:
        raise ApiError(422, str(exc), "source") from None
    return _ban_out(ban, time.time())


async def _unban(services: ServicesDep, source: str) -> UnbannedOut:
    if not _security(services).unban(source):
        raise ApiError(404, f"{source} is not banned", "source")
    return UnbannedOut(source=source)


@router.delete("/bans", summary="Lift a ban (?source=)", responses=error_responses(404, 503))
async def delete_ban_query(
    services: ServicesDep,
    source: Annotated[str, Query(description="Address or ban key, as listed")],
) -> UnbannedOut:
    """Same as ``DELETE /bans/{source}``, for sources awkward in a path (IPv6 prefixes)."""
    return await _unban(services, source)


@router.delete("/bans/{source}", summary="Lift a ban", responses=error_responses(404, 503))
async def delete_ban(source: str, services: ServicesDep) -> UnbannedOut:
    """Unban a source (an address; for an IPv6 prefix any address inside it, or use
    ``?source=``); also forgets its failure counts and offences, so a mistaken ban leaves no
    trace in later ban lengths."""
    return await _unban(services, source)


def _entries(services: ServicesDep, kind: AddressListKind) -> EntryList:
    entries = [
        EntryOut(network=e.network, note=e.note, origin=e.origin, created_at=e.created_at)
        for e in _security(services).list_entries(kind)
    ]
    return EntryList(total=len(entries), entries=entries)


async def _add_entry(services: ServicesDep, kind: AddressListKind, body: EntryIn) -> EntryOut:
    entry = await _security(services).add_entry(kind, body.network, body.note)
    return EntryOut(
        network=entry.network, note=entry.note, origin=entry.origin, created_at=entry.created_at
    )


async def _remove_entry(services: ServicesDep, kind: AddressListKind, network: str) -> None:
    try:
        canonical = str(ipaddress.ip_network(network.strip(), strict=False))
    except ValueError:
        raise ApiError(422, f"not an IP address or CIDR network: {network!r}", "network") from None
    try:
        await _security(services).remove_entry(kind, canonical)
    except GuardRefused as exc:
        raise ApiError(409, str(exc), "network") from None


def _list_routes(kind: AddressListKind) -> None:
    """GET/POST/DELETE for one list (the two lists are the same resource shape)."""
    what = "never banned or rate-limited" if kind == "whitelist" else "always dropped"

    async def list_entries(services: ServicesDep) -> EntryList:
        return _entries(services, kind)

    async def add_entry(body: EntryIn, services: ServicesDep) -> EntryOut:
        return await _add_entry(services, kind, body)

    async def remove_query(
        services: ServicesDep,
        network: Annotated[str, Query(description="Address or CIDR network")],
    ) -> None:
        await _remove_entry(services, kind, network)

    async def remove_path(network: str, services: ServicesDep) -> None:
        await _remove_entry(services, kind, network)

    router.add_api_route(
        f"/{kind}",
        list_entries,
        methods=["GET"],
        summary=f"List the {kind} ({what})",
        responses=error_responses(503),
        operation_id=f"list_{kind}",
    )
    router.add_api_route(
        f"/{kind}",
        add_entry,
        methods=["POST"],
        status_code=201,
        summary=f"Add an address or network to the {kind}; live at once",
        responses=error_responses(409, 422, 503),
        operation_id=f"add_{kind}",
    )
    router.add_api_route(
        f"/{kind}",
        remove_query,
        methods=["DELETE"],
        status_code=204,
        summary=f"Remove an entry from the {kind} (?network=)",
        responses=error_responses(404, 409, 422, 503),
        operation_id=f"remove_{kind}_query",
    )
    router.add_api_route(
        f"/{kind}/{{network}}",
        remove_path,
        methods=["DELETE"],
        status_code=204,
        summary=f"Remove a single address from the {kind} (networks: ?network=)",
        responses=error_responses(404, 409, 422, 503),
        operation_id=f"remove_{kind}",
    )


_list_routes("whitelist")
_list_routes("blacklist")


@router.get("/security-events", summary="The security audit trail", responses=error_responses(503))
async def list_events(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Most events to return")] = 100,
    since: Annotated[float | None, Query(description="Only events at or after (epoch)")] = None,
) -> SecurityEventList:
    """Bans, unbans, flood blocks and user blocks, newest first."""
    events = await _security(services).events(limit=limit, since=since)
    items = [
        SecurityEventOut(
            id=e.id, at=e.at, kind=e.kind, source=e.source, reason=e.reason, detail=dict(e.detail)
        )
        for e in events
    ]
    return SecurityEventList(total=len(items), events=items)
