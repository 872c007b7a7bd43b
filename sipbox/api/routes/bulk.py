"""``GET /export`` and ``POST /import`` (issue 7, "Bulk"): the whole configuration as one
YAML document, for version control (``sipbox export > pbx.yaml``, ``sipbox import pbx.yaml``).

The work is `sipbox.pbx.bulk` (what is exported, how an import validates everything first and
writes it in one database transaction); this module is the HTTP shape: YAML in and out as
text, errors as the usual `ErrorOut` whose ``field`` names the entry (``users[3].ip_auth``)
and whose message starts with the file line.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sipbox.api import examples as ex
from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.examples import examples
from sipbox.api.routes.common import AUTH_ERRORS, error_responses
from sipbox.pbx.bulk import ImportError_, export_config, import_config
from sipbox.pbx.group_admin import GroupAdmin

__all__ = ["router"]

router = APIRouter(tags=["bulk"], responses=AUTH_ERRORS)

YAML_TYPE: Final = "application/yaml"
MAX_IMPORT: Final = 20 * 1024 * 1024
_EXAMPLE: Final = """\
version: 1
users:
  - number: "1001"
    display_name: Alice
    password: change-me      # or ha1_md5/ha1_sha256/realm as exported
groups:
  - number: "600"
    name: Sales
    strategy: ring-all
    members: ["1001"]
"""


class ImportResult(BaseModel):
    """How many objects of each section were created or replaced."""

    model_config = ConfigDict(json_schema_extra=examples(ex.IMPORT_RESULT))

    imported: dict[str, int] = Field(
        examples=[{"users": 1, "groups": 1, "lines": 0, "trunks": 0, "prefixes": 0,
                   "inbound_routes": 0, "whitelist": 0, "blacklist": 0}]
    )  # fmt: skip


def _lines_admin(services: ServicesDep) -> Any:
    service = getattr(services.context, "lines", None)
    if service is None:
        return None
    from sipbox.pbx.lines.admin import LineAdmin

    return LineAdmin(service)


def _group_cache(services: ServicesDep) -> Any:
    return getattr(getattr(services.context, "calls", None), "groups", None)


@router.get(
    "/export",
    summary="The whole configuration as YAML (users with HA1 hashes; no line passwords)",
    response_class=Response,
    responses={200: {"content": {YAML_TYPE: {"schema": {"type": "object"},
                                             "example": _EXAMPLE}},
                     "description": "The YAML document"}},
)  # fmt: skip
async def export_yaml(services: ServicesDep) -> Response:
    """Users (with their digest HA1 hashes, never a password), groups, lines and trunks
    (without their write-only passwords: a comment in the file says so), call prefixes,
    inbound routes, white and black lists (entries from the configuration file excluded)."""
    text = await export_config(
        services.store,
        getattr(services.context, "lines", None),
        getattr(services.context, "security", None),
        services.realm,
    )
    return Response(text, media_type=YAML_TYPE,
                    headers={"Content-Disposition": 'attachment; filename="pbx.yaml"'})  # fmt: skip


@router.post(
    "/import",
    summary="Apply a YAML export: all or nothing, errors name the file line",
    responses=error_responses(409, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        YAML_TYPE: {"schema": {"type": "string"}, "example": _EXAMPLE}}}},
)  # fmt: skip
async def import_yaml(request: Request, services: ServicesDep) -> ImportResult:
    """Create or replace every object in the document by its key (user number, group number,
    line/trunk name, prefix pattern, route source+DID, list network); objects not in the file
    are left alone. Everything is validated before the first write, and written in one
    database transaction: if a write fails, nothing is written. 422 names the line:
    ``line 12: users[3].ip_auth: ...``."""
    body = await request.body()
    if len(body) > MAX_IMPORT:
        raise ApiError(413, f"the document is larger than {MAX_IMPORT // (1024 * 1024)} MB")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "the document is not UTF-8 text", "file") from exc
    try:
        counts = await import_config(
            text,
            store=services.store,
            user_admin=services.user_admin(),
            group_admin=GroupAdmin(services.store),  # no cache: refreshed after the commit
            line_admin=_lines_admin(services),
            security=getattr(services.context, "security", None),
            directory=services.directory,
            group_cache=_group_cache(services),
        )
    except ImportError_ as exc:
        raise ApiError(422, str(exc), exc.field) from exc
    return ImportResult(imported=counts)
