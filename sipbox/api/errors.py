"""One JSON error shape for every failure: ``{"error": "...", "field": "...", "errors": [...]}``.

Why: a script or the CLI must be able to show "ip_auth: '10.0.0.300' is not an IP address"
without knowing whether the problem was found by pydantic, by the user service or by the store,
and a person reading the message must see which field to fix. So every error path funnels here:

- request validation (pydantic) -> 422, `field` is the dotted path (``users[3].number``);
- `UserFieldError` / `InvalidValue` from the service or store -> 422;
- `AlreadyExists` and `Refused` -> 409, `NotFound` -> 404;
- Starlette's own HTTP errors (unknown route 404, wrong method 405) -> their status;
- anything else -> 500 with a generic message (the traceback goes to the log, never the client).

FastAPI's default 422 body (``{"detail": [...]}``) is replaced so clients see one format.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sipbox.api.schemas import FieldError
from sipbox.pbx.user_admin import UserFieldError
from sipbox.storage import AlreadyExists, InvalidValue, NotFound, Refused, StoreError

__all__ = ["ApiError", "error_response", "install_error_handlers"]

log = logging.getLogger("sipbox.api")

_MAX_LISTED = 20
"""Validation errors listed in one answer (a bulk request may have thousands of bad rows)."""


class ApiError(Exception):
    """An error a route raises on purpose, with its status and optionally the field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the JSON error answer (also used by the auth middleware, outside FastAPI)."""
    body: dict[str, Any] = {"error": message, "field": field}
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    return JSONResponse(body, status_code=status, headers=headers)


def _field_path(loc: Sequence[int | str]) -> str | None:
    """``("body", "users", 3, "number")`` -> ``users[3].number``; ``("query", "x")`` -> x."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):  # pydantic's validator-name loc entries
            out += f".{part}" if out else str(part)
    return out or None


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value"))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "json_invalid":
        return f"the request body is not valid JSON ({error.get('ctx', {}).get('error', '')})"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        if tuple(error.get("loc", ())) == ("body",):
            return "the request body must be a JSON object (Content-Type: application/json)"
        return "must be a JSON object"
    message = message.removeprefix("Value error, ")
    if isinstance(error.get("ctx", {}).get("error"), UserFieldError):
        return str(error["ctx"]["error"].reason)
    return message[:1].lower() + message[1:]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    listed: list[FieldError] = []
    for error in exc.errors()[:_MAX_LISTED]:
        field = _field_path(error.get("loc", ()))
        listed.append(FieldError(field=field, error=_message(error)))
    if not listed:
        return error_response(422, "invalid request")
    first = listed[0]
    summary = f"{first.field}: {first.error}" if first.field else first.error
    extra = len(exc.errors()) - 1
    if extra > 0:
        summary += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return error_response(422, summary, first.field, listed)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.field, headers=exc.headers)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, UserFieldError):
        return error_response(422, str(exc), exc.field)
    if isinstance(exc, InvalidValue):  # a service's own field errors (groups) carry `field`
        return error_response(422, str(exc), getattr(exc, "field", None))
    if isinstance(exc, AlreadyExists):
        return error_response(409, str(exc))
    if isinstance(exc, NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, Refused):
        return error_response(409, str(exc))
    log.error("store failure on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "the database is not available, try again")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        # FastAPI's answer to a body that is not UTF-8/JSON: the API's invalid-input status.
        return error_response(422, "the request body is not valid JSON (UTF-8)")
    if exc.status_code in (404, 405):
        detail = f"{detail}: {request.method} {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, detail, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error (see the server log)")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above so every error leaves in the `ErrorOut` shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
