"""The REST API (FastAPI): users, registrations, status; bearer-token protected.

`app.py` calls `ensure_admin_token` and `start_api`; tests call `create_api` with a fake
context. See `sipbox.api.context` for what the API needs of the running server.
"""

from __future__ import annotations

from sipbox.api.auth import PUBLIC_PATHS, ensure_admin_token, hash_token
from sipbox.api.context import ApiContext
from sipbox.api.factory import create_api
from sipbox.api.server import ApiHandle, start_api

__all__ = [
    "PUBLIC_PATHS",
    "ApiContext",
    "ApiHandle",
    "create_api",
    "ensure_admin_token",
    "hash_token",
    "start_api",
]
