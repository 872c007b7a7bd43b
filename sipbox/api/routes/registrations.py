"""``/registrations``: live registrar bindings, and unregistering them.

Read from the registrar's memory (the live truth), not the store, which only keeps bindings
for restart. Deleting is an administrative unregister: the phone re-registers on its next
refresh if it still has valid credentials (disable or delete the user to keep it out).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from sipbox.api.context import BindingView, RegistrarView
from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.routes.common import AUTH_ERRORS, error_responses
from sipbox.api.schemas import RegistrationList, RegistrationOut, RemovedOut

router = APIRouter(prefix="/registrations", tags=["registrations"], responses=AUTH_ERRORS)


def registration_out(view: BindingView, now: float) -> RegistrationOut:
    """The public view of one binding."""
    host = view.source_host
    shown = f"[{host}]" if ":" in host else host
    return RegistrationOut(
        number=view.number,
        aor=view.aor,
        contact=view.contact,
        source=f"{view.source_transport}:{shown}:{view.source_port}",
        source_transport=view.source_transport,
        source_host=host,
        source_port=view.source_port,
        user_agent=view.user_agent,
        expires_at=view.expires_at,
        expires_in=max(0, int(view.expires_at - now)),
    )


def _registrar(services: ServicesDep) -> RegistrarView:
    registrar = services.registrar
    if registrar is None:
        raise ApiError(503, "the registrar is not running")
    return registrar


@router.get("", summary="List live registrations", responses=error_responses(503))
async def list_registrations(
    services: ServicesDep,
    user: Annotated[str | None, Query(description="Only this user's registrations")] = None,
) -> RegistrationList:
    """Every live binding (or one user's) with its source address, user agent and expiry."""
    registrar = _registrar(services)
    views = registrar.bindings() if user is None else registrar.bindings_for(user)
    now = time.time()
    items = sorted((registration_out(v, now) for v in views), key=lambda r: (r.number, r.contact))
    return RegistrationList(total=len(items), registrations=items)


@router.delete(
    "/{number}",
    summary="Unregister a user's phones (all, or one contact)",
    responses=error_responses(404, 503),
)
async def delete_registrations(
    number: str,
    services: ServicesDep,
    contact: Annotated[
        str | None, Query(description="Remove only this Contact URI (as listed)")
    ] = None,
) -> RemovedOut:
    """Remove the user's bindings; 404 when nothing matched an unknown user or contact."""
    registrar = _registrar(services)
    removed = await registrar.remove(number, contact)
    if removed == 0:
        if contact is not None:
            raise ApiError(404, f"{contact!r} is not registered for user {number!r}", "contact")
        if await services.store.get_user_by_number(number) is None:
            raise ApiError(404, f"user {number!r} does not exist", "number")
    return RemovedOut(removed=removed)
