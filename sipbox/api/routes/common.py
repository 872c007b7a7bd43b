"""OpenAPI declarations shared by routers: every error answer uses `ErrorOut`."""

from __future__ import annotations

from typing import Any

from sipbox.api.schemas import ErrorOut

__all__ = ["AUTH_ERRORS", "error_responses"]

_DESCRIPTIONS = {
    401: "Missing or invalid bearer token",
    403: "The token may not do this (read-only)",
    404: "No such object",
    409: "Already exists",
    422: "Invalid input; `field` names the bad field",
    503: "A server part (store, registrar) is not available",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting these error statuses with the `ErrorOut` body."""
    return {s: {"model": ErrorOut, "description": _DESCRIPTIONS[s]} for s in statuses}


AUTH_ERRORS = error_responses(401, 403, 422)
"""What every protected route may answer (422 covers bad query parameters too)."""
