"""Storage of external lines, trunks, call prefixes and inbound routes (issue 5).

Kept apart from `sql.py` (one concern per module) but on the same engine and transactions:
`LineStore` wraps a `SqlStore`. Lines and trunks are "peers": a name, an order, and a JSON
`config` of carrier-specific fields that the PBX validates (the store does not know what a
proxy or a realm is). `secret` is opaque ciphertext: the PBX encrypts passwords with a key
kept in `state_dir`, so a database dump alone never reveals a carrier password.

Everything here is configuration, read whole into memory at start and after each change; no
call ever waits on these queries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import sqlalchemy as sa

from sipbox.storage.errors import InvalidValue, NotFound
from sipbox.storage.schema import inbound_routes, lines, prefixes, trunks
from sipbox.storage.sql import SqlStore

__all__ = [
    "InboundRouteRecord",
    "LineStore",
    "PeerKind",
    "PeerRecord",
    "PrefixRecord",
]

PeerKind = Literal["line", "trunk"]

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PATTERN: Final = re.compile(r"^[0-9*#+]{0,64}$")


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A stored line or trunk. `config` holds the carrier fields (read-only dict)."""

    id: int
    kind: PeerKind
    name: str
    enabled: bool
    position: int
    config: Mapping[str, Any]
    secret: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class PrefixRecord:
    """A call prefix: a digit `pattern`, an optional length range of the dialed number, and
    the rule (`config`: strip, prepend, targets, caller rewriting, class of service)."""

    id: int
    pattern: str
    min_length: int | None
    max_length: int | None
    config: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class InboundRouteRecord:
    """DID -> destination for calls from `source` (a line or trunk name; "" = any).
    `did` "" is the source's default destination."""

    id: int
    source: str
    did: str
    destination: str
    created_at: float = 0.0
    updated_at: float = 0.0


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidValue(f"name {name!r}: letters, digits, '_', '.', '-' (max 64)")
    return name


def check_pattern(pattern: object) -> str:
    if not isinstance(pattern, str) or not _PATTERN.match(pattern):
        raise InvalidValue(f"pattern {pattern!r}: digits, '*', '#', '+' only")
    return pattern


def _table(kind: PeerKind) -> sa.Table:
    return lines if kind == "line" else trunks


def _peer(kind: PeerKind, m: Mapping[str, Any]) -> PeerRecord:
    return PeerRecord(
        id=int(m["id"]),
        kind=kind,
        name=m["name"],
        enabled=bool(m["enabled"]),
        position=int(m["position"]),
        config=dict(m["config"] or {}),
        secret=m["secret"],
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
    )


def _prefix(m: Mapping[str, Any]) -> PrefixRecord:
    return PrefixRecord(
        id=int(m["id"]),
        pattern=m["pattern"],
        min_length=m["min_length"],
        max_length=m["max_length"],
        config=dict(m["config"] or {}),
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
    )


def _route(m: Mapping[str, Any]) -> InboundRouteRecord:
    return InboundRouteRecord(
        id=int(m["id"]),
        source=m["source"],
        did=m["did"],
        destination=m["destination"],
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
    )


