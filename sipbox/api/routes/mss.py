"""``GET /openapi/localuser``: a read-only migration aid for scripts written against
miniSIPServer's "openAPI" (issue 7). **Off by default** (``[api] mss_compat = true``).

Why it exists: sites moving from miniSIPServer have small scripts that list local users with
``GET /openapi/localuser?{"syskey":"<admin password>"}``. Serving that one read lets them keep
working while they are rewritten against the real API.

Why it is insecure, and what limits the harm: miniSIPServer authenticates by the administrator
password *in the URL*, so it ends up in shell history, proxy logs and browser history. Here the
``syskey`` is checked against a web admin account (``user``, default ``admin``; argon2, never a
SIP HA1); failures count towards the same per-address lock-out as the login form; only GET is
served; no password or hash of a SIP user is ever returned. Field names follow the MSS style
(``usrNumber``...) and have not been checked against every MSS version: treat the answer as a
listing, not a contract.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import unquote

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.routes.common import error_responses
from sipbox.api.web.accounts import verify_password

__all__ = ["PATH", "router"]

PATH: Final = "/openapi/localuser"

router = APIRouter(tags=["migration"])


class MssUser(BaseModel):
    """One local user, miniSIPServer style."""

    usrNumber: str = Field(examples=["1001"])
    usrName: str = Field(examples=["Alice"])
    usrEnabled: bool
    usrRegistered: bool | None = Field(None, description="Live registration (null: unknown)")
    usrIpAuth: list[str]


class MssUserList(BaseModel):
    """The answer: ``result`` is ``"ok"``, ``localuser`` the users by number."""

    result: str = Field("ok", examples=["ok"])
    localuser: list[MssUser]


def _params(request: Request) -> dict[str, str]:
    """``?syskey=..`` or MSS's own ``?{"syskey":"..."}`` (a JSON object as the query)."""
    query = unquote(request.url.query or "")
    if query.startswith("{"):
        try:
            data: Any = json.loads(query)
        except ValueError as exc:
            raise ApiError(422, "the query is not a JSON object", "syskey") from exc
        if not isinstance(data, dict):
            raise ApiError(422, "the query is not a JSON object", "syskey")
        return {str(k): str(v) for k, v in data.items()}
    return {k: v for k, v in request.query_params.items()}


@router.get(
    PATH,
    summary="miniSIPServer-style user list (INSECURE: password in the URL; off by default)",
    responses=error_responses(401, 422),
)
async def mss_localuser(request: Request, services: ServicesDep) -> MssUserList:
    """List local users for scripts written for miniSIPServer: ``?syskey=PASSWORD`` (a web
    admin password; ``user=NAME``, default ``admin``) or ``?{"syskey":"PASSWORD"}``.
    Enabled only by ``[api] mss_compat = true``; failed keys lock the address out like failed
    logins."""
    params = _params(request)
    source = request.client.host if request.client is not None else "unknown"
    limiter = services.limiter
    if limiter.locked_for(source) > 0:
        raise ApiError(429, "too many failed attempts from this address; try again later")
    account = await services.store.get_web_admin(params.get("user", "admin"))
    key = params.get("syskey", "")
    ok = bool(key) and await verify_password(account.password_hash if account else None, key)
    if not ok:
        limiter.failed(source)
        raise ApiError(401, "wrong or missing syskey", "syskey")
    limiter.succeeded(source)
    registrar = services.registrar
    users = await services.store.list_users(limit=100_000, offset=0)
    return MssUserList(
        localuser=[
            MssUser(
                usrNumber=u.number,
                usrName=u.display_name,
                usrEnabled=u.enabled,
                usrRegistered=(
                    any(True for _ in registrar.bindings_for(u.number))
                    if registrar is not None
                    else None
                ),
                usrIpAuth=list(u.ip_auth),
            )
            for u in users
        ]
    )
