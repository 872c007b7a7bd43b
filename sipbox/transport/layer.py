"""The transport layer: sockets in, `on_message(data, peer)` out; `send(data, destination)` in,
bytes on the wire out (RFC 3261 §18). A pump, after aioquic's `asyncio/protocol.py`.

It moves bytes and nothing else: SIP parsing is the core's (`sipbox.sip`), policy is the PBX's.
Its own business is what RFC 3261 §18 and RFC 5626 give the transport:

* listeners for `udp`, `tcp` and `tls` on IPv4 and IPv6 (port 0 binds an ephemeral port; the
  bound addresses are in `listening`);
* `accept_source(host)`, the anti-scanning guard's hook, asked before any parsing: for each UDP
  datagram (dropped silently on False) and at each TCP/TLS accept (closed at once, before any
  TLS handshake, on False); `close_connections_from(host)` closes what a new ban must close;
* keep-alives: UDP CRLF / NUL datagrams are ignored and STUN Binding requests answered
  (`udp.py`), stream double-CRLF pings answered with CRLF (`stream.py`);
* connection management for streams: ids, reuse of a live connection to the same remote address
  (a peer's inbound connection carries our requests to it too, RFC 3261 §18.2.2, RFC 5923-style
  aliases via `add_alias`), new outgoing connections with a timeout and a queue, a per-source
  limit, an idle timeout (with `set_keep` for flows the PBX wants kept, e.g. RFC 5626 bindings)
  swept by one periodic timer handle;
* transport errors reported to `on_send_error(destination, data, reason)` so the SIP core can
  fail the transaction (RFC 3261 §18.4, §17.1.4). Callbacks are never called from inside
  `send`: errors are scheduled with `call_soon`, so the core is never re-entered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import ssl
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sipbox.sip.address import Address, Peer, TransportName
from sipbox.transport.stream import OPEN, StreamConnection
from sipbox.transport.udp import UdpEndpoint

__all__ = ["Listen", "ListenSpecLike", "TransportLayer"]

logger = logging.getLogger("sipbox.transport")

OnMessage = Callable[[bytes, Peer], None]
OnSendError = Callable[[Address, bytes, str], None]
OnPeer = Callable[[Peer], None]


class ListenSpecLike(Protocol):
    """What a listener specification needs: the config's `ListenSpec` satisfies it."""

    @property
    def transport(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Listen:
    """A listener specification: `transport` is "udp", "tcp" or "tls"; IPv6 hosts may be
    written with or without brackets; port 0 asks for an ephemeral port."""

    transport: str
    host: str
    port: int


_BACKLOG = 1024


def _accept_all(host: str) -> bool:
    return True


def _system_buffer_max(name: str) -> int | None:
    """The kernel's ceiling for SO_RCVBUF/SO_SNDBUF (Linux), or None where unknown."""
    try:
        with open(f"/proc/sys/net/core/{name}", encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def _is_ipv6(host: str) -> bool:
    return ":" in host


class TransportLayer:
    """UDP, TCP and TLS listeners and connections behind one `send` and one `on_message`.

    Not thread-safe; use it from the event loop that ran `start()` (uvloop or the default loop).
    """

    def __init__(
        self,
        listen: Sequence[ListenSpecLike],
        on_message: OnMessage,
        *,
        accept_source: Callable[[str], bool] = _accept_all,
        tls_context: ssl.SSLContext | None = None,
        client_tls_context: ssl.SSLContext | None = None,
        max_message_size: int = 65536,
        connect_timeout: float = 5.0,
        idle_timeout: float | None = 600.0,
        max_connections_per_source: int = 32,
        on_keepalive: OnPeer | None = None,
        on_send_error: OnSendError | None = None,
        on_connection_closed: OnPeer | None = None,
    ) -> None:
        self._specs = list(listen)
        self.on_message = on_message
        self._accept_source = accept_source
        self._tls_context = tls_context
        self._client_tls_context = client_tls_context
        # TLS policy per destination (external lines, issue 5): the certificate name to check
        # and whether to check it; the verifying context is built on first use.
        self._tls_peers: dict[Address, tuple[str | None, bool]] = {}
        self._verifying_tls_context: ssl.SSLContext | None = None
        self.max_message_size = max_message_size
        self.max_write_buffer = max(1 << 20, 16 * max_message_size)
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout if idle_timeout and idle_timeout > 0 else None
        self._max_per_source = max_connections_per_source
        self._on_keepalive = on_keepalive
        self._on_send_error = on_send_error
        self._on_connection_closed = on_connection_closed

        self.listening: list[Address] = []
        self.loop_time: Callable[[], float] = lambda: 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._udp: list[UdpEndpoint] = []
        self._udp_by_local: dict[Address, UdpEndpoint] = {}
        self._udp_by_family: dict[bool, UdpEndpoint] = {}  # is_ipv6 -> first listener
        self._servers: list[asyncio.Server] = []
        self._listen_socks: list[socket.socket] = []  # TLS listeners (own accept loop)
        self._stream_listeners: dict[tuple[str, bool], Address] = {}
        self._conns: dict[int, StreamConnection] = {}
        self._by_remote: dict[Address, int] = {}
        self._by_host: dict[str, set[StreamConnection]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        # Set by app.py: the connection ids live bindings and calls use (see `_sweep`).
        self.connections_in_use: Callable[[], Collection[int]] | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener (on the running loop); on any failure close what was opened."""
        if self._running:
            raise RuntimeError("transport layer already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.loop_time = loop.time
        self._running = True
        try:
            for spec in self._specs:
                await self._listen(loop, spec)
        except BaseException:
            await self.stop()
            raise
        if self.idle_timeout is not None:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    async def stop(self) -> None:
        """Close every listener and connection; queued sends are reported as failed."""
        self._running = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for server in self._servers:
            server.close()
        for endpoint in self._udp:
            if endpoint.transport is not None:
                endpoint.transport.close()
        for conn in list(self._conns.values()):
            conn.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for sock in self._listen_socks:
            sock.close()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except TimeoutError:
                logger.warning("a listener did not close within 1 s")
        await asyncio.sleep(0)  # let connection_lost callbacks run
        self._servers.clear()
        self._listen_socks.clear()
        self._udp.clear()
        self._udp_by_local.clear()
        self._udp_by_family.clear()
        self._stream_listeners.clear()
        self.listening.clear()

    async def _listen(self, loop: asyncio.AbstractEventLoop, spec: ListenSpecLike) -> None:
        transport = spec.transport.lower()
        if transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"unsupported transport {spec.transport!r}")
        host = await self._resolve(loop, spec.host, spec.port, transport)
        is_v6 = _is_ipv6(host)
        if transport == "udp":
            sock = _bind_socket(socket.SOCK_DGRAM, host, spec.port)
            local = Address("udp", *sock.getsockname()[:2])
            endpoint = UdpEndpoint(local, self.on_message, self._accept_source, self._on_keepalive)
            try:
                await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
            except BaseException:
                sock.close()
                raise
            self._udp.append(endpoint)
            self._udp_by_local[local] = endpoint
            self._udp_by_family.setdefault(is_v6, endpoint)
        else:
            if transport == "tls" and self._tls_context is None:
                raise ValueError("a tls listener needs tls_context")
            sock = _bind_socket(socket.SOCK_STREAM, host, spec.port)
            name: TransportName = "tls" if transport == "tls" else "tcp"
            local = Address(name, *sock.getsockname()[:2])
            if name == "tls":
                # Our own accept loop: the guard is asked before the TLS handshake (asyncio's
                # TLS server would only tell us who it was after doing the handshake).
                sock.listen(_BACKLOG)
                self._listen_socks.append(sock)
                assert self._tls_context is not None
                self._spawn(self._accept_tls(sock, local, self._tls_context))
            else:

                def factory() -> StreamConnection:
                    return StreamConnection(self, "tcp", local)

                try:
                    server = await loop.create_server(factory, sock=sock, backlog=_BACKLOG)
                except BaseException:
                    sock.close()
                    raise
                self._servers.append(server)
            self._stream_listeners.setdefault((name, is_v6), local)
        self.listening.append(local)
        logger.info("listening on %s", local)

    async def _accept_tls(
        self, listen_sock: socket.socket, local: Address, context: ssl.SSLContext
    ) -> None:
        """Accept TLS connections: guard and per-source limit first, then the handshake."""
        assert self._loop is not None
        loop = self._loop
        while True:
            try:
                sock, address = await loop.sock_accept(listen_sock)
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS...: back off, keep serving
                logger.warning("accept on %s failed: %s", local, exc)
                await asyncio.sleep(0.1)
                continue
            if not self._source_allowed(address[0]):
                sock.close()
                continue
            conn = StreamConnection(self, "tls", local, source_checked=True)
            self._spawn(self._handshake(conn, sock, context))

    async def _handshake(
        self, conn: StreamConnection, sock: socket.socket, context: ssl.SSLContext
    ) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(
                lambda: conn, sock, ssl=context, ssl_handshake_timeout=self.connect_timeout
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            logger.info("TLS handshake failed: %s", exc)
            sock.close()
            conn.fail(f"TLS handshake failed: {exc}")

    @staticmethod
    async def _resolve(
        loop: asyncio.AbstractEventLoop, host: str, port: int, transport: str
    ) -> str:
        host = host.strip("[]") or "0.0.0.0"
        try:
            ipaddress.ip_address(host.split("%", 1)[0])  # an IP literal (with a scope id)
            return host
        except ValueError:
            pass
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        infos = await loop.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
        if not infos:
            raise OSError(f"cannot resolve listener host {host!r}")
        return str(infos[0][4][0])

    # -- sending ------------------------------------------------------------------------------

    def set_tls_peer(self, destination: Address, server_name: str | None, verify: bool) -> None:
        """How to open TLS connections to `destination`: check its certificate (against the
        system store, ``SSL_CERT_FILE`` honoured) for `server_name` - a carrier's logical
        domain when the proxy is an address - or, with `verify` off, accept any certificate.
        Destinations never set here use the default client context."""
        self._tls_peers[destination] = (server_name, verify)

    def send(
        self,
        data: bytes,
        destination: Address,
        connection_id: int | None = None,
        *,
        local: Address | None = None,
        server_name: str | None = None,
    ) -> None:
        """Send one message; never blocks, never raises for network trouble.

        UDP goes out of the listener `local` (the `Peer.local` the request came in on) when
        given, else the first UDP listener of the destination's address family. TCP/TLS uses
        connection `connection_id` if it is still alive, else a live connection to
        `destination` (or one aliased to it), else a new outgoing connection (the message is
        queued until it is up; `server_name` is the name checked in the server's certificate
        for TLS, the destination IP by default). Failures go to `on_send_error`.
        """
        if not self._running:
            self._send_failed(destination, data, "transport layer not running")
            return
        if destination.transport == "udp":
            is_v6 = _is_ipv6(destination.host)
            endpoint = self._udp_by_local.get(local) if local is not None else None
            if endpoint is None or _is_ipv6(endpoint.local.host) != is_v6:
                endpoint = self._udp_by_family.get(is_v6)
            if endpoint is None or endpoint.transport is None:
                self._send_failed(destination, data, "no UDP listener for this address family")
                return
            endpoint.transport.sendto(data, (destination.host, destination.port))
            return
        if destination.transport not in ("tcp", "tls"):
            self._send_failed(destination, data, f"unsupported transport {destination.transport}")
            return
        conn = self._conns.get(connection_id) if connection_id is not None else None
        if conn is None or not conn.usable:
            conn_id = self._by_remote.get(destination)
            conn = self._conns.get(conn_id) if conn_id is not None else None
            if conn is None or not conn.usable:
                context: ssl.SSLContext | None = None
                if destination.transport == "tls":
                    context = self._client_tls_context
                    policy = self._tls_peers.get(destination)
                    if policy is not None:
                        server_name = server_name or policy[0]
                        if policy[1]:
                            context = self._verifying_context()
                    if context is None:
                        self._send_failed(destination, data, "no client TLS context configured")
                        return
                conn = self._connect(destination, context, server_name)
        conn.send(data, destination)

    def _verifying_context(self) -> ssl.SSLContext:
        if self._verifying_tls_context is None:
            from sipbox.transport.tlscert import client_context

            self._verifying_tls_context = client_context(verify=True)
        return self._verifying_tls_context

    def _connect(
        self, destination: Address, context: ssl.SSLContext | None, server_name: str | None
    ) -> StreamConnection:
        listener = self._stream_listeners.get((destination.transport, _is_ipv6(destination.host)))
        conn = StreamConnection(self, destination.transport, listener, remote=destination)
        conn.id = next(self._ids)
        self._register(conn, destination)
        self._spawn(self._open_connection(conn, destination, context, server_name, listener))
        return conn

    async def _open_connection(
        self,
        conn: StreamConnection,
        destination: Address,
        context: ssl.SSLContext | None,
        server_name: str | None,
        listener: Address | None,
    ) -> None:
        assert self._loop is not None
        local_addr: tuple[str, int] | None = None
        if listener is not None and not ipaddress.ip_address(listener.host).is_unspecified:
            local_addr = (listener.host, 0)  # leave from the listener's interface
        tls_kwargs: dict[str, Any] = {}
        if context is not None:
            tls_kwargs = {
                "ssl": context,
                "server_hostname": server_name or destination.host,
                "ssl_handshake_timeout": self.connect_timeout,
            }
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._loop.create_connection(
                    lambda: conn,
                    destination.host,
                    destination.port,
                    local_addr=local_addr,
                    **tls_kwargs,
                )
        except asyncio.CancelledError:
            conn.fail("transport layer stopped")
            raise
        except (OSError, TimeoutError, ssl.SSLError, ValueError) as exc:
            logger.info("connecting to %s failed: %r", destination, exc)
            conn.fail(f"connecting to {destination} failed: {exc!r}")

    def add_alias(self, connection_id: int, address: Address) -> bool:
        """Let sends to `address` reuse connection `connection_id` (RFC 5923-style alias, e.g.
        the sent-by of the peer's Via). False if the connection is gone."""
        conn = self._conns.get(connection_id)
        if conn is None or not conn.usable:
            return False
        self._by_remote[address] = connection_id
        conn.aliases.append(address)
        return True

    # -- connection management ----------------------------------------------------------------

    def set_keep(self, connection_id: int, keep: bool = True) -> bool:
        """Exempt a connection from the idle timeout (or not). False if it is gone."""
        conn = self._conns.get(connection_id)
        if conn is None:
            return False
        conn.keep = keep
        return True

    def close_connection(self, connection_id: int) -> bool:
        """Close one connection gracefully. False if it is gone."""
        conn = self._conns.get(connection_id)
        if conn is None:
            return False
        conn.close()
        return True

    def close_connections_from(self, host: str) -> int:
        """Abort every connection with `host` (a new ban); returns how many."""
        conns = list(self._by_host.get(host, ()))
        for conn in conns:
            conn.abort()
        return len(conns)

    def connection_peer(self, connection_id: int) -> Peer | None:
        """The `Peer` of a live connection, or None."""
        conn = self._conns.get(connection_id)
        return conn.peer if conn is not None else None

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    # -- called by StreamConnection -----------------------------------------------------------

    def _admit(self, conn: StreamConnection, transport: asyncio.Transport) -> bool:
        """An accepted connection: ask the guard, apply the per-source limit, register it."""
        peername = transport.get_extra_info("peername")
        if not self._running or not peername:
            return False
        host, port = peername[0], peername[1]
        if not conn.admitted and not self._source_allowed(host):
            return False
        remote = Address(conn.transport_name, host, port)  # type: ignore[arg-type]
        conn.remote = remote
        conn.id = next(self._ids)
        conn.peer = Peer(remote, conn.local or remote, conn.id)
        self._register(conn, remote)
        _set_nodelay(transport)
        return True

    def _source_allowed(self, host: str) -> bool:
        """The guard's verdict and the per-source connection limit, before anything else."""
        try:
            allowed = self._accept_source(host)
        except Exception:
            logger.exception("accept_source failed for %s; refusing", host)
            return False
        if not allowed:
            return False
        existing = self._by_host.get(host)
        if existing is not None and len(existing) >= self._max_per_source:
            logger.warning("refusing connection from %s: %d connections", host, len(existing))
            return False
        return True

    def _connected(self, conn: StreamConnection, transport: asyncio.Transport) -> None:
        """An outgoing connection is up (after the TLS handshake for TLS)."""
        if conn.local is None:
            sockname = transport.get_extra_info("sockname")
            conn.local = Address(conn.transport_name, sockname[0], sockname[1])  # type: ignore[arg-type]
        assert conn.remote is not None
        conn.peer = Peer(conn.remote, conn.local, conn.id)
        _set_nodelay(transport)

    def _register(self, conn: StreamConnection, remote: Address) -> None:
        self._conns[conn.id] = conn
        self._by_remote[remote] = conn.id
        self._by_host.setdefault(remote.host, set()).add(conn)

    def _forget(self, conn: StreamConnection) -> None:
        if self._conns.pop(conn.id, None) is None:
            return
        for address in (conn.remote, *conn.aliases):
            if address is not None and self._by_remote.get(address) == conn.id:
                del self._by_remote[address]
        if conn.remote is not None:
            conns = self._by_host.get(conn.remote.host)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._by_host[conn.remote.host]
        if conn.peer is not None and self._on_connection_closed is not None:
            try:
                self._on_connection_closed(conn.peer)
            except Exception:
                logger.exception("on_connection_closed failed")

    def _keepalive(self, peer: Peer) -> None:
        if self._on_keepalive is not None:
            try:
                self._on_keepalive(peer)
            except Exception:
                logger.exception("on_keepalive failed")

    def _send_failed(self, destination: Address, data: bytes, reason: str) -> None:
        logger.debug("send to %s failed: %s", destination, reason)
        if self._on_send_error is not None and self._loop is not None:
            self._loop.call_soon(self._report_send_error, destination, data, reason)

    def _report_send_error(self, destination: Address, data: bytes, reason: str) -> None:
        assert self._on_send_error is not None
        try:
            self._on_send_error(destination, data, reason)
        except Exception:
            logger.exception("on_send_error failed")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the one timer: idle sweep ------------------------------------------------------------

    def _sweep_interval(self) -> float:
        assert self.idle_timeout is not None
        return max(0.05, min(self.idle_timeout / 4, 30.0))

    def _sweep(self) -> None:
        """Close connections idle longer than `idle_timeout` (unless kept); re-arm."""
        assert self._loop is not None and self.idle_timeout is not None
        deadline = self.loop_time() - self.idle_timeout
        idle = [
            conn
            for conn in self._conns.values()
            if conn.state == OPEN and not conn.keep and conn.last_activity < deadline
        ]
        # A connection a registration or a call still uses stays open however quiet it is
        # (the PBX is asked once per sweep, never per message).
        in_use = self.connections_in_use() if idle and self.connections_in_use else ()
        for conn in idle:
            if conn.id not in in_use:
                logger.debug("closing idle connection %d to %s", conn.id, conn.remote)
                conn.close()
        self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)


def _bind_socket(kind: int, host: str, port: int) -> socket.socket:
    """A bound non-blocking socket; IPv6 ones are IPv6-only so `[::]` and `0.0.0.0` listeners
    on the same port coexist. UDP buffers are raised to the system maximum (bursts of
    datagrams are dropped by the kernel when the receive buffer is full)."""
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            for option, name in ((socket.SO_RCVBUF, "rmem_max"), (socket.SO_SNDBUF, "wmem_max")):
                size = _system_buffer_max(name)
                if size is not None and size > sock.getsockopt(socket.SOL_SOCKET, option):
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, option, size)
                    except OSError:
                        pass
        if family == socket.AF_INET6:
            infos = socket.getaddrinfo(host, port, family, kind, 0, socket.AI_NUMERICHOST)
            sock.bind(infos[0][4])
        else:
            sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    """SIP writes whole messages: Nagle would only delay the second of two quick ones."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
