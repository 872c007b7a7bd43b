"""Changes to lines, trunks, prefixes and inbound routes, for the API and the CLI.

One path for every write: validate with the same code the SIP side uses (`line.py`), encrypt
the password, store, then `reload` the live service so the change applies at once (an edited
line re-registers). Answers never contain a password (write-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sipbox.storage.errors import InvalidValue, NotFound
from sipbox.storage.lines import PeerKind

from .line import line_from_config, new_contact_user, trunk_from_config
from .service import LineService

__all__ = ["LineAdmin"]


class LineAdmin:
    """CRUD + live status over a running `LineService`.

    Writes reload the live service at once, except with ``reload=False``: the YAML import
    writes many objects inside one store transaction and reloads once after the commit (a
    reload inside would apply rows that may still be rolled back)."""

    def __init__(self, service: LineService) -> None:
        self.service = service
        self.db = service.db

    # -- views ------------------------------------------------------------------------------
    async def peer_view(self, kind: PeerKind, key: int | str) -> dict[str, Any]:
        record = await self.db.get_peer(kind, key)
        if record is None:
            raise NotFound(f"{kind} {key}")
        config = dict(record.config)
        config.pop("password", None)
        out: dict[str, Any] = {
            "id": record.id,
            "name": record.name,
            "enabled": record.enabled,
            "position": record.position,
            **config,
            "has_password": bool(record.secret),
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        if kind == "line":
            out["status"] = self.service.line_status(record.name)
        else:
            out["status"] = self.service.trunk_status(record.name)
        return out

    async def list_views(self, kind: PeerKind) -> list[dict[str, Any]]:
        return [await self.peer_view(kind, r.id) for r in await self.db.list_peers(kind)]

    # -- writes -----------------------------------------------------------------------------
    async def create(
        self,
        kind: PeerKind,
        name: str,
        fields: Mapping[str, Any],
        enabled: bool = True,
        *,
        reload: bool = True,
    ) -> dict[str, Any]:
        config = {k: v for k, v in fields.items() if v is not None}
        password = config.pop("password", None)
        if kind == "line":
            config.setdefault("contact_user", new_contact_user())
            _validate(lambda: line_from_config(name, enabled, config, password or ""))
        else:
            _validate(lambda: trunk_from_config(name, enabled, config))
        secret = self.service.box.encrypt(password) if password else None
        record = await self.db.create_peer(kind, name, config, secret=secret, enabled=enabled)
        if reload:
            await self.service.reload()
        return await self.peer_view(kind, record.id)

    async def update(
        self, kind: PeerKind, peer_id: int, fields: Mapping[str, Any], *, reload: bool = True
    ) -> dict[str, Any]:
        record = await self.db.get_peer(kind, peer_id)
        if record is None:
            raise NotFound(f"{kind} {peer_id}")
        changes: dict[str, Any] = {}
        config = dict(record.config)
        for key, value in fields.items():
            if key in ("name", "enabled", "position"):
                changes[key] = value
            elif key == "password":
                changes["secret"] = self.service.box.encrypt(value) if value else None
            elif value is None:
                config.pop(key, None)
            else:
                config[key] = value
        name = changes.get("name", record.name)
        enabled = changes.get("enabled", record.enabled)
        if kind == "line":
            _validate(lambda: line_from_config(name, enabled, config))
        else:
            _validate(lambda: trunk_from_config(name, enabled, config))
        changes["config"] = config
        await self.db.update_peer(kind, peer_id, changes)
        if reload:
            await self.service.reload()
        return await self.peer_view(kind, peer_id)

    async def delete(self, kind: PeerKind, peer_id: int) -> None:
        await self.db.delete_peer(kind, peer_id)
        await self.service.reload()

    async def create_prefix(
        self, pattern: str, fields: Mapping[str, Any], *, reload: bool = True
    ) -> dict[str, Any]:
        config, min_length, max_length = self._prefix_config(fields)
        record = await self.db.create_prefix(
            pattern, config, min_length=min_length, max_length=max_length
        )
        if reload:
            await self.service.reload()
        return _prefix_view(record)

    async def update_prefix(
        self, prefix_id: int, fields: Mapping[str, Any], *, reload: bool = True
    ) -> dict[str, Any]:
        current = {p.id: p for p in await self.db.list_prefixes()}.get(prefix_id)
        if current is None:
            raise NotFound(f"prefix {prefix_id}")
        merged = {**current.config, **{k: v for k, v in fields.items() if k != "pattern"}}
        merged.setdefault("min_length", current.min_length)
        merged.setdefault("max_length", current.max_length)
        config, min_length, max_length = self._prefix_config(merged)
        changes: dict[str, Any] = {
            "config": config,
            "min_length": min_length,
            "max_length": max_length,
        }
        if fields.get("pattern") is not None:
            changes["pattern"] = fields["pattern"]
        record = await self.db.update_prefix(prefix_id, changes)
        if reload:
            await self.service.reload()
        return _prefix_view(record)

    async def delete_prefix(self, prefix_id: int) -> None:
        await self.db.delete_prefix(prefix_id)
        await self.service.reload()

    async def list_prefixes(self) -> list[dict[str, Any]]:
        return [rule.public() for rule in self.service.rules]

    def _prefix_config(self, fields: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        config: dict[str, Any] = {}
        strip = fields.get("strip") or 0
        if not isinstance(strip, int) or strip < 0:
            raise InvalidValue("strip must be a non-negative integer")
        config["strip"] = strip
        config["prepend"] = str(fields.get("prepend") or "")
        targets = list(fields.get("targets") or [])
        for target in targets:
            kind, _, name = str(target).partition(":")
            if kind not in ("line", "trunk") or not name:
                raise InvalidValue(f"target {target!r}: write line:NAME or trunk:NAME")
        config["targets"] = targets
        for key in ("caller_id", "caller_prefix", "class_of_service"):
            if fields.get(key):
                config[key] = str(fields[key])
        cos = config.get("class_of_service")
        if cos is not None and cos not in ("none", "local", "national", "international"):
            raise InvalidValue("class_of_service must be none, local, national or international")
        return config, fields.get("min_length"), fields.get("max_length")

    async def create_route(
        self, source: str, did: str, destination: str, *, reload: bool = True
    ) -> dict[str, Any]:
        record = await self.db.create_inbound_route(source, did, destination)
        if reload:
            await self.service.reload()
        return _route_view(record)

    async def update_route(
        self, route_id: int, fields: Mapping[str, Any], *, reload: bool = True
    ) -> dict[str, Any]:
        record = await self.db.update_inbound_route(
            route_id, {k: v for k, v in fields.items() if v is not None}
        )
        if reload:
            await self.service.reload()
        return _route_view(record)

    async def delete_route(self, route_id: int) -> None:
        await self.db.delete_inbound_route(route_id)
        await self.service.reload()

    async def list_routes(self) -> list[dict[str, Any]]:
        return [_route_view(r) for r in await self.db.list_inbound_routes()]


def _validate(check: Any) -> None:
    try:
        check()
    except (TypeError, ValueError) as exc:
        raise InvalidValue(str(exc)) from exc


def _prefix_view(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "pattern": record.pattern,
        "min_length": record.min_length,
        "max_length": record.max_length,
        **record.config,
    }


def _route_view(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "source": record.source,
        "did": record.did,
        "destination": record.destination,
    }
