"""``/status``: what `sipbox status` and (later) the dashboard show.

The transport and the SIP endpoint belong to layers the API only reports on, so they are read
duck-typed (``transport.listening``, ``endpoint.counters``) and left out when absent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter

from sipbox import __version__
from sipbox.api.deps import ServicesDep
from sipbox.api.routes.common import AUTH_ERRORS
from sipbox.api.schemas import Counts, Listener, StatusOut

router = APIRouter(tags=["status"], responses=AUTH_ERRORS)


@router.get("/status", summary="Server status and counters")
async def get_status(services: ServicesDep) -> StatusOut:
    """Version, uptime, domain, SIP listeners, user/registration/reachable counts, counters."""
    context = services.context
    registrar = services.registrar
    counts = Counts(users=await services.store.count_users())
    if registrar is not None:
        counts.registrations = registrar.count()
        directory = services.directory
        if directory is not None:
            counts.reachable = sum(1 for u in directory.all() if registrar.reachable(u.number))
    calls = getattr(context, "calls", None)
    if calls is not None:
        counts.calls = len(calls.b2bua.calls)
    security = getattr(context, "security", None)
    if security is not None:
        counts.bans = len(security.active_bans())
    now = time.time()
    return StatusOut(
        version=__version__,
        started_at=context.started_at,
        uptime_seconds=round(max(0.0, now - context.started_at), 3),
        domain=context.domain,
        listeners=_listeners(getattr(context, "transport", None)),
        counts=counts,
        sip_counters=_counters(getattr(context, "endpoint", None)),
    )


def _listeners(transport: object) -> list[Listener]:
    out: list[Listener] = []
    for address in getattr(transport, "listening", None) or ():
        try:
            out.append(
                Listener(
                    transport=str(address.transport), host=str(address.host), port=int(address.port)
                )
            )
        except (AttributeError, TypeError, ValueError):
            continue
    return out


def _counters(endpoint: object) -> dict[str, int | float] | None:
    """The endpoint's counters as a flat name -> number map (a mapping, a dataclass or an
    object with numeric attributes are accepted), or None when it keeps none."""
    counters: Any = getattr(endpoint, "counters", None)
    if counters is None:  # the real endpoint's `EndpointStats` (a __slots__ object)
        counters = getattr(endpoint, "stats", None)
    if counters is None:
        return None
    if callable(counters):
        counters = counters()
    as_dict = getattr(counters, "as_dict", None)
    if callable(as_dict):  # EndpointStats (its class may be compiled: no __slots__ to read)
        counters = as_dict()
    items: Iterable[tuple[Any, Any]]
    if isinstance(counters, Mapping):
        items = counters.items()
    elif dataclasses.is_dataclass(counters) and not isinstance(counters, type):
        items = dataclasses.asdict(counters).items()
    elif hasattr(counters, "__dict__"):
        items = vars(counters).items()
    elif hasattr(counters, "__slots__"):
        items = ((n, getattr(counters, n, None)) for n in counters.__slots__)
    else:
        return None
    return {
        str(name): value
        for name, value in items
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
