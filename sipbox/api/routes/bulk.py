"""``GET /export`` and ``POST /import`` (issue 7): the whole configuration as YAML."""

from __future__ import annotations

from fastapi import APIRouter

from sipbox.api.routes.common import AUTH_ERRORS

router = APIRouter(tags=["bulk"], responses=AUTH_ERRORS)
