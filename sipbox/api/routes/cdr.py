"""``/cdr`` and ``/cdr.csv``: call records from the store, filtered and paginated.

Filters: start time range (``since``/``until``, epoch seconds), a number (caller, dialed or
answering user), a disposition. Newest first. The CSV export has one header line and the same
columns as the JSON records, so spreadsheets and billing scripts read it as is.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, fields
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from sipbox.api import examples as ex
from sipbox.api.deps import ServicesDep
from sipbox.api.examples import examples
from sipbox.api.routes.common import AUTH_ERRORS
from sipbox.storage import Cdr, CdrFilter

router = APIRouter(tags=["cdr"], responses=AUTH_ERRORS)

Disposition = Literal[
    "answered", "busy", "no-answer", "cancelled", "failed", "rejected", "interrupted"
]


class CdrOut(BaseModel):
    """One call record (issue 4): times are epoch seconds; `end_time` is null while the call
    is in progress; `duration`/`billable` are whole seconds."""

    model_config = ConfigDict(json_schema_extra=examples(ex.CDR))

    id: str
    start_time: float
    answer_time: float | None
    end_time: float | None
    duration: int | None
    billable: int | None
    caller_number: str
    caller_display: str | None
    caller_source: str | None
    caller_transport: str | None
    dialed_number: str
    destination: str | None
    disposition: str | None
    status: int | None
    reason: str | None
    hangup_by: str | None
    a_call_id: str
    b_call_id: str | None
    line: str | None


class CdrList(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.CDR_LIST))
    total: int
    limit: int
    offset: int
    records: list[CdrOut]


SinceQ = Annotated[float | None, Query(description="Calls started at or after (epoch s)")]
UntilQ = Annotated[float | None, Query(description="Calls started before (epoch s)")]
NumberQ = Annotated[str | None, Query(description="Caller, dialed or answering number")]
DispositionQ = Annotated[Disposition | None, Query(description="Only this disposition")]


def _filters(
    since: float | None, until: float | None, number: str | None, disposition: str | None
) -> CdrFilter:
    return CdrFilter(since=since, until=until, number=number, disposition=disposition)


@router.get("/cdr", summary="List call records")
async def list_cdr(
    services: ServicesDep,
    since: SinceQ = None,
    until: UntilQ = None,
    number: NumberQ = None,
    disposition: DispositionQ = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CdrList:
    """Newest first."""
    filters = _filters(since, until, number, disposition)
    store = services.store
    records = await store.list_cdrs(filters, limit=limit, offset=offset)
    total = await store.count_cdrs(filters)
    return CdrList(
        total=total,
        limit=limit,
        offset=offset,
        records=[CdrOut(**asdict(r)) for r in records],
    )


@router.get(
    "/cdr.csv",
    summary="Export call records as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def export_cdr(
    services: ServicesDep,
    since: SinceQ = None,
    until: UntilQ = None,
    number: NumberQ = None,
    disposition: DispositionQ = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
) -> Response:
    records = await services.store.list_cdrs(
        _filters(since, until, number, disposition), limit=limit
    )
    return Response(cdr_csv(records), media_type="text/csv; charset=utf-8")


def cdr_csv(records: list[Cdr]) -> str:
    """Header line + one line per record, columns in `Cdr` field order."""
    names = [f.name for f in fields(Cdr)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for record in records:
        writer.writerow(["" if getattr(record, n) is None else getattr(record, n) for n in names])
    return out.getvalue()
