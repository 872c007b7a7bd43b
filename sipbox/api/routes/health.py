"""``/health``: liveness for load balancers and systemd, public and free of data."""

from __future__ import annotations

from fastapi import APIRouter

from sipbox.api.schemas import Health

router = APIRouter(tags=["status"])


@router.get("/health", summary="Liveness probe (no credentials needed)")
async def health() -> Health:
    """Answers as long as the event loop runs; reveals nothing, so it is public."""
    return Health()
