"""``/users``: local users (extensions) — create, list, show, change, delete, bulk create.

Every write goes through `UserAdmin` (validation, HA1 hashing for the current realm, directory
refresh), so a change is live on the SIP side when the answer leaves. Answers never contain the
password or its hashes; they say whether a password is set and whether it is stale (hashed for
an older SIP domain). With a registrar running, each user also shows its live registration
count and whether calls can reach it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from sipbox.api.context import RegistrarView
from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.routes.common import AUTH_ERRORS, error_responses
from sipbox.api.schemas import (
    BulkCreated,
    BulkUsersIn,
    ForwardingOut,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
)
from sipbox.pbx.calls.forwarding import Forwarding
from sipbox.pbx.user_admin import has_password, password_is_stale
from sipbox.storage import AlreadyExists, User

router = APIRouter(prefix="/users", tags=["users"], responses=AUTH_ERRORS)

MAX_PAGE = 1000
"""Largest page `GET /users` returns (the CLI pages through more)."""


def user_out(user: User, realm: str, registrar: RegistrarView | None) -> UserOut:
    """The public view of a stored user, with live registration state when available."""
    registrations: int | None = None
    reachable: bool | None = None
    if registrar is not None:
        registrations = sum(1 for _ in registrar.bindings_for(user.number))
        reachable = registrar.reachable(user.number)
    return UserOut(
        id=user.id,
        number=user.number,
        display_name=user.display_name,
        enabled=user.enabled,
        has_password=has_password(user),
        password_stale=password_is_stale(user, realm),
        max_contacts=user.max_contacts,
        ip_auth=list(user.ip_auth),
        static_contact=user.static_contact,
        nat=user.nat,
        class_of_service=user.class_of_service,
        ring_timeout=user.ring_timeout,
        max_calls=user.max_calls,
        forwarding=ForwardingOut(**Forwarding.of(user).as_dict()),
        registrations=registrations,
        reachable=reachable,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user",
    responses=error_responses(409),
)
async def create_user(body: UserCreate, services: ServicesDep, response: Response) -> UserOut:
    """Create one user; 409 if the number exists. The password is optional (IP-auth users)."""
    try:
        user = await services.user_admin().create(body.number, body.settable())
    except AlreadyExists as exc:
        raise ApiError(409, f"user {body.number!r} already exists", "number") from exc
    response.headers["Location"] = f"/users/{user.number}"
    return user_out(user, services.realm, services.registrar)


@router.post(
    "/bulk",
    status_code=status.HTTP_201_CREATED,
    summary="Create many users at once (all or nothing)",
    responses=error_responses(409),
)
async def create_users(body: BulkUsersIn, services: ServicesDep) -> BulkCreated:
    """Provision thousands of users in one transaction: on any duplicate (409, naming every
    duplicate number) or invalid entry (422, naming ``users[i].field``) nothing is created."""
    try:
        created = await services.user_admin().create_many(
            [(user.number, user.settable()) for user in body.users]
        )
    except AlreadyExists as exc:  # the store's message lists every duplicate number
        raise ApiError(409, str(exc), "users") from exc
    return BulkCreated(created=len(created), numbers=[u.number for u in created])


@router.get("", summary="List users")
async def list_users(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")] = 100,
    offset: Annotated[int, Query(ge=0, description="Users to skip")] = 0,
) -> UserList:
    """One page of users ordered by number, with the total count for paging."""
    store = services.store
    users = await store.list_users(limit=limit, offset=offset)
    total = await store.count_users()
    registrar = services.registrar
    return UserList(
        total=total,
        limit=limit,
        offset=offset,
        users=[user_out(u, services.realm, registrar) for u in users],
    )


async def _get(services: ServicesDep, number: str) -> User:
    user = await services.store.get_user_by_number(number)
    if user is None:
        raise ApiError(404, f"user {number!r} does not exist", "number")
    return user


@router.get("/{number}", summary="Show a user", responses=error_responses(404))
async def get_user(number: str, services: ServicesDep) -> UserOut:
    """One user by number."""
    return user_out(await _get(services, number), services.realm, services.registrar)


@router.patch("/{number}", summary="Change a user", responses=error_responses(404))
async def update_user(number: str, body: UserUpdate, services: ServicesDep) -> UserOut:
    """Change only the fields sent; ``"password": "..."`` sets a new password (hashed for the
    current realm, which also clears `password_stale`), ``"password": null`` removes it."""
    user = await services.user_admin().update(number, body.changes())
    return user_out(user, services.realm, services.registrar)


@router.delete(
    "/{number}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a user",
    responses=error_responses(404),
)
async def delete_user(number: str, services: ServicesDep) -> Response:
    """Delete the user and unregister its phones at once."""
    await services.user_admin().delete(number)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
