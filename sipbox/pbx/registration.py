"""Assembles the registration feature (directory, authentication, registrar, keep-alive) so the
composition root (`app.py`) only chooses the store and calls `start`/`stop`.

Order matters on start: users are loaded and bindings restored *before* the transport starts,
so the first REGISTER after a restart already sees every binding; the REGISTER handler is
registered with the dispatcher here, so `Allow` lists REGISTER from the first answer on.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path

from sipbox.config import Settings
from sipbox.sip.digest import NonceService
from sipbox.storage.interface import Store

from .auth import Authenticator, AuthGuard, load_nonce_secret
from .dispatcher import Dispatcher
from .keepalive import KeepAlive
from .registrar import Registrar
from .users import UserDirectory

log = logging.getLogger("sipbox.pbx")


class RegistrationService:
    """Everything a phone needs to register, built from settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        domain: str,
        state_dir: Path,
        store: Store,
        dispatcher: Dispatcher,
        guard: AuthGuard | None = None,
        on_guard_event: Callable[[object], None] | None = None,
    ) -> None:
        self.store = store
        self.users = UserDirectory(store)
        nonces = NonceService(
            load_nonce_secret(state_dir),
            secrets.token_bytes,
            lifetime=settings.auth.nonce_lifetime,
        )
        self.auth = Authenticator(
            domain,
            self.users,
            dispatcher,
            nonces,
            algorithms=tuple(settings.auth.algorithms),
            qop=(settings.auth.qop,) if settings.auth.qop else (),
            guard=guard,
            on_guard_event=on_guard_event,
        )
        self.registrar = Registrar(
            dispatcher=dispatcher,
            auth=self.auth,
            directory=self.users,
            store=store,
            settings=settings.registrar,
            domain=domain,
            aliases=settings.sip.aliases,
        )
        self.auth.live_registrations_from = self.registrar.live_registrations_from
        self.keepalive = KeepAlive(
            dispatcher.port,
            self.registrar,
            settings.registrar.keepalive_interval,
            from_uri=f"sip:keepalive@{domain}",
        )
        dispatcher.on_request("REGISTER", self.registrar.handle_register)

    async def load(self) -> None:
        """Read users and restore bindings (before the transport accepts traffic)."""
        await self.users.load()
        await self.registrar.restore()

    def start(self) -> None:
        """Start the write-behind writer, the expiry sweep and the keep-alive."""
        self.registrar.start()
        self.keepalive.start()

    async def stop(self) -> None:
        """Stop background tasks; flush every queued binding change to the store."""
        await self.keepalive.stop()
        await self.registrar.stop()
