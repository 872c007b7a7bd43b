"""OPTIONS keep-alive to NATed UDP contacts (issue 3; RFC 3261 §11 as a ping).

A UDP NAT binding closes after a minute or so of silence; a registration refreshed every hour
would then be unreachable for most of it. So every `interval` seconds (config
``registrar.keepalive_interval``, 0 disables) each binding that is behind NAT and registered over
UDP gets an out-of-dialog OPTIONS sent to its source address. Stream bindings need none: the
client keeps its own connection alive (RFC 5626 §4.4, CRLF pings).

Jitter without timers: at the start of each cycle the NATed bindings are shuffled and spread
evenly over the cycle in one-second ticks, so thousands of phones registered in the same second
(after a power cut) are not pinged in the same second forever after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable

from sipbox.sip.headers import Headers
from sipbox.sip.message import Request

from .location import LiveBinding, behind_nat
from .port import SipPort
from .registrar import Registrar

log = logging.getLogger("sipbox.pbx.keepalive")


class KeepAlive:
    """Pings NATed UDP contacts through `port.send_request` (a normal client transaction)."""

    def __init__(
        self,
        port: SipPort,
        registrar: Registrar,
        interval: float,
        *,
        from_uri: str,
        random_source: Callable[[], float] = random.random,
        tick: float = 1.0,
    ) -> None:
        self.port = port
        self.registrar = registrar
        self.interval = interval
        self.from_uri = from_uri
        self.random = random_source
        self.tick = tick
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def due(self) -> list[LiveBinding]:
        """Bindings that need pinging: behind NAT (per their user's ``nat`` mode) and UDP."""
        directory = self.registrar.directory
        out = []
        for binding in self.registrar.bindings():
            if binding.source.transport != "udp":
                continue
            user = directory.get(binding.user_number)
            if behind_nat(binding, user.nat if user is not None else "auto"):
                out.append(binding)
        return out

    def ping(self, binding: LiveBinding) -> None:
        """One OPTIONS to the binding's source address (the NAT pinhole)."""
        headers = Headers()
        headers.add("From", f"<{self.from_uri}>;tag={secrets.token_hex(6)}")
        headers.add("To", f"<{binding.contact_uri}>")
        headers.add("Call-ID", secrets.token_hex(12))
        headers.add("CSeq", "1 OPTIONS")
        request = Request("OPTIONS", binding.contact_uri, headers)
        try:
            self.port.send_request(request, binding.source, binding.connection_id)
            self.sent += 1
        except Exception:
            log.debug("keep-alive to %s failed", binding.source, exc_info=True)

    async def run(self) -> None:
        """Cycle forever: shuffle the due bindings, spread them over `interval`."""
        while True:
            batch = self.due()
            batch.sort(key=lambda _b: self.random())  # a shuffle with an injectable source
            ticks = max(1, int(self.interval / self.tick))
            per_tick = -(-len(batch) // ticks) if batch else 0
            start = 0
            for _ in range(ticks):
                for binding in batch[start : start + per_tick]:
                    if binding.expires_at > self.registrar.clock():
                        self.ping(binding)
                start += per_tick
                await asyncio.sleep(self.tick * (0.9 + 0.2 * self.random()))

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self.run(), name="keepalive")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
