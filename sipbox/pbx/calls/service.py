"""Assembles the calls feature (router, B2BUA, CDR writer) so `app.py` only calls
`start`/`stop`, like `RegistrationService`.

The B2BUA is synchronous and pure apart from the port; this service gives it its one timer
handle (re-armed after every event it handles, as the pump does for the endpoint) and
registers its handlers with the dispatcher. Events the calls feature does not own (responses to
the registrar's keep-alive OPTIONS, later the external lines' REGISTERs) go to whatever
handler was registered before it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from sipbox.sip.events import (
    AckReceived,
    ResponseReceived,
    ServerTransactionTimedOut,
    TransactionTimedOut,
    TransportError,
)
from sipbox.storage.interface import Store

from ..dispatcher import Dispatcher, RequestContext
from .b2bua import B2BUA
from .cdr import CdrWriter
from .extensions import SUPPORTED_TAGS, CallExtensions
from .gcpolicy import GcPolicy
from .routing import Router, UserResolver

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["CallService"]


class CallService:
    """Calls between local users: B2BUA + dial plan + CDR writer."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        registration: Any,
        store: Store,
        domain: str,
        ring_timeout: float = 30.0,
        max_duration: float = 0.0,
        t1: float = 0.5,
        t2: float = 4.0,
        session_expires: int = 1800,
        min_se: int = 90,
        id_source: Callable[[], str] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.port = dispatcher.port
        self.cdr = CdrWriter(store)
        # Held calls must not be scanned by every full GC pass (gcpolicy.py: the measured why).
        self.gc = GcPolicy()
        ids = id_source or (lambda: secrets.token_hex(8))
        self.users = UserResolver(
            registration.users,
            registration.registrar.targets,
            lambda number: self.b2bua.active_calls(number),
            ring_timeout,
        )
        self.router = Router(self.users)
        self.b2bua = B2BUA(
            self.port,
            dispatcher,
            registration.auth,
            self.router,
            domain=domain,
            id_source=ids,
            cdr_sink=self.cdr.submit,
            max_duration=max_duration,
            t1=t1,
            t2=t2,
        )
        # PRACK, session timers, REFER/Replaces, early dialogs, page-mode MESSAGE (issue 4).
        self.ext = CallExtensions(self.b2bua, session_expires=session_expires, min_se=min_se)
        dispatcher.supported |= SUPPORTED_TAGS
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        b2bua = self.b2bua
        for method, handler in (
            ("INVITE", b2bua.on_invite),
            ("CANCEL", b2bua.on_cancel),
            ("BYE", b2bua.on_in_dialog),
            ("UPDATE", b2bua.on_in_dialog),
            ("INFO", b2bua.on_in_dialog),
            ("NOTIFY", b2bua.on_in_dialog),
            ("PRACK", b2bua.on_in_dialog),
            ("REFER", b2bua.on_in_dialog),
            ("MESSAGE", self.ext.messages.on_message),
            ("SUBSCRIBE", self.ext.messages.on_subscribe),
        ):
            dispatcher.on_request(method, self._request(handler))
        self._chain(AckReceived, b2bua.on_ack)
        self._chain(ResponseReceived, b2bua.on_response)
        self._chain(TransactionTimedOut, b2bua.on_transaction_failed)
        self._chain(TransportError, b2bua.on_transaction_failed)
        self._chain(ServerTransactionTimedOut, lambda e: False)

    # -- wiring ------------------------------------------------------------------------------
    def _request(
        self, handler: Callable[[RequestContext], None]
    ) -> Callable[[RequestContext], None]:
        def run(ctx: RequestContext) -> None:
            handler(ctx)
            self._rearm()

        return run

    def _chain(self, event_type: type, handler: Callable[[Any], bool]) -> None:
        previous = self.dispatcher.event_handlers.get(event_type)

        def run(event: object) -> None:
            if not handler(event) and previous is not None:
                previous(event)
            self._rearm()

        self.dispatcher.on_event(event_type, run)

    def _rearm(self) -> None:
        loop = self._loop
        if loop is None:
            return
        deadline = self.b2bua.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.b2bua.handle_timer(self.port.now())
        finally:
            self._rearm()

    # -- life cycle --------------------------------------------------------------------------
    async def load(self) -> None:
        """Close call records a crash left open (before the transport takes traffic)."""
        await self.cdr.recover()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.cdr.start()
        self.gc.start(self._loop)

    def hangup(self, call_id: str) -> bool:
        """Administrative hang-up (API)."""
        done = self.b2bua.hangup(call_id)
        self._rearm()
        return done

    async def stop(self) -> None:
        self.gc.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.cdr.stop()
