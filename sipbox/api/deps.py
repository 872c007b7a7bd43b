"""Per-application services the routes share, reached through FastAPI dependencies.

Why not globals: two API apps (tests, or later several listeners) must not share state, and the
architecture forbids singletons. `create_api` stores one `Services` on ``app.state``; routes ask
for it with ``Depends(get_services)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from sipbox.api.auth import TokenCache
from sipbox.api.context import ApiContext, DirectoryView, RegistrarView
from sipbox.api.web.sessions import LoginLimiter, SessionStore
from sipbox.pbx.user_admin import UserAdmin
from sipbox.storage import Store

__all__ = ["Services", "ServicesDep", "get_services"]


@dataclass(slots=True)
class Services:
    """The running server's parts plus the API's own state (token cache, web sessions, the
    login lock-out table)."""

    context: ApiContext
    tokens: TokenCache
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)

    @property
    def store(self) -> Store:
        """The configuration store."""
        return self.context.store

    @property
    def registrar(self) -> RegistrarView | None:
        """The registrar, looked up now (it may be wired after the API started)."""
        return getattr(self.context, "registrar", None)

    @property
    def directory(self) -> DirectoryView | None:
        """The in-memory user directory, looked up now."""
        return getattr(self.context, "users", None)

    @property
    def realm(self) -> str:
        """The digest realm: the server's SIP domain."""
        return self.context.domain

    def user_admin(self) -> UserAdmin:
        """A user service bound to the current store, realm, directory and registrar."""
        return UserAdmin(self.store, self.realm, self.directory, self.registrar)


def get_services(request: Request) -> Services:
    """FastAPI dependency: this app's `Services`."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
