"""The pump between the transport layer and the pure SIP endpoint (after aioquic's protocol).

Datagram in -> `endpoint.receive(data, peer, now)` -> drain events to the PBX -> flush the
datagrams the endpoint wants sent -> re-arm ONE timer handle at `endpoint.get_timer()`.
The PBX talks back through the `SipPort` methods here; calls made while events are being
dispatched are flushed once at the end, calls made later (from a background task) at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sipbox.sip.address import Address, Peer
from sipbox.sip.capture import CallCapture, call_id_of
from sipbox.sip.message import Message, Request, Response

log = logging.getLogger("sipbox.transport.pump")
trace_log = logging.getLogger("sipbox.trace")


class SipPump:
    """Owns the endpoint's clock and timer; satisfies the PBX's `SipPort` protocol."""

    def __init__(
        self,
        endpoint: Any,
        *,
        local_address: Callable[[Address], Address],
        trace: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.transport: Any = None  # set by attach(); a TransportLayer
        self.handler: Callable[[object], None] = lambda event: None
        self._local_address = local_address
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._dispatching = False
        self.trace = trace
        # The guard's check (set by app.py): datagrams to a source banned after its
        # transaction started (e.g. a 407 retransmitted until Timer H) are dropped too.
        self.allow_destination: Callable[[str], bool] | None = None
        # Per-call SIP trace for the web admin (issue 7); app.py sets it, None costs nothing.
        self.capture: CallCapture | None = None

    def attach(self, transport: Any, handler: Callable[[object], None]) -> None:
        self.transport = transport
        self.handler = handler
        self._loop = asyncio.get_running_loop()

    # -- inbound -------------------------------------------------------------------------
    def on_message(self, data: bytes, peer: Peer) -> None:
        """TransportLayer callback: one datagram or framed stream message."""
        if self.trace:
            trace_log.info("recv %s <- %s\n%s", peer.local, peer.remote, _show(data))
        capture = self.capture
        if capture is not None:  # per-call SIP trace (sipbox/sip/capture.py: the cost model)
            capture.current = (data, peer.remote)
            if capture.watched:
                key = call_id_of(data)
                traced = capture.watched.get(key) if key is not None else None
                if traced is not None:
                    capture.record(traced, data, True, peer.remote, time.time())
        loop = self._loop
        self.endpoint.receive(data, peer, loop.time() if loop is not None else 0.0)
        self._run()

    def on_send_error(self, destination: Address, data: bytes, reason: str) -> None:
        log.debug("send to %s failed: %s", destination, reason)
        self.endpoint.transport_failed(destination, data, self.now())
        self._run()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.now())
        self._run()

    def _run(self) -> None:
        """Dispatch every pending event, then flush and re-arm (re-entrancy safe)."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            endpoint = self.endpoint
            handler = self.handler
            while True:
                event = endpoint.next_event()
                if event is None:
                    break
                try:
                    handler(event)
                except Exception:
                    log.exception("PBX failed handling %s", type(event).__name__)
        finally:
            self._dispatching = False
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        trace = self.trace
        capture = self.capture
        allow = self.allow_destination
        for out in self.endpoint.datagrams_to_send():
            if allow is not None and not allow(out.destination.host):
                continue  # never answer a banned source, not even a retransmission
            if trace:
                trace_log.info("send %s\n%s", out.destination, _show(out.data))
            if capture is not None and capture.watched:
                key = call_id_of(out.data)
                traced = capture.watched.get(key) if key is not None else None
                if traced is not None:
                    capture.record(traced, out.data, False, out.destination, time.time())
            transport.send(out.data, out.destination, out.connection_id)
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.endpoint.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _after_call(self) -> None:
        if not self._dispatching:
            self._run()

    # -- SipPort -------------------------------------------------------------------------
    def now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else 0.0

    def local_address(self, destination: Address) -> Address:
        return self._local_address(destination)

    def tls_peer(self, destination: Address, server_name: str | None, verify: bool) -> None:
        """TLS certificate policy towards an external line's proxy (issue 5)."""
        setter = getattr(self.transport, "set_tls_peer", None)
        if setter is not None:
            setter(destination, server_name, verify)

    def send_response(self, response: Response, transaction: object | None = None) -> None:
        self.endpoint.send_response(response, self.now(), transaction=transaction)
        self._after_call()

    def send_request(
        self, request: Request, destination: Address, connection_id: int | None = None
    ) -> object:
        tx = self.endpoint.send_request(
            request, destination, self.now(), connection_id=connection_id
        )
        self._after_call()
        return tx

    def send_cancel(self, transaction: object, reason: str | None = None) -> object | None:
        tx = self.endpoint.send_cancel(transaction, self.now(), reason)
        self._after_call()
        return tx

    def send_ack_2xx(
        self, ack: Request, destination: Address, connection_id: int | None = None
    ) -> None:
        self.endpoint.send_ack_2xx(ack, destination, connection_id=connection_id)
        self._after_call()

    def send_stateless(
        self, message: Message | bytes, destination: Address, connection_id: int | None = None
    ) -> None:
        self.endpoint.send_stateless(message, destination, connection_id)
        self._after_call()

    def answer_statelessly(
        self, methods: Iterable[str], answer: Callable[[Request, Peer], bytes | None] | None
    ) -> None:
        """The TU's stateless answer for out-of-dialog `methods` (`Endpoint.answer_statelessly`:
        called inside `receive`, it returns the response bytes; no transaction is created)."""
        hook = getattr(self.endpoint, "answer_statelessly", None)
        if hook is not None:
            hook(methods, answer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _show(data: bytes) -> str:
    return data.decode("utf-8", "replace")
