"""One TCP or TLS connection: framing in, writes out (RFC 3261 §18.3, RFC 5626 §3.5.1).

A `StreamConnection` is an asyncio `Protocol` (not streams: one less layer per read). It owns a
`StreamFramer`; each complete message goes to `on_message` with the connection's `Peer`, each
double-CRLF ping is answered with a single CRLF, and a framing error closes the connection
without a word (the SIP core only answers messages it could parse).

Life cycle::

    CONNECTING --connection_made--> OPEN --connection_lost / close / abort--> CLOSED
    CONNECTING --connect or TLS handshake failure (fail)--> CLOSED

`connection_made` comes after the TLS handshake for TLS (both ways). An incoming connection is
admitted there by the layer (guard hook, per-source limit, registration) unless the layer has
already asked the guard at accept, as it does for TLS so that a banned source costs no
handshake. Data sent before OPEN is queued and written when the connection opens; if it never
does, every queued message is reported through the layer's send-error callback (RFC 3261 §18.4).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from sipbox.sip.address import Address, Peer
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.framing import StreamFramer

if TYPE_CHECKING:
    from sipbox.transport.layer import TransportLayer

__all__ = ["StreamConnection"]

logger = logging.getLogger("sipbox.transport")

CONNECTING = "connecting"
OPEN = "open"
CLOSED = "closed"

_PONG = b"\r\n"


class StreamConnection(asyncio.Protocol):
    """A TCP or TLS connection, incoming or outgoing, known to the layer by `id`."""

    __slots__ = (
        "_clock",
        "_framer",
        "_layer",
        "_on_message",
        "_pending",
        "_pending_size",
        "_transport",
        "admitted",
        "aliases",
        "id",
        "keep",
        "last_activity",
        "local",
        "outgoing",
        "peer",
        "remote",
        "state",
        "transport_name",
    )

    def __init__(
        self,
        layer: TransportLayer,
        transport_name: str,
        local: Address | None,
        *,
        remote: Address | None = None,
        source_checked: bool = False,
    ) -> None:
        self._layer = layer
        self.transport_name = transport_name
        self.local = local  # the listener (incoming), or the listener of this transport if any
        self.remote = remote  # known up front for outgoing connections
        self.outgoing = remote is not None
        self.state = CONNECTING
        self.admitted = source_checked  # the guard already said yes (TLS accept loop)
        self.id = 0
        self.peer: Peer | None = None
        self.keep = False
        self.aliases: list[Address] = []
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer(layer.max_message_size)
        self._on_message = layer.on_message
        self._clock = layer.loop_time
        self.last_activity = self._clock()
        self._pending: list[tuple[bytes, Address]] = []
        self._pending_size = 0

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        self.last_activity = self._clock()
        if self.outgoing:
            if self.state == CLOSED:  # failed or stopped while connecting
                transport.abort()
                return
            self._layer._connected(self, transport)
            self._open()
            return
        if not self._layer._admit(self, transport):
            self.state = CLOSED
            transport.abort()
            return
        self._open()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._clock()
        try:
            items = self._framer.feed(data)
        except RemoteProtocolError as exc:
            logger.info(
                "closing %s connection %d from %s: %s",
                self.transport_name,
                self.id,
                self.remote,
                exc.reason,
            )
            self.close()
            return
        peer = self.peer
        transport = self._transport
        assert peer is not None and transport is not None
        for item in items:
            if transport.is_closing():
                break  # a callback closed us (e.g. a ban): the rest is not wanted
            if item.kind == "message":
                try:
                    self._on_message(item.data, peer)
                except Exception:
                    logger.exception("on_message failed for connection %d", self.id)
            else:
                self._write(_PONG)
                self._layer._keepalive(peer)

    def eof_received(self) -> bool | None:
        return None  # the peer is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(f"connection lost: {exc}" if exc else "connection closed")

    # -- used by the layer --------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """True unless the connection is closed or closing (a send should open a new one)."""
        if self.state == CLOSED:
            return False
        transport = self._transport
        return transport is None or not transport.is_closing()

    def send(self, data: bytes, destination: Address) -> None:
        """Write one message now if open, else queue it until the connection opens."""
        if self.state == OPEN:
            self._write(data)
            transport = self._transport
            assert transport is not None
            if transport.get_write_buffer_size() > self._layer.max_write_buffer:
                self._layer._send_failed(destination, data, "write buffer full")
                self.abort()
        elif self.state == CLOSED:
            self._layer._send_failed(destination, data, "connection closed")
        else:
            self._pending_size += len(data)
            if self._pending_size > self._layer.max_write_buffer:
                self._layer._send_failed(destination, data, "write buffer full")
                return
            self._pending.append((data, destination))

    def close(self) -> None:
        """Close gracefully (pending writes are flushed first); abort if already closing
        (a peer that never reads would otherwise hold the connection open forever)."""
        transport = self._transport
        if transport is not None:
            if transport.is_closing():
                transport.abort()
            else:
                transport.close()
        else:
            self._closed("closed before connecting")

    def abort(self) -> None:
        """Close at once, dropping anything not yet written."""
        if self._transport is not None:
            self._transport.abort()
        else:
            self._closed("aborted before connecting")

    def fail(self, reason: str) -> None:
        """The connection could not be opened (connect or TLS handshake failure)."""
        if self._transport is not None:
            self._transport.abort()
        self._closed(reason)

    # -- internals ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        transport.write(data)
        self.last_activity = self._clock()

    def _open(self) -> None:
        self.state = OPEN
        if self._pending:
            pending, self._pending, self._pending_size = self._pending, [], 0
            transport = self._transport
            assert transport is not None
            transport.writelines([data for data, _ in pending])
            self.last_activity = self._clock()

    def _closed(self, reason: str) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        pending, self._pending, self._pending_size = self._pending, [], 0
        for data, destination in pending:
            self._layer._send_failed(destination, data, reason)
        if self.id:
            self._layer._forget(self)
