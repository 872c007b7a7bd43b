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
from sipbox.api.line_schemas import (
    LineChanges,
    LineIn,
    LineList,
    LineOut,
    LineTestIn,
    LineTestOut,
    PrefixChanges,
    PrefixIn,
    PrefixList,
    PrefixOut,
    RouteChanges,
    RouteIn,
    RouteList,
    RouteOut,
    TrunkChanges,
    TrunkIn,
    TrunkList,
    TrunkOut,
)
from sipbox.api.routes.common import AUTH_ERRORS, error_responses

router = APIRouter(tags=["lines"], responses=AUTH_ERRORS)


_ERRORS = error_responses(404, 409, 503)

#: A stored row id (64-bit: a larger number is a 422, not a database overflow).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The id shown in the list")]


def _admin(services: ServicesDep) -> Any:
    from sipbox.pbx.lines.admin import LineAdmin

    service = getattr(services.context, "lines", None)
    if service is None:
        raise ApiError(503, "external lines are not running")
    return LineAdmin(service)


def _peer_routes(
    kind: str,
    path: str,
    body_model: type[BaseModel],
    changes_model: type[BaseModel],
    out: type[BaseModel],
    listing: type[BaseModel],
) -> None:
    """The five CRUD routes of lines or trunks; `out`/`listing` are the documented answers
    (a whitelist: only their fields reach the client, never a password)."""

    @router.get(path, response_model=listing, summary=f"List {kind}s with live status")
    async def list_peers(services: ServicesDep) -> Any:
        items = await _admin(services).list_views(kind)
        return {"total": len(items), f"{kind}s": items}

    async def create_peer(services: ServicesDep, body: BaseModel) -> Any:
        fields = body.model_dump()
        name = fields.pop("name")
        enabled = bool(fields.pop("enabled", True))
        return await _admin(services).create(kind, name, fields, enabled)

    # The body model differs per kind; annotations are strings here (PEP 563), so FastAPI is
    # given the class itself before the route is registered.
    create_peer.__annotations__["body"] = body_model
    router.post(path, status_code=status.HTTP_201_CREATED, responses=_ERRORS, response_model=out,
                summary=f"Create a {kind} (fields as in docs/lines.md)")(create_peer)  # fmt: skip

    @router.get(path + "/{peer_id}", responses=_ERRORS, response_model=out, summary=f"One {kind}")
    async def get_peer(services: ServicesDep, peer_id: RowId) -> Any:
        return await _admin(services).peer_view(kind, peer_id)

    async def update_peer(services: ServicesDep, peer_id: RowId, body: BaseModel) -> Any:
        return await _admin(services).update(kind, peer_id, body.model_dump())

    update_peer.__annotations__["body"] = changes_model
    router.patch(path + "/{peer_id}", responses=_ERRORS, response_model=out,
                 summary=f"Change a {kind} (null removes a field); applies at once",
                 )(update_peer)  # fmt: skip

    @router.delete(path + "/{peer_id}", status_code=204, responses=_ERRORS,
                   summary=f"Delete a {kind}")  # fmt: skip
    async def delete_peer(services: ServicesDep, peer_id: RowId) -> Response:
        await _admin(services).delete(kind, peer_id)
        return Response(status_code=204)


_peer_routes("line", "/lines", LineIn, LineChanges, LineOut, LineList)
_peer_routes("trunk", "/trunks", TrunkIn, TrunkChanges, TrunkOut, TrunkList)


_TEST_SUMMARY = "Try the registration forms and report which one the carrier accepts"


@router.post("/lines/{line_id}/test", responses=_ERRORS, summary=_TEST_SUMMARY)
async def test_line_route(services: ServicesDep, line_id: RowId, body: LineTestIn) -> LineTestOut:
    from sipbox.pbx.lines.diagnostics import run_line_test

    admin = _admin(services)
    view = await admin.peer_view("line", line_id)
    try:
        spacing = body.spacing
        report = await run_line_test(admin.service, view["name"], spacing=spacing)
    except KeyError as exc:
        raise ApiError(409, f"line {view['name']} is disabled or unusable") from exc
    return LineTestOut.model_validate(report)


_REGISTER_SUMMARY = "Register the line now (network change, restart): clears its backoff"


class LineRegisterIn(BaseModel):
    """Options of "register now" (none yet: the body may be omitted or ``{}``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})


@router.post("/lines/{line_id}/register", responses=_ERRORS, response_model=LineOut,
             summary=_REGISTER_SUMMARY)  # fmt: skip
async def register_line_route(
    services: ServicesDep,
    line_id: RowId,
    body: Annotated[LineRegisterIn, Body()] = LineRegisterIn(),  # noqa: B008
) -> Any:
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


@router.get("/prefixes", response_model=PrefixList, summary="Call prefixes (longest match first)")
async def list_prefixes(services: ServicesDep) -> Any:
    items = await _admin(services).list_prefixes()
    return {"total": len(items), "prefixes": items}


@router.post("/prefixes", status_code=201, responses=_ERRORS, summary="Add a call prefix")
async def create_prefix(
    services: ServicesDep,
    body: PrefixIn,
) -> PrefixOut:
    fields = body.model_dump()
    pattern = fields.pop("pattern")
    return PrefixOut.model_validate(await _admin(services).create_prefix(pattern, fields))


@router.patch("/prefixes/{prefix_id}", responses=_ERRORS, summary="Change a call prefix")
async def update_prefix(
    services: ServicesDep,
    prefix_id: RowId,
    body: PrefixChanges,
) -> PrefixOut:
    return PrefixOut.model_validate(
        await _admin(services).update_prefix(prefix_id, body.model_dump())
    )


@router.delete("/prefixes/{prefix_id}", status_code=204, responses=_ERRORS,
               summary="Delete a call prefix")  # fmt: skip
async def delete_prefix(services: ServicesDep, prefix_id: RowId) -> Response:
    await _admin(services).delete_prefix(prefix_id)
    return Response(status_code=204)


@router.get("/inbound-routes", response_model=RouteList,
            summary="DID -> destination per line/trunk")  # fmt: skip
async def list_routes(services: ServicesDep) -> Any:
    items = await _admin(services).list_routes()
    return {"total": len(items), "routes": items}


_ROUTE_SUMMARY = 'Add an inbound route (source "" = any line/trunk, did "" = default)'


@router.post("/inbound-routes", status_code=201, responses=_ERRORS, summary=_ROUTE_SUMMARY)
async def create_route(
    services: ServicesDep,
    body: RouteIn,
) -> RouteOut:
    view = await _admin(services).create_route(body.source, body.did, body.destination)
    return RouteOut.model_validate(view)


@router.patch("/inbound-routes/{route_id}", responses=_ERRORS, summary="Change an inbound route")
async def update_route(
    services: ServicesDep,
    route_id: RowId,
    body: RouteChanges,
) -> RouteOut:
    return RouteOut.model_validate(await _admin(services).update_route(route_id, body.model_dump()))


@router.delete("/inbound-routes/{route_id}", status_code=204, responses=_ERRORS,
               summary="Delete an inbound route")  # fmt: skip
async def delete_route(services: ServicesDep, route_id: RowId) -> Response:
    await _admin(services).delete_route(route_id)
    return Response(status_code=204)
