"""``/admins``: web admin accounts (issue 7) - list, add, remove, reset a password.

Why in the REST API and not only on a page: every page button calls the API, so scripts can do
what the pages do (the rule of docs/web.md). Passwords are argon2id-hashed in a worker thread
(`sipbox.api.web.accounts`) and never returned, except a password the server *generated*
(when none was given), shown once like a new API token.

Lock-out safety: the last account cannot be deleted (409; checked atomically with the delete
in the store), so nobody - not even the last administrator by mistake - can leave the pages
without a way in. (``sipbox admin passwd`` on the server stays the way back in regardless.)
A password reset or a deletion ends that account's sessions at once, except the session making
the request.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.examples import examples
from sipbox.api.routes.common import AUTH_ERRORS, error_responses
from sipbox.api.web.accounts import hash_password, new_password
from sipbox.storage import WebAdmin

__all__ = ["router"]

router = APIRouter(prefix="/admins", tags=["web admins"], responses=AUTH_ERRORS)

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
Username = Annotated[
    str, Path(pattern=_NAME_PATTERN, max_length=64, description="The account's user name")
]
_T0 = 1_767_225_600.0


class AdminOut(BaseModel):
    """A web admin account (never its password or hash)."""

    model_config = ConfigDict(
        json_schema_extra=examples({"username": "alice", "created_at": _T0, "updated_at": _T0})
    )
    username: str
    created_at: float
    updated_at: float = Field(description="Last password change (epoch seconds)")


class AdminList(BaseModel):
    """Every web admin account, by name."""

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"total": 1, "admins": [{"username": "admin", "created_at": _T0, "updated_at": _T0}]}
        )
    )
    total: int
    admins: list[AdminOut]


class AdminIn(BaseModel):
    """A new account; without `password` the server makes one and answers it once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"username": "alice", "password": "a long passphrase"}, {"username": "bob"}
        ),
    )
    username: str = Field(pattern=_NAME_PATTERN, max_length=64)
    password: str | None = Field(
        None, min_length=8, max_length=256, json_schema_extra={"writeOnly": True}
    )


class PasswordIn(BaseModel):
    """A new password; without `password` the server makes one and answers it once."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=examples({"password": "another passphrase"}, {})
    )
    password: str | None = Field(
        None, min_length=8, max_length=256, json_schema_extra={"writeOnly": True}
    )


class AdminCreated(AdminOut):
    """The account, and the password only when the server generated it."""

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "username": "bob",
                "created_at": _T0,
                "updated_at": _T0,
                "password": "Xq3v9LmPw2Rt8KcA",
                "sessions_ended": 0,
            }
        )
    )
    password: str | None = Field(
        None, description="The generated password: shown here once, never again"
    )
    sessions_ended: int = Field(0, description="Logged-in sessions of the account ended")


def _out(admin: WebAdmin) -> AdminOut:
    return AdminOut(
        username=admin.username, created_at=admin.created_at, updated_at=admin.updated_at
    )


def _end_sessions(request: Request, services: ServicesDep, username: str) -> int:
    """End the account's sessions except the caller's own (changing your own password must
    not log you out of the page you are on)."""
    principal = getattr(request.state, "principal", None)
    keep = getattr(principal, "session", None)
    return services.sessions.end_user(username, keep=keep)


@router.get("", summary="List web admin accounts")
async def list_admins(services: ServicesDep) -> AdminList:
    items = [_out(a) for a in await services.store.list_web_admins()]
    return AdminList(total=len(items), admins=items)


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(409),
             summary="Add a web admin account")  # fmt: skip
async def create_admin(body: AdminIn, services: ServicesDep) -> AdminCreated:
    """409 when the name exists. Without a password, a random one is answered once."""
    password = body.password or new_password()
    hashed = await asyncio.to_thread(hash_password, password)
    created = await services.store.create_web_admin(body.username, hashed)
    return AdminCreated(**_out(created).model_dump(), password=None if body.password else password)


@router.post("/{username}/password", responses=error_responses(404),
             summary="Set (reset) an account's password; ends its other sessions")  # fmt: skip
async def reset_password(
    username: Username, body: PasswordIn, request: Request, services: ServicesDep
) -> AdminCreated:
    """Without a password, a random one is answered once (to hand to the person)."""
    password = body.password or new_password()
    hashed = await asyncio.to_thread(hash_password, password)
    await services.store.set_web_admin_password(username, hashed)
    admin = await services.store.get_web_admin(username)
    if admin is None:  # deleted in between
        raise ApiError(404, f"no web admin {username!r}", "username")
    ended = _end_sessions(request, services, username)
    return AdminCreated(
        **_out(admin).model_dump(),
        password=None if body.password else password,
        sessions_ended=ended,
    )


@router.delete("/{username}", status_code=204, responses=error_responses(404, 409),
               summary="Delete a web admin account (never the last one)")  # fmt: skip
async def delete_admin(username: Username, request: Request, services: ServicesDep) -> Response:
    """409 for the last account: the pages would have no way in. Its sessions end at once
    (deleting yourself logs you out)."""
    await services.store.delete_web_admin(username, keep_last=True)
    services.sessions.end_user(username)
    return Response(status_code=204)