class LineStore:
    """CRUD for lines, trunks, prefixes and inbound routes on a `SqlStore`'s engine."""

    __slots__ = ("_store",)

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def _clock(self) -> float:
        return self._store._clock()

    # -- lines and trunks -------------------------------------------------------------------
    async def create_peer(
        self,
        kind: PeerKind,
        name: str,
        config: Mapping[str, Any],
        *,
        secret: str | None = None,
        enabled: bool = True,
        position: int | None = None,
    ) -> PeerRecord:
        """Store a line/trunk; `AlreadyExists("name")` when the name is taken. Without a
        `position` it goes last (lines are tried in position order)."""
        check_name(name)
        table = _table(kind)
        now = self._clock()
        async with self._store._write(conflict="name") as conn:
            if position is None:
                top = (await conn.execute(sa.select(sa.func.max(table.c.position)))).scalar()
                position = 0 if top is None else int(top) + 1
            values = {
                "name": name,
                "enabled": enabled,
                "position": position,
                "config": dict(config),
                "secret": secret,
                "created_at": now,
                "updated_at": now,
            }
            row = (await conn.execute(table.insert().values(values).returning(table.c.id))).one()
        found = await self.get_peer(kind, int(row[0]))
        assert found is not None
        return found

    async def get_peer(self, kind: PeerKind, key: int | str) -> PeerRecord | None:
        """By id (int) or name (str)."""
        table = _table(kind)
        where = table.c.id == key if isinstance(key, int) else table.c.name == key
        async with self._store._read() as conn:
            row = (await conn.execute(sa.select(table).where(where))).mappings().first()
        return None if row is None else _peer(kind, row)

    async def list_peers(self, kind: PeerKind) -> list[PeerRecord]:
        table = _table(kind)
        async with self._store._read() as conn:
            rows = (
                await conn.execute(sa.select(table).order_by(table.c.position, table.c.id))
            ).mappings()
            return [_peer(kind, row) for row in rows]

    async def update_peer(
        self, kind: PeerKind, peer_id: int, changes: Mapping[str, Any]
    ) -> PeerRecord:
        """Change `name`, `enabled`, `position`, `config` (replaced whole) or `secret`."""
        allowed = {"name", "enabled", "position", "config", "secret"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidValue(f"unknown field(s): {', '.join(sorted(unknown))}")
        values = dict(changes)
        if "name" in values:
            check_name(values["name"])
        if "config" in values:
            values["config"] = dict(values["config"])
        values["updated_at"] = self._clock()
        table = _table(kind)
        async with self._store._write(conflict="name") as conn:
            result = await conn.execute(table.update().where(table.c.id == peer_id).values(values))
            if result.rowcount == 0:
                raise NotFound(f"{kind} {peer_id}")
        found = await self.get_peer(kind, peer_id)
        assert found is not None
        return found

    async def delete_peer(self, kind: PeerKind, peer_id: int) -> None:
        table = _table(kind)
        async with self._store._write() as conn:
            result = await conn.execute(table.delete().where(table.c.id == peer_id))
            if result.rowcount == 0:
                raise NotFound(f"{kind} {peer_id}")

    # -- prefixes ---------------------------------------------------------------------------
    async def create_prefix(
        self,
        pattern: str,
        config: Mapping[str, Any],
        *,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> PrefixRecord:
        check_pattern(pattern)
        _check_lengths(min_length, max_length)
        now = self._clock()
        values = {
            "pattern": pattern,
            "min_length": min_length,
            "max_length": max_length,
            "config": dict(config),
            "created_at": now,
            "updated_at": now,
        }
        async with self._store._write() as conn:
            row = (
                await conn.execute(prefixes.insert().values(values).returning(prefixes.c.id))
            ).one()
        return PrefixRecord(int(row[0]), pattern, min_length, max_length, dict(config), now, now)

    async def list_prefixes(self) -> list[PrefixRecord]:
        async with self._store._read() as conn:
            rows = (
                await conn.execute(sa.select(prefixes).order_by(prefixes.c.pattern, prefixes.c.id))
            ).mappings()
            return [_prefix(row) for row in rows]

    async def update_prefix(self, prefix_id: int, changes: Mapping[str, Any]) -> PrefixRecord:
        allowed = {"pattern", "min_length", "max_length", "config"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidValue(f"unknown field(s): {', '.join(sorted(unknown))}")
        values = dict(changes)
        if "pattern" in values:
            check_pattern(values["pattern"])
        values["updated_at"] = self._clock()
        async with self._store._write() as conn:
            result = await conn.execute(
                prefixes.update().where(prefixes.c.id == prefix_id).values(values)
            )
            if result.rowcount == 0:
                raise NotFound(f"prefix {prefix_id}")
            row = (
                (await conn.execute(sa.select(prefixes).where(prefixes.c.id == prefix_id)))
                .mappings()
                .one()
            )
            _check_lengths(row["min_length"], row["max_length"])
        return _prefix(row)

    async def delete_prefix(self, prefix_id: int) -> None:
        async with self._store._write() as conn:
            result = await conn.execute(prefixes.delete().where(prefixes.c.id == prefix_id))
            if result.rowcount == 0:
                raise NotFound(f"prefix {prefix_id}")

    # -- inbound routes ---------------------------------------------------------------------
    async def create_inbound_route(
        self, source: str, did: str, destination: str
    ) -> InboundRouteRecord:
        """`AlreadyExists` when (source, did) already has a route."""
        if source:
            check_name(source)
        if did:
            check_pattern(did)
        if not destination:
            raise InvalidValue("destination must not be empty")
        now = self._clock()
        values = {
            "source": source,
            "did": did,
            "destination": destination,
            "created_at": now,
            "updated_at": now,
        }
        async with self._store._write(conflict="did") as conn:
            row = (
                await conn.execute(
                    inbound_routes.insert().values(values).returning(inbound_routes.c.id)
                )
            ).one()
        return InboundRouteRecord(int(row[0]), source, did, destination, now, now)

    async def list_inbound_routes(self) -> list[InboundRouteRecord]:
        async with self._store._read() as conn:
            rows = (
                await conn.execute(
                    sa.select(inbound_routes).order_by(
                        inbound_routes.c.source, inbound_routes.c.did
                    )
                )
            ).mappings()
            return [_route(row) for row in rows]

    async def update_inbound_route(
        self, route_id: int, changes: Mapping[str, Any]
    ) -> InboundRouteRecord:
        allowed = {"source", "did", "destination"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidValue(f"unknown field(s): {', '.join(sorted(unknown))}")
        values = dict(changes)
        values["updated_at"] = self._clock()
        async with self._store._write(conflict="did") as conn:
            result = await conn.execute(
                inbound_routes.update().where(inbound_routes.c.id == route_id).values(values)
            )
            if result.rowcount == 0:
                raise NotFound(f"inbound route {route_id}")
            row = (
                (
                    await conn.execute(
                        sa.select(inbound_routes).where(inbound_routes.c.id == route_id)
                    )
                )
                .mappings()
                .one()
            )
        return _route(row)

    async def delete_inbound_route(self, route_id: int) -> None:
        async with self._store._write() as conn:
            result = await conn.execute(
                inbound_routes.delete().where(inbound_routes.c.id == route_id)
            )
            if result.rowcount == 0:
                raise NotFound(f"inbound route {route_id}")


def _check_lengths(min_length: int | None, max_length: int | None) -> None:
    for name, value in (("min_length", min_length), ("max_length", max_length)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidValue(f"{name} must be a positive int or None")
    if min_length is not None and max_length is not None and min_length > max_length:
        raise InvalidValue("min_length must not exceed max_length")
