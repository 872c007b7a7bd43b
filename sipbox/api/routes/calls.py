"""``/calls``: live calls (state, legs) from the B2BUA's memory, and hanging one up.

Read from memory like ``/registrations``: the B2BUA is the live truth; records of finished
calls are under ``/cdr``.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sipbox.api import examples as ex
from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.examples import examples
from sipbox.api.routes.common import AUTH_ERRORS, error_responses

router = APIRouter(prefix="/calls", tags=["calls"], responses=AUTH_ERRORS)


class LegOut(BaseModel):
    """One B leg (a device rung for the call)."""

    model_config = ConfigDict(json_schema_extra=examples(ex.LEG))

    number: str
    target: str
    destination: str
    state: str
    status: int | None = None
    call_id: str


class CallOut(BaseModel):
    """A live call."""

    model_config = ConfigDict(json_schema_extra=examples(ex.CALL))

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
    model_config = ConfigDict(json_schema_extra=examples(ex.CALL_LIST))
    total: int
    calls: list[CallOut]


class HungUp(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.HUNG_UP))
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


class TracedMessage(BaseModel):
    """One SIP message of a traced call, as it crossed the wire."""

    model_config = ConfigDict(json_schema_extra=examples(ex.TRACED))

    index: int = Field(description="Position in the trace, from 0", examples=[0])
    at: float = Field(description="When it was received or sent (epoch seconds)")
    offset: float = Field(description="Seconds since the call started", examples=[0.012])
    direction: Literal["in", "out"] = Field(description="in: received by sipbox; out: sent")
    leg: Literal["caller", "callee"] = Field(description="The caller's leg or a device's leg")
    party: str = Field(description='"caller" or the number rung on that leg', examples=["1002"])
    call_id: str = Field(description="SIP Call-ID of the leg")
    peer: str = Field(
        description="transport:host:port of the other side", examples=["udp:192.0.2.10:5060"]
    )
    summary: str = Field(
        description="The method of a request, or status and reason of a response (with the "
        "CSeq method)",
        examples=["INVITE", "180 Ringing (INVITE)"],
    )
    text: str = Field(description="The whole message as sent or received")


class CallTraceOut(BaseModel):
    """The SIP messages of one call (both legs), oldest first."""

    model_config = ConfigDict(json_schema_extra=examples(ex.TRACE))

    id: str = Field(description="sipbox's call id (the call record's id)")
    started_at: float
    legs: dict[str, str] = Field(
        description='SIP Call-ID -> "caller" or the number rung on that leg',
        examples=[{"a84b4c76e66710@pc33": "caller", "5f1e0c2d@pbx.example.com": "1002"}],
    )
    truncated: int = Field(description="Messages not kept (the per-call bound was reached)")
    messages: list[TracedMessage]


def _summary(data: bytes) -> str:
    """``INVITE`` or ``180 Ringing (INVITE)`` from the start line (and CSeq) of raw bytes."""
    line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    if not line.startswith("SIP/2.0 "):
        return line.split(" ", 1)[0][:32]
    status = line[8:].strip()[:64]
    match = _CSEQ.search(data)
    return f"{status} ({match.group(1).decode('ascii', 'replace')})" if match else status


_CSEQ = re.compile(rb"\n(?:CSeq)[ \t]*:[ \t]*\d+[ \t]+([A-Za-z]+)", re.IGNORECASE)


def trace_out(trace: Any) -> CallTraceOut:
    """The public view of a `sipbox.sip.capture.CallTrace`."""
    from sipbox.sip.capture import call_id_of

    messages: list[TracedMessage] = []
    for index, message in enumerate(list(trace.messages)):
        raw = call_id_of(message.data)
        call_id = raw.decode("utf-8", "replace") if raw is not None else ""
        party = trace.legs.get(call_id, "caller")
        messages.append(
            TracedMessage(
                index=index,
                at=message.at,
                offset=round(max(0.0, message.at - trace.started_at), 6),
                direction="in" if message.inbound else "out",
                leg="caller" if party == "caller" else "callee",
                party=party,
                call_id=call_id,
                peer=str(message.peer),
                summary=_summary(message.data),
                text=message.data.decode("utf-8", "replace"),
            )
        )
    return CallTraceOut(
        id=trace.call_id,
        started_at=trace.started_at,
        legs=dict(trace.legs),
        truncated=trace.truncated,
        messages=messages,
    )


def find_trace(services: ServicesDep, call_id: str) -> CallTraceOut | None:
    """The trace of a call by sipbox id or SIP Call-ID; None when not (or no longer) kept."""
    capture = getattr(services.context, "capture", None)
    trace = capture.get(call_id) if capture is not None else None
    return trace_out(trace) if trace is not None else None


@router.get(
    "/{call_id}/trace",
    summary="SIP messages of a recent call (ladder diagram data)",
    responses=error_responses(404),
)
async def get_call_trace(call_id: str, services: ServicesDep) -> CallTraceOut:
    """Every SIP message of a live or recent call, both legs, with direction, time, peer and
    raw text. Kept in memory for the last ``[server] trace_calls`` calls; 404 for older calls
    or when tracing is off. `call_id` is sipbox's id (as in ``/calls`` and ``/cdr``) or either
    leg's SIP Call-ID."""
    found = find_trace(services, call_id)
    if found is None:
        raise ApiError(
            404, f"no SIP trace kept for call {call_id!r} (only the last calls are)", "call_id"
        )
    return found


@router.delete("/{call_id}", summary="Hang up a call", responses=error_responses(404, 503))
async def hangup_call(call_id: str, services: ServicesDep) -> HungUp:
    """BYE both sides of an answered call, or end a ringing one (480 to the caller)."""
    if not _calls(services).hangup(call_id):
        raise ApiError(404, f"no live call {call_id!r}", "call_id")
    return HungUp(id=call_id, hung_up=True)
