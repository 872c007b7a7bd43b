"""The whole PBX configuration as one YAML document: export, and all-or-nothing import
(issue 7, "Bulk": ``sipbox export > pbx.yaml``, ``sipbox import pbx.yaml``).

Why YAML with line numbers: the file is meant to live in version control and be edited by
hand, so an error must name the line to fix. The document is read with ``yaml.compose`` (nodes
keep their ``start_mark``), turned into plain data, and every error found is reported as
``line 12: users[3].ip_auth: ...``.

Why "validate everything, then write in one transaction": every entry is validated before the
first write, so an invalid file changes nothing and the error names its line; the writes then
go to the database in ONE transaction (`Store.transaction`), so a failure only the database
sees (a constraint, a lost connection) leaves nothing written either - no undo log that could
itself fail half-way. The live views the SIP path reads (users' directory, the groups cache,
the lines service, the guard's lists) are refreshed once, after the commit, so they never show
rows that are then rolled back. Import *merges*: objects in the file are created or replaced
by their key (user number, group number, line/trunk name, prefix pattern, route source+DID,
list network); objects not in the file are left alone.

Secrets: users are exported with their digest HA1 hashes (never a password), so an import on
a server with the same SIP domain restores working accounts. Line and trunk passwords are
write-only (encrypted with this server's key) and are NOT exported; a ``password:`` key in the
file sets one on import.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import yaml

from sipbox.storage import AlreadyExists, InvalidValue, NewUser, NotFound, Store, StoreError
from sipbox.storage.records import validate_user_fields

__all__ = ["SECTIONS", "ImportError_", "export_config", "import_config"]

SECTIONS: Final = (
    "users",
    "groups",
    "lines",
    "trunks",
    "prefixes",
    "inbound_routes",
    "whitelist",
    "blacklist",
)
_USER_KEYS: Final = (
    "number", "display_name", "enabled", "ha1_md5", "ha1_sha256", "realm", "max_contacts",
    "ip_auth", "static_contact", "nat", "class_of_service", "ring_timeout", "max_calls",
    "settings",
)  # fmt: skip
_GROUP_KEYS: Final = (
    "number", "name", "strategy", "ring_timeout", "no_answer_destination",
    "completed_elsewhere", "skip_busy", "members",
)  # fmt: skip

_HEADER: Final = """\
# sipbox configuration export ({when}, SIP domain {domain}).
# Import with `sipbox import FILE` (or POST /import): all or nothing; objects in the file are
# created or replaced by their key, objects not in the file are left alone.
# Users carry their digest HA1 hashes (never a password): they keep working on a server with
# the same SIP domain; elsewhere set their passwords again.
# Line and trunk passwords are write-only and are NOT in this file: add `password: ...` to a
# line before importing it on a new server, or set it on the External lines page afterwards.
"""


class ImportError_(InvalidValue):
    """An import problem, naming the file line and the field (``users[3].ip_auth``)."""

    def __init__(self, line: int | None, field: str, reason: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"{where}{field}: {reason}")
        self.line = line
        self.field = field
        self.reason = reason


# ------------------------------------------------------------------------------------ export


async def export_config(store: Store, lines: Any, security: Any, domain: str) -> str:
    """The configuration as YAML text (see the module docstring for what is in it)."""
    data: dict[str, Any] = {"version": 1}
    users = await store.list_users()
    data["users"] = [
        {k: _plain(getattr(u, k)) for k in _USER_KEYS if getattr(u, k) not in (None, (), {})}
        for u in users
    ]
    data["groups"] = []
    for g in await store.list_groups():
        data["groups"].append(
            {
                "number": g.number,
                "name": g.name,
                "strategy": g.strategy,
                "ring_timeout": g.ring_timeout,
                "no_answer_destination": g.no_answer_destination,
                "completed_elsewhere": g.completed_elsewhere,
                "skip_busy": bool((g.settings or {}).get("skip_busy", True)),
                "members": [
                    m.number if m.timeout is None else {"number": m.number, "timeout": m.timeout}
                    for m in g.members
                ],
            }
        )
    db = getattr(lines, "db", None)
    for kind, key in (("line", "lines"), ("trunk", "trunks")):
        peers = await db.list_peers(kind) if db is not None else []
        data[key] = [
            {"name": p.name, "enabled": p.enabled, **{k: v for k, v in p.config.items()
                                                       if k != "password"}}
            for p in peers
        ]  # fmt: skip
    prefixes = await db.list_prefixes() if db is not None else []
    data["prefixes"] = [
        {"pattern": p.pattern, "min_length": p.min_length, "max_length": p.max_length,
         **p.config}
        for p in prefixes
    ]  # fmt: skip
    routes = await db.list_inbound_routes() if db is not None else []
    data["inbound_routes"] = [
        {"source": r.source, "did": r.did, "destination": r.destination} for r in routes
    ]
    for kind in ("whitelist", "blacklist"):
        entries = security.list_entries(kind) if security is not None else []
        data[kind] = [
            {"network": e.network, "note": e.note} for e in entries if e.origin != "config"
        ]
    header = _HEADER.format(when=time.strftime("%Y-%m-%d %H:%M:%S %Z"), domain=domain)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return header + body


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------ import


class _Doc:
    """Plain data from YAML plus the line of every node, by path."""

    def __init__(self, text: str) -> None:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = f"not valid YAML ({getattr(exc, 'problem', exc)})"
            raise ImportError_(line, "file", reason) from None
        self.lines: dict[tuple[Any, ...], int] = {}
        self.data = self._build(root, ()) if root is not None else {}

    def _build(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                out[key] = self._build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
        return yaml.SafeLoader(" ").construct_object(node, deep=True)  # type: ignore[no-untyped-call]

    def line(self, path: tuple[Any, ...]) -> int | None:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    def fail(self, path: tuple[Any, ...], reason: str) -> ImportError_:
        field = ""
        for part in path:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else part)
        return ImportError_(self.line(path), field or "file", reason)


async def import_config(
    text: str,
    *,
    store: Store,
    user_admin: Any,
    group_admin: Any,
    line_admin: Any | None,
    security: Any | None,
    directory: Any | None = None,
    group_cache: Any | None = None,
) -> dict[str, int]:
    """Apply a YAML export; returns counts per section. Raises `ImportError_` naming the
    line, with nothing changed (see the module docstring).

    `group_admin` and `line_admin` must not refresh caches on their own (a `GroupAdmin`
    without a cache; `LineAdmin` writes are made with ``reload=False``): everything is written
    in one store transaction, and `directory` (users), `group_cache`, the lines service and
    the guard's lists (`security`) are refreshed once, after the commit."""
    doc = _Doc(text)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.fail((), "the file must be a mapping with sections users, groups, ...")
    for key in data:
        if key != "version" and key not in SECTIONS:
            raise doc.fail((key,), f"unknown section (known: {', '.join(SECTIONS)})")
    sections: dict[str, list[Any]] = {}
    for name in SECTIONS:
        items = data.get(name) or []
        if not isinstance(items, list):
            raise doc.fail((name,), "must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise doc.fail((name, i), "must be a mapping (key: value lines)")
        sections[name] = items
    if (sections["lines"] or sections["trunks"] or sections["prefixes"]
            or sections["inbound_routes"]) and line_admin is None:  # fmt: skip
        raise doc.fail(("lines",), "external lines are not running on this server")
    if (sections["whitelist"] or sections["blacklist"]) and security is None:
        raise doc.fail(("whitelist",), "the anti-scanning guard is not running on this server")

    # -- 1. validate everything (no writes) ---------------------------------------------------
    users = [_check_user(doc, i, u, user_admin) for i, u in enumerate(sections["users"])]
    _unique(doc, "users", sections["users"], lambda u: str(u.get("number")))
    _unique(doc, "groups", sections["groups"], lambda g: str(g.get("number")))
    _unique(doc, "lines", sections["lines"], lambda p: str(p.get("name")))
    _unique(doc, "trunks", sections["trunks"], lambda p: str(p.get("name")))
    _unique(doc, "prefixes", sections["prefixes"], lambda p: str(p.get("pattern")))
    _unique(doc, "inbound_routes", sections["inbound_routes"],
            lambda r: f"{r.get('source', '')}/{r.get('did', '')}")  # fmt: skip
    for i, g in enumerate(sections["groups"]):
        for key in g:
            if key not in _GROUP_KEYS:
                raise doc.fail(("groups", i, key), "is not a group field")
        if not g.get("number"):
            raise doc.fail(("groups", i, "number"), "is required")
    for kind in ("lines", "trunks"):
        for i, p in enumerate(sections[kind]):
            _check_peer(doc, kind, i, p)
    for i, p in enumerate(sections["prefixes"]):
        if not p.get("pattern"):
            raise doc.fail(("prefixes", i, "pattern"), "is required")
        try:
            line_admin._prefix_config(p)  # type: ignore[union-attr]
        except InvalidValue as exc:
            raise doc.fail(("prefixes", i), str(exc)) from None
    for i, r in enumerate(sections["inbound_routes"]):
        if not r.get("destination"):
            raise doc.fail(("inbound_routes", i, "destination"), "is required")
    for kind in ("whitelist", "blacklist"):
        for i, e in enumerate(sections[kind]):
            try:
                ipaddress.ip_network(str(e.get("network", "")), strict=False)
            except ValueError:
                raise doc.fail((kind, i, "network"), "is not an address or network") from None

    # -- 2. apply in ONE store transaction, then refresh the live caches once ----------------
    counts = dict.fromkeys(SECTIONS, 0)
    path: tuple[Any, ...] = ()
    try:
        async with store.transaction():
            for i, new in enumerate(users):
                path = ("users", i)
                await _apply_user(store, new)
                counts["users"] += 1
            for i, g in enumerate(sections["groups"]):
                path = ("groups", i)
                await _apply_group(group_admin, g)
                counts["groups"] += 1
            for kind, key in (("line", "lines"), ("trunk", "trunks")):
                for i, p in enumerate(sections[key]):
                    path = (key, i)
                    await _apply_peer(line_admin, kind, p)
                    counts[key] += 1
            for i, p in enumerate(sections["prefixes"]):
                path = ("prefixes", i)
                await _apply_prefix(line_admin, p)
                counts["prefixes"] += 1
            for i, r in enumerate(sections["inbound_routes"]):
                path = ("inbound_routes", i)
                await _apply_route(line_admin, r)
                counts["inbound_routes"] += 1
            for kind in ("whitelist", "blacklist"):
                for i, e in enumerate(sections[kind]):
                    path = (kind, i)
                    await _apply_entry(store, kind, e)
                    counts[kind] += 1
            path = ()
    except (StoreError, ValueError, TypeError) as exc:
        field = getattr(exc, "field", None)
        where = (*path, *str(field).split(".")) if field else path
        raise doc.fail(where, str(getattr(exc, "reason", None) or exc)) from None
    await _refresh_caches(
        directory=directory,
        numbers=[u.number for u in users],
        group_cache=group_cache,
        line_admin=line_admin if any(sections[k] for k in _LINE_SECTIONS) else None,
        security=security if sections["whitelist"] or sections["blacklist"] else None,
    )
    return counts


_LINE_SECTIONS: Final = ("lines", "trunks", "prefixes", "inbound_routes")


async def _refresh_caches(
    *,
    directory: Any | None,
    numbers: list[str],
    group_cache: Any | None,
    line_admin: Any | None,
    security: Any | None,
) -> None:
    """After the commit: each in-memory view the SIP path reads is refreshed once."""
    if directory is not None and numbers:
        many = getattr(directory, "refresh_many", None)
        if many is not None:
            await many(numbers)
        else:
            for number in numbers:
                await directory.refresh(number)
    if group_cache is not None:
        await group_cache.load()
    if line_admin is not None:
        await line_admin.service.reload()
    if security is not None:
        await security.reload_lists()


def _unique(doc: _Doc, section: str, items: list[Any], key: Callable[[Any], str]) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise doc.fail((section, i), f"{k!r} is listed twice (first at line "
                                         f"{doc.line((section, seen[k]))})")  # fmt: skip
        seen[k] = i


def _check_user(doc: _Doc, i: int, entry: dict[str, Any], user_admin: Any) -> NewUser:
    """A `NewUser` from an export entry (HA1s kept) or with a clear ``password`` (hashed)."""
    from sipbox.pbx.user_admin import UserFieldError, check_number

    fields = dict(entry)
    try:
        number = check_number(str(fields.pop("number", "") or ""))
    except (UserFieldError, ValueError) as exc:
        raise doc.fail(("users", i, "number"), str(getattr(exc, "reason", exc))) from None
    password = fields.pop("password", None)
    if password is not None:
        try:
            hashed = user_admin.new_user(number, {"password": str(password)})
        except UserFieldError as exc:
            raise doc.fail(("users", i, exc.field), exc.reason) from None
        fields.update(ha1_md5=hashed.ha1_md5, ha1_sha256=hashed.ha1_sha256, realm=hashed.realm)
        fields["settings"] = {**hashed.settings, **(fields.get("settings") or {})}
    for key in fields:
        if key not in _USER_KEYS:
            raise doc.fail(("users", i, key), "is not a user field")
    try:
        values = validate_user_fields(fields)
        if values.get("ip_auth"):
            from sipbox.pbx.user_admin import normalise_ip_auth

            values["ip_auth"] = tuple(normalise_ip_auth(values["ip_auth"]))
    except UserFieldError as exc:
        raise doc.fail(("users", i, exc.field), exc.reason) from None
    except InvalidValue as exc:
        # The store's messages start with the field name ("nat must be one of ...").
        field = getattr(exc, "field", None) or str(exc).split(" ", 1)[0]
        where = ("users", i, field) if field in _USER_KEYS else ("users", i)
        raise doc.fail(where, str(exc)) from None
    return NewUser(number=number, **values)


def _check_peer(doc: _Doc, section: str, i: int, entry: dict[str, Any]) -> None:
    from sipbox.pbx.lines.line import line_from_config, trunk_from_config

    name = entry.get("name")
    if not name:
        raise doc.fail((section, i, "name"), "is required")
    config = {k: v for k, v in entry.items() if k not in ("name", "enabled", "password")}
    try:
        if section == "lines":
            line_from_config(str(name), bool(entry.get("enabled", True)), config,
                             str(entry.get("password") or ""))  # fmt: skip
        else:
            trunk_from_config(str(name), bool(entry.get("enabled", True)), config)
    except (TypeError, ValueError) as exc:
        raise doc.fail((section, i), str(exc)) from None


async def _apply_user(store: Store, new: NewUser) -> None:
    current = await store.get_user_by_number(new.number)
    if current is None:
        await store.create_user(new)
    else:
        await store.update_user(
            current.id, {k: getattr(new, k) for k in _USER_KEYS if k != "number"}
        )


async def _apply_group(group_admin: Any, entry: dict[str, Any]) -> None:
    number = str(entry["number"])
    fields = {k: v for k, v in entry.items() if k in _GROUP_KEYS}
    fields["number"] = number
    try:
        await group_admin.get(number)
    except NotFound:
        await group_admin.create(fields)
        return
    fields.pop("number")
    await group_admin.update(number, fields)


async def _apply_peer(admin: Any, kind: str, entry: dict[str, Any]) -> None:
    name = str(entry["name"])
    enabled = bool(entry.get("enabled", True))
    fields = {k: v for k, v in entry.items() if k not in ("name", "enabled")}
    current = await admin.db.get_peer(kind, name)
    if current is None:
        await admin.create(kind, name, fields, enabled, reload=False)
        return
    changes = {"enabled": enabled, **fields}
    for key in current.config:  # replace: keys absent from the file go back to defaults
        if key not in fields and key != "contact_user":
            changes[key] = None
    await admin.update(kind, current.id, changes, reload=False)


async def _apply_prefix(admin: Any, entry: dict[str, Any]) -> None:
    pattern = str(entry["pattern"])
    existing = {p.pattern: p for p in await admin.db.list_prefixes()}.get(pattern)
    fields = {k: v for k, v in entry.items() if k != "pattern"}
    if existing is None:
        await admin.create_prefix(pattern, fields, reload=False)
    else:
        await admin.update_prefix(existing.id, fields, reload=False)


async def _apply_route(admin: Any, entry: dict[str, Any]) -> None:
    source, did = str(entry.get("source") or ""), str(entry.get("did") or "")
    destination = str(entry["destination"])
    existing = next(
        (r for r in await admin.db.list_inbound_routes() if (r.source, r.did) == (source, did)),
        None,
    )
    if existing is None:
        await admin.create_route(source, did, destination, reload=False)
    else:
        await admin.update_route(existing.id, {"destination": destination}, reload=False)


async def _apply_entry(store: Store, kind: str, entry: dict[str, Any]) -> None:
    """A list entry, written through the store (the guard sees it after the commit); one
    already listed is kept as it is."""
    try:
        await store.add_address(kind, str(entry["network"]), str(entry.get("note") or ""))  # type: ignore[arg-type]
    except AlreadyExists:
        return
