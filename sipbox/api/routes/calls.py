"""``/calls``: live calls (state, legs) from the B2BUA's memory, and hanging one up.

Read from memory like ``/registrations``: the B2BUA is the live truth; records of finished
calls are under ``/cdr``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.routes.common import AUTH_ERRORS, error_responses

router = APIRouter(prefix="/calls", tags=["calls"], responses=AUTH_ERRORS)


class LegOut(BaseModel):
    """One B leg (a device rung for the call)."""

    number: str
    target: str
    destination: str
    state: str
    status: int | None = None
    call_id: str


class CallOut(BaseModel):
    """A live call."""

    id: str
    state: str
    caller: str
    caller_source: str | None
    dialed: str
    started_at: float
    answered_at: float | None
    duration: float
    a_call_id: str
    b_call_id: str | None
    legs: list[LegOut]


class CallList(BaseModel):
    total: int
    calls: list[CallOut]


class HungUp(BaseModel):
    id: str
    hung_up: bool


def _calls(services: ServicesDep) -> Any:
    calls = getattr(services.context, "calls", None)
    if calls is None:
        raise ApiError(503, "the calls service is not running")
    return calls


def call_out(call: Any, now: float) -> CallOut:
    """The public view of one live call (`sipbox.pbx.calls.model.Call`)."""
    cdr = call.cdr
    return CallOut(
        id=call.id,
        state=call.state.value,
        caller=call.caller.number,
        caller_source=cdr.caller_source,
        dialed=call.dialed,
        started_at=cdr.start_time,
        answered_at=call.answered_at,
        duration=max(0.0, now - cdr.start_time),
        a_call_id=call.a_invite.call_id,
        b_call_id=call.b.call_id if call.b is not None else None,
        legs=[
            LegOut(
                number=leg.spec.number,
                target=leg.target.request_uri,
                destination=str(leg.target.destination),
                state=leg.state.value,
                status=leg.status,
                call_id=leg.call_id,
            )
            for leg in call.legs.values()
        ],
    )


@router.get("", summary="List live calls", responses=error_responses(503))
async def list_calls(services: ServicesDep) -> CallList:
    """Every call in progress (ringing or answered) with its legs."""
    calls = _calls(services)
    now = time.time()
    items = sorted(
        (call_out(c, now) for c in list(calls.b2bua.calls.values())), key=lambda c: c.started_at
    )
    return CallList(total=len(items), calls=items)


@router.get("/{call_id}", summary="One live call", responses=error_responses(404, 503))
async def get_call(call_id: str, services: ServicesDep) -> CallOut:
    call = _calls(services).b2bua.calls.get(call_id)
    if call is None:
        raise ApiError(404, f"no live call {call_id!r}", "call_id")
    return call_out(call, time.time())


@router.delete("/{call_id}", summary="Hang up a call", responses=error_responses(404, 503))
async def hangup_call(call_id: str, services: ServicesDep) -> HungUp:
    """BYE both sides of an answered call, or end a ringing one (480 to the caller)."""
    if not _calls(services).hangup(call_id):
        raise ApiError(404, f"no live call {call_id!r}", "call_id")
    return HungUp(id=call_id, hung_up=True)
