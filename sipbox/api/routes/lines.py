"""``/lines``, ``/trunks``, ``/prefixes``, ``/inbound-routes`` (issue 5): CRUD + live status.

Writes go through `LineAdmin` (same validation as the SIP side, password encrypted, the live
service reloaded so changes apply at once). Passwords are write-only: answers say
``has_password`` and never carry the secret.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response, status
from pydantic import BaseModel, ConfigDict

from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.routes.common import AUTH_ERRORS, error_responses

router = APIRouter(tags=["lines"], responses=AUTH_ERRORS)


class PeerIn(BaseModel):
    """A line or trunk: `name` plus the fields of docs/lines.md (e.g. domain, proxy,
    account, password, auth_id_with_domain for a line; addresses for a trunk)."""

    model_config = ConfigDict(extra="allow")
    name: str
    enabled: bool = True


class ChangesIn(BaseModel):
    """Fields to change; null removes an optional field (back to its default)."""

    model_config = ConfigDict(extra="allow")


class PrefixIn(BaseModel):
    """A call prefix: pattern, strip, prepend, targets (``line:NAME``/``trunk:NAME``),
    min_length/max_length, caller_id, caller_prefix, class_of_service."""

    model_config = ConfigDict(extra="allow")
    pattern: str


class LineTestIn(BaseModel):
    """Options of a line test: `spacing` seconds between tries (default ``[lines]
    test_spacing``)."""

    spacing: float | None = None


class RouteIn(BaseModel):
    """An inbound route: source ("" = any), did ("" = default), destination."""

    source: str = ""
    did: str = ""
    destination: str


_ERRORS = error_responses(404, 409, 503)

#: A stored row id (64-bit: a larger number is a 422, not a database overflow).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The id shown in the list")]


def _admin(services: ServicesDep) -> Any:
    from sipbox.pbx.lines.admin import LineAdmin

    service = getattr(services.context, "lines", None)
    if service is None:
        raise ApiError(503, "external lines are not running")
    return LineAdmin(service)


def _peer_routes(kind: str, path: str) -> None:
    @router.get(path, summary=f"List {kind}s with live status")
    async def list_peers(services: ServicesDep) -> dict[str, Any]:
        items = await _admin(services).list_views(kind)
        return {"total": len(items), f"{kind}s": items}

    @router.post(path, status_code=status.HTTP_201_CREATED, responses=_ERRORS,
                 summary=f"Create a {kind} (fields as in docs/lines.md)")  # fmt: skip
    async def create_peer(
        services: ServicesDep,
        body: PeerIn,
    ) -> dict[str, Any]:
        fields = body.model_dump()
        name = fields.pop("name")
        enabled = bool(fields.pop("enabled", True))
        return await _admin(services).create(kind, name, fields, enabled)

    @router.get(path + "/{peer_id}", responses=_ERRORS, summary=f"One {kind}")
    async def get_peer(services: ServicesDep, peer_id: RowId) -> dict[str, Any]:
        return await _admin(services).peer_view(kind, peer_id)

    @router.patch(path + "/{peer_id}", responses=_ERRORS,
                  summary=f"Change a {kind} (null removes a field); applies at once")  # fmt: skip
    async def update_peer(
        services: ServicesDep,
        peer_id: RowId,
        body: ChangesIn,
    ) -> dict[str, Any]:
        return await _admin(services).update(kind, peer_id, body.model_dump())

    @router.delete(path + "/{peer_id}", status_code=204, responses=_ERRORS,
                   summary=f"Delete a {kind}")  # fmt: skip
    async def delete_peer(services: ServicesDep, peer_id: RowId) -> Response:
        await _admin(services).delete(kind, peer_id)
        return Response(status_code=204)


_peer_routes("line", "/lines")
_peer_routes("trunk", "/trunks")


_TEST_SUMMARY = "Try the registration forms and report which one the carrier accepts"


@router.post("/lines/{line_id}/test", responses=_ERRORS, summary=_TEST_SUMMARY)
async def test_line_route(
    services: ServicesDep, line_id: RowId, body: LineTestIn
) -> dict[str, Any]:
    from sipbox.pbx.lines.diagnostics import run_line_test

    admin = _admin(services)
    view = await admin.peer_view("line", line_id)
    try:
        spacing = body.spacing
        return await run_line_test(admin.service, view["name"], spacing=spacing)
    except KeyError as exc:
        raise ApiError(409, f"line {view['name']} is disabled or unusable") from exc


_REGISTER_SUMMARY = "Register the line now (network change, restart): clears its backoff"


class LineRegisterIn(BaseModel):
    """Options of "register now" (none yet: the body may be omitted or ``{}``)."""


@router.post("/lines/{line_id}/register", responses=_ERRORS, summary=_REGISTER_SUMMARY)
async def register_line_route(
    services: ServicesDep,
    line_id: RowId,
    body: Annotated[LineRegisterIn, Body()] = LineRegisterIn(),  # noqa: B008
) -> dict[str, Any]:
    """Sends a REGISTER at once instead of waiting for the refresh or the backoff (after the
    network or the carrier changed). 409 when the line does not register (disabled or
    `register` off). Answers the line with its status (usually `registering`)."""
    admin = _admin(services)
    view: dict[str, Any] = await admin.peer_view("line", line_id)
    try:
        view["status"] = await admin.service.register_now(view["name"])
    except KeyError as exc:
        raise ApiError(409, f"line {view['name']} is disabled or does not register") from exc
    return view


@router.get("/prefixes", summary="Call prefixes (longest match first)")
async def list_prefixes(services: ServicesDep) -> dict[str, Any]:
    items = await _admin(services).list_prefixes()
    return {"total": len(items), "prefixes": items}


@router.post("/prefixes", status_code=201, responses=_ERRORS, summary="Add a call prefix")
async def create_prefix(
    services: ServicesDep,
    body: PrefixIn,
) -> dict[str, Any]:
    fields = body.model_dump()
    pattern = fields.pop("pattern")
    return await _admin(services).create_prefix(pattern, fields)


@router.patch("/prefixes/{prefix_id}", responses=_ERRORS, summary="Change a call prefix")
async def update_prefix(
    services: ServicesDep,
    prefix_id: RowId,
    body: ChangesIn,
) -> dict[str, Any]:
    return await _admin(services).update_prefix(prefix_id, body.model_dump())


@router.delete("/prefixes/{prefix_id}", status_code=204, responses=_ERRORS,
               summary="Delete a call prefix")  # fmt: skip
async def delete_prefix(services: ServicesDep, prefix_id: RowId) -> Response:
    await _admin(services).delete_prefix(prefix_id)
    return Response(status_code=204)


@router.get("/inbound-routes", summary="DID -> destination per line/trunk")
async def list_routes(services: ServicesDep) -> dict[str, Any]:
    items = await _admin(services).list_routes()
    return {"total": len(items), "routes": items}


_ROUTE_SUMMARY = 'Add an inbound route (source "" = any line/trunk, did "" = default)'


@router.post("/inbound-routes", status_code=201, responses=_ERRORS, summary=_ROUTE_SUMMARY)
async def create_route(
    services: ServicesDep,
    body: RouteIn,
) -> dict[str, Any]:
    return await _admin(services).create_route(body.source, body.did, body.destination)


@router.patch("/inbound-routes/{route_id}", responses=_ERRORS, summary="Change an inbound route")
async def update_route(
    services: ServicesDep,
    route_id: RowId,
    body: ChangesIn,
) -> dict[str, Any]:
    return await _admin(services).update_route(route_id, body.model_dump())


@router.delete("/inbound-routes/{route_id}", status_code=204, responses=_ERRORS,
               summary="Delete an inbound route")  # fmt: skip
async def delete_route(services: ServicesDep, route_id: RowId) -> Response:
    await _admin(services).delete_route(route_id)
    return Response(status_code=204)
