"""Web admin pages of the second slice (issue 7): groups, external lines, trunks, call
prefixes, inbound routes, and one call's page with its SIP ladder diagram.

Same rule as `pages.py`: a page reads through the JSON API's own functions and every form or
button on it calls the JSON API from ``static/admin.js``, so validation, roles and CSRF are
the API's and a page can do nothing a script cannot.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.web.ladder import build_ladder
from sipbox.api.web.pages import _optional, _render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _members_text(group: Any) -> str:
    """Members as the form writes them: ``1001, 1002:15`` (number[:ring seconds])."""
    return ", ".join(
        m.number if m.timeout is None else f"{m.number}:{m.timeout}" for m in group.members
    )


@router.get("/ui/groups")
async def groups_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Ringing and hunting groups with their members; add, change, delete."""
    from sipbox.api.routes.groups import list_groups

    groups = await list_groups(services)
    return _render(
        request,
        "groups.html",
        "Groups",
        groups=groups.groups,
        members_text=_members_text,
    )


async def _lines(services: ServicesDep, kind: str) -> list[dict[str, Any]] | None:
    """Lines or trunks with live status; None when the lines service is not running."""
    from sipbox.api.routes.lines import _admin

    try:
        admin = _admin(services)
    except ApiError:
        return None
    from sipbox.api.line_schemas import LineOut, TrunkOut

    # Through the API's answer model: fields never stored are shown with the value in force
    # (tls_verify true...), so an edit form saves what the line really does.
    model = LineOut if kind == "line" else TrunkOut
    views = await admin.list_views(kind)
    return [model.model_validate(v).model_dump(by_alias=True) for v in views]


@router.get("/ui/lines")
async def lines_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """External lines: registration state, last answer, next attempt, Test; add/edit."""
    return _render(
        request, "lines.html", "External lines", lines=await _lines(services, "line"),
        now=time.time(),
    )  # fmt: skip


@router.get("/ui/trunks")
async def trunks_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Trunks (peers trusted by address): up/down from the OPTIONS keep-alive; add/edit."""
    return _render(request, "trunks.html", "Trunks", trunks=await _lines(services, "trunk"))


@router.get("/ui/prefixes")
async def prefixes_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Call prefixes: which dialled numbers leave through which line or trunk."""
    from sipbox.api.routes.lines import list_prefixes

    prefixes = await _optional(list_prefixes(services))
    lines = await _lines(services, "line") or []
    trunks = await _lines(services, "trunk") or []
    targets = [f"line:{x['name']}" for x in lines] + [f"trunk:{x['name']}" for x in trunks]
    return _render(
        request,
        "prefixes.html",
        "Call prefixes",
        prefixes=prefixes["prefixes"] if prefixes else None,
        targets=targets,
    )


@router.get("/ui/inbound")
async def inbound_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Inbound routes: (line/trunk, DID) -> local destination."""
    from sipbox.api.routes.lines import list_routes

    routes = await _optional(list_routes(services))
    lines = await _lines(services, "line") or []
    trunks = await _lines(services, "trunk") or []
    return _render(
        request,
        "inbound.html",
        "Inbound routes",
        routes=routes["routes"] if routes else None,
        sources=[x["name"] for x in lines] + [x["name"] for x in trunks],
    )


@router.get("/ui/calls/{call_id}")
async def call_page(request: Request, call_id: str, services: ServicesDep) -> HTMLResponse:
    """One call: its live state or its record, the ladder diagram and the raw SIP messages."""
    from sipbox.api.routes.calls import _calls, call_out, find_trace

    live = None
    try:
        call = _calls(services).b2bua.calls.get(call_id)
        live = call_out(call, time.time()) if call is not None else None
    except ApiError:
        pass
    record = await services.store.get_cdr(call_id) if hasattr(services.store, "get_cdr") else None
    trace = find_trace(services, call_id)
    if live is None and record is None and trace is None:
        raise ApiError(404, f"no call {call_id!r}: not live, no record, no trace")
    capture = getattr(services.context, "capture", None)
    return _render(
        request,
        "call.html",
        f"Call {call_id}",
        call_id=call_id,
        live=live,
        record=record,
        trace=trace,
        ladder=build_ladder(trace) if trace is not None else None,
        tracing=capture is not None,
        kept=getattr(capture, "keep", 0),
    )
