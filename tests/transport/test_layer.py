"""TransportLayer on loopback: UDP, TCP, TLS, keep-alives, the guard hook, connection reuse."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sipbox.sip.address import Address, Peer
from sipbox.sip.stun import MAGIC_COOKIE
from sipbox.transport import Listen, TransportLayer
from sipbox.transport.tlscert import client_context, ensure_self_signed, server_context

TIMEOUT = 3.0


def loopback() -> str:
    """A random 127/8 address, so parallel runs and lingering sockets do not collide."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def sip(n: int = 1, body: bytes = b"") -> bytes:
    return (
        f"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK{n}\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Sink:
    """Collects what the layer hands to its callbacks."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def __call__(self, *args: Any) -> None:
        self.queue.put_nowait(args)

    async def get(self) -> tuple[Any, ...]:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)

    async def assert_empty(self, wait: float = 0.15) -> None:
        await asyncio.sleep(wait)
        assert self.queue.empty(), self.queue.get_nowait()


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    async def get(self) -> tuple[bytes, Any]:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


_writers: list[asyncio.StreamWriter] = []


async def connect(
    host: str, port: int, **kwargs: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A test client connection, closed by `close_clients` (at the end of `running`)."""
    reader, writer = await asyncio.open_connection(host, port, **kwargs)
    _writers.append(writer)
    return reader, writer


async def close_clients() -> None:
    while _writers:
        writer = _writers.pop()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def running(layer: TransportLayer) -> AsyncIterator[TransportLayer]:
    await layer.start()
    try:
        yield layer
    finally:
        await close_clients()
        await layer.stop()


@contextlib.asynccontextmanager
async def udp_client(host: str) -> AsyncIterator[tuple[asyncio.DatagramTransport, UdpClient]]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(UdpClient, local_addr=(host, 0))
    try:
        yield transport, client
    finally:
        transport.close()


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), TIMEOUT)


async def assert_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(100), TIMEOUT) == b""


# -- UDP -------------------------------------------------------------------------------------


async def test_port_zero_binds_and_reports_addresses() -> None:
    host = loopback()
    layer = TransportLayer(
        [Listen("udp", host, 0), Listen("tcp", host, 0)], Sink(), idle_timeout=None
    )
    async with running(layer):
        udp, tcp = layer.listening
        assert (udp.transport, udp.host) == ("udp", host)
        assert (tcp.transport, tcp.host) == ("tcp", host)
        assert udp.port > 0 and tcp.port > 0
    assert layer.listening == []


async def test_udp_echo_through_on_message_and_send() -> None:
    host = loopback()
    layer: TransportLayer

    def echo(data: bytes, peer: Peer) -> None:
        layer.send(b"echo " + data, peer.remote, local=peer.local)

    layer = TransportLayer([Listen("udp", host, 0)], echo)
    async with running(layer), udp_client(host) as (transport, client):
        transport.sendto(sip(), (host, layer.listening[0].port))
        data, addr = await client.get()
        assert data == b"echo " + sip()
        assert addr[:2] == (host, layer.listening[0].port)


async def test_udp_peer_fields() -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("udp", host, 0)], sink)
    async with running(layer), udp_client(host) as (transport, _):
        transport.sendto(sip(), (host, layer.listening[0].port))
        _data, peer = await sink.get()
        client_port = transport.get_extra_info("sockname")[1]
        assert peer == Peer(Address("udp", host, client_port), layer.listening[0], None)


async def test_udp_keepalives_are_ignored() -> None:
    host = loopback()
    sink, keepalives = Sink(), Sink()
    layer = TransportLayer([Listen("udp", host, 0)], sink, on_keepalive=keepalives)
    async with running(layer), udp_client(host) as (transport, _):
        port = layer.listening[0].port
        for datagram in (b"\r\n", b"\r\n\r\n", b"\n", b"\0\0\0\0", b""):
            transport.sendto(datagram, (host, port))
        transport.sendto(sip(7), (host, port))
        data, _ = await sink.get()
        assert data == sip(7)  # the keep-alives before it were not delivered
        await sink.assert_empty()
        for _ in range(4):
            (peer,) = await keepalives.get()
            assert peer.remote.host == host


async def test_udp_leading_crlf_before_a_message_is_delivered() -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("udp", host, 0)], sink)
    async with running(layer), udp_client(host) as (transport, _):
        transport.sendto(b"\r\n" + sip(), (host, layer.listening[0].port))
        data, _ = await sink.get()
        assert data == b"\r\n" + sip()


async def test_udp_stun_binding_is_answered() -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("udp", host, 0)], sink)
    async with running(layer), udp_client(host) as (transport, client):
        transaction_id = random.randbytes(12)
        request = struct.pack("!HHI", 1, 0, MAGIC_COOKIE) + transaction_id
        transport.sendto(request, (host, layer.listening[0].port))
        response, _ = await client.get()
        assert response[:2] == b"\x01\x01" and response[8:20] == transaction_id
        kind, _length, _, family, x_port = struct.unpack_from("!HHBBH", response, 20)
        assert (kind, family) == (0x0020, 1)
        x_addr = response[28:32]
        address = bytes(
            a ^ b for a, b in zip(x_addr, MAGIC_COOKIE.to_bytes(4, "big"), strict=False)
        )
        sockname = transport.get_extra_info("sockname")
        assert socket.inet_ntoa(address) == host
        assert x_port ^ 0x2112 == sockname[1]
        await sink.assert_empty()


async def test_udp_accept_source_false_drops_before_anything() -> None:
    host, banned = loopback(), loopback()
    sink = Sink()
    asked: list[str] = []

    def accept(source: str) -> bool:
        asked.append(source)
        return source != banned

    layer = TransportLayer([Listen("udp", host, 0)], sink, accept_source=accept)
    async with (
        running(layer),
        udp_client(banned) as (bad, bad_client),
        udp_client(host) as (good, _),
    ):
        port = layer.listening[0].port
        bad.sendto(sip(1), (host, port))
        bad.sendto(struct.pack("!HHI", 1, 0, MAGIC_COOKIE) + bytes(12), (host, port))
        good.sendto(sip(2), (host, port))
        data, peer = await sink.get()
        assert data == sip(2) and peer.remote.host == host
        await sink.assert_empty()
        assert bad_client.queue.empty()  # not even a STUN answer
        assert asked.count(banned) == 2


async def test_udp_send_leaves_from_the_listener_the_request_came_in_on() -> None:
    first, second, client_host = loopback(), loopback(), loopback()
    sink = Sink()
    layer = TransportLayer([Listen("udp", first, 0), Listen("udp", second, 0)], sink)
    async with running(layer), udp_client(client_host) as (transport, client):
        via_first, via_second = layer.listening
        transport.sendto(sip(1), (second, via_second.port))
        _, peer = await sink.get()
        assert peer.local == via_second
        layer.send(b"reply", peer.remote, local=peer.local)
        assert await client.get() == (b"reply", (second, via_second.port))
        layer.send(b"default", peer.remote)  # no listener given: the first of the family
        assert await client.get() == (b"default", (first, via_first.port))


async def test_a_failing_on_message_does_not_break_the_transport() -> None:
    host = loopback()
    sink = Sink()

    def on_message(data: bytes, peer: Peer) -> None:
        sink(data, peer)
        raise RuntimeError("core bug")

    layer = TransportLayer([Listen("udp", host, 0), Listen("tcp", host, 0)], on_message)
    async with running(layer), udp_client(host) as (transport, _):
        udp, tcp = layer.listening
        transport.sendto(sip(1), (host, udp.port))
        transport.sendto(sip(2), (host, udp.port))
        assert [(await sink.get())[0] for _ in "12"] == [sip(1), sip(2)]
        reader, writer = await connect(host, tcp.port)
        writer.write(sip(3) + sip(4) + b"\r\n\r\n")
        assert [(await sink.get())[0] for _ in "34"] == [sip(3), sip(4)]
        assert await read_exactly(reader, 2) == b"\r\n"


async def test_udp_send_without_a_listener_of_that_family_reports_an_error() -> None:
    host = loopback()
    errors = Sink()
    layer = TransportLayer([Listen("udp", host, 0)], Sink(), on_send_error=errors)
    async with running(layer):
        destination = Address("udp", "2001:db8::1", 5060)
        layer.send(b"x", destination)
        assert errors.queue.empty()  # never from inside send()
        assert await errors.get() == (destination, b"x", "no UDP listener for this address family")


async def test_udp_ipv4_and_ipv6_wildcards_coexist_on_one_port() -> None:
    if not socket.has_ipv6:
        pytest.skip("IPv6 is not available")
    first = TransportLayer([Listen("udp", "0.0.0.0", 0)], Sink())
    async with running(first):
        port = first.listening[0].port
        try:
            second = TransportLayer([Listen("udp", "[::]", port)], Sink())
            await second.start()
        except OSError as exc:
            pytest.skip(f"IPv6 is off: {exc}")
        try:
            assert second.listening == [Address("udp", "::", port)]
        finally:
            await second.stop()


async def test_udp_buffers_are_raised() -> None:
    host = loopback()
    layer = TransportLayer([Listen("udp", host, 0)], Sink())
    async with running(layer):
        sock = layer._udp[0].transport.get_extra_info("socket")  # type: ignore[union-attr]
        rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        try:
            rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
        except OSError:
            pytest.skip("no /proc/sys/net/core/rmem_max")
        assert rcvbuf >= min(rmem_max, 212992)


# -- TCP -------------------------------------------------------------------------------------


async def test_tcp_two_messages_in_one_write_and_one_in_many() -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], sink)
    async with running(layer):
        _reader, writer = await connect(host, layer.listening[0].port)
        writer.write(sip(1, b"one") + sip(2, b"two"))
        big = sip(3, b"x" * 5000)
        for i in range(0, len(big), 97):
            writer.write(big[i : i + 97])
            await writer.drain()
            await asyncio.sleep(0)
        received = [await sink.get() for _ in range(3)]
        assert [data for data, _ in received] == [sip(1, b"one"), sip(2, b"two"), big]
        peers = {peer for _, peer in received}
        assert len(peers) == 1
        (peer,) = peers
        client = writer.get_extra_info("sockname")
        assert peer.remote == Address("tcp", client[0], client[1])
        assert peer.local == layer.listening[0]
        assert isinstance(peer.connection_id, int) and peer.connection_id > 0
        writer.close()


async def test_tcp_ping_gets_a_pong() -> None:
    host = loopback()
    sink, keepalives = Sink(), Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], sink, on_keepalive=keepalives)
    async with running(layer):
        reader, writer = await connect(host, layer.listening[0].port)
        writer.write(b"\r\n\r\n")
        assert await read_exactly(reader, 2) == b"\r\n"
        (peer,) = await keepalives.get()
        assert peer.remote.port == writer.get_extra_info("sockname")[1]
        writer.write(b"\r\n")
        writer.write(b"\r\n" + sip())
        assert await read_exactly(reader, 2) == b"\r\n"
        data, _ = await sink.get()
        assert data == sip()
        writer.close()


async def test_tcp_connection_reuse_for_sends_to_the_peer_address() -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], sink)
    async with running(layer):
        reader, writer = await connect(host, layer.listening[0].port)
        writer.write(sip(1))
        _, peer = await sink.get()
        # By remote address (no id): the inbound connection carries it.
        ok = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
        layer.send(ok, peer.remote)
        assert await read_exactly(reader, len(ok)) == ok
        # By connection id, whatever the destination says.
        layer.send(sip(2), Address("tcp", host, 1), connection_id=peer.connection_id)
        assert await read_exactly(reader, len(sip(2))) == sip(2)
        # By an alias (e.g. the Via sent-by of the peer).
        alias = Address("tcp", host, 5999)
        assert layer.add_alias(peer.connection_id, alias)
        layer.send(sip(3), alias)
        assert await read_exactly(reader, len(sip(3))) == sip(3)
        assert layer.connection_count == 1
        writer.close()
        await assert_closed(reader)


async def test_tcp_outgoing_connection_is_registered_both_ways() -> None:
    host_a, host_b = loopback(), loopback()
    sink_a, sink_b = Sink(), Sink()
    a = TransportLayer([Listen("tcp", host_a, 0)], sink_a)
    b = TransportLayer([Listen("tcp", host_b, 0)], sink_b)
    async with running(a), running(b):
        target = b.listening[0]
        a.send(sip(1), target)
        a.send(sip(2), target)  # queued on the same connecting connection
        data1, peer_b = await sink_b.get()
        data2, _ = await sink_b.get()
        assert (data1, data2) == (sip(1), sip(2))
        assert peer_b.remote.host == host_a  # left from the listener's interface
        assert a.connection_count == 1
        b.send(sip(3), peer_b.remote, peer_b.connection_id)
        data3, peer_a = await sink_a.get()
        assert data3 == sip(3)
        assert peer_a.remote == target
        assert peer_a.local == a.listening[0]
        a.send(sip(4), target)  # reuses the outgoing connection
        assert (await sink_b.get())[0] == sip(4)
        assert a.connection_count == 1 and b.connection_count == 1


async def test_tcp_connect_to_a_closed_port_reports_send_errors() -> None:
    host = loopback()
    errors = Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], Sink(), on_send_error=errors)
    with socket.socket() as probe:
        probe.bind((host, 0))
        closed_port = probe.getsockname()[1]
    async with running(layer):
        destination = Address("tcp", host, closed_port)
        layer.send(sip(1), destination)
        layer.send(sip(2), destination)
        first, second = await errors.get(), await errors.get()
        assert (first[0], first[1]) == (destination, sip(1))
        assert (second[0], second[1]) == (destination, sip(2))
        assert "failed" in first[2]
        assert layer.connection_count == 0


async def test_tcp_connect_timeout_reports_send_error() -> None:
    errors = Sink()
    layer = TransportLayer(
        [Listen("tcp", loopback(), 0)], Sink(), on_send_error=errors, connect_timeout=0.2
    )
    async with running(layer):
        destination = Address("tcp", "192.0.2.1", 5060)  # TEST-NET-1: never answers
        layer.send(sip(), destination)
        got = await errors.get()
        assert got[0] == destination and got[1] == sip()


async def test_tcp_accept_source_false_closes_at_accept() -> None:
    host, banned = loopback(), loopback()
    sink = Sink()
    layer = TransportLayer(
        [Listen("tcp", host, 0)], sink, accept_source=lambda source: source != banned
    )
    async with running(layer):
        reader, writer = await connect(host, layer.listening[0].port, local_addr=(banned, 0))
        with contextlib.suppress(ConnectionError):
            writer.write(sip())
        await assert_closed(reader)
        await sink.assert_empty()
        assert layer.connection_count == 0


async def test_tcp_framing_error_closes_without_a_reply() -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], sink)
    async with running(layer):
        reader, writer = await connect(host, layer.listening[0].port)
        writer.write(b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n")  # no Content-Length
        await assert_closed(reader)
        await sink.assert_empty(0.05)
        await asyncio.sleep(0.05)
        assert layer.connection_count == 0


async def test_tcp_oversized_message_closes() -> None:
    host = loopback()
    layer = TransportLayer([Listen("tcp", host, 0)], Sink(), max_message_size=1000)
    async with running(layer):
        reader, writer = await connect(host, layer.listening[0].port)
        writer.write(sip(1, b"x" * 2000))
        await assert_closed(reader)


async def test_tcp_per_source_limit() -> None:
    host = loopback()
    layer = TransportLayer([Listen("tcp", host, 0)], Sink(), max_connections_per_source=2)
    async with running(layer):
        port = layer.listening[0].port
        kept = [await connect(host, port) for _ in range(2)]
        for _, writer in kept:
            writer.write(b"\r\n\r\n")
        for reader, _ in kept:
            assert await read_exactly(reader, 2) == b"\r\n"
        reader, writer = await connect(host, port)
        await assert_closed(reader)
        assert layer.connection_count == 2
        for _, w in kept:
            w.close()


async def test_close_connections_from() -> None:
    host, source = loopback(), loopback()
    closed = Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], Sink(), on_connection_closed=closed)
    async with running(layer):
        port = layer.listening[0].port
        conns = [await connect(host, port, local_addr=(source, 0)) for _ in "ab"]
        other_reader, other_writer = await connect(host, port)
        for _, writer in [*conns, (other_reader, other_writer)]:
            writer.write(b"\r\n\r\n")
        for reader, _ in [*conns, (other_reader, other_writer)]:
            await read_exactly(reader, 2)
        assert layer.close_connections_from(source) == 2
        for reader, _ in conns:
            await assert_closed(reader)
        hosts = {(await closed.get())[0].remote.host for _ in conns}
        assert hosts == {source}
        assert layer.connection_count == 1
        other_writer.write(b"\r\n\r\n")
        assert await read_exactly(other_reader, 2) == b"\r\n"
        other_writer.close()


async def test_idle_timeout_closes_and_set_keep_spares() -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], sink, idle_timeout=0.3)
    async with running(layer):
        port = layer.listening[0].port
        idle_reader, idle_writer = await connect(host, port)
        kept_reader, kept_writer = await connect(host, port)
        busy_reader, busy_writer = await connect(host, port)
        kept_writer.write(sip(1))
        _, kept_peer = await sink.get()
        assert layer.set_keep(kept_peer.connection_id, True)
        assert not layer.set_keep(10**9, True)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(8):  # keep the busy one busy past the timeout
            busy_writer.write(b"\r\n\r\n")
            await read_exactly(busy_reader, 2)
            await asyncio.sleep(0.1)
        await assert_closed(idle_reader)
        assert loop.time() - start < 0.3 * 1.5 + 1.0
        assert layer.connection_count == 2
        kept_writer.write(b"\r\n\r\n")
        assert await read_exactly(kept_reader, 2) == b"\r\n"
        for w in (idle_writer, kept_writer, busy_writer):
            w.close()


async def test_idle_sweep_spares_connections_the_pbx_still_uses() -> None:
    """A quiet connection that a registration or call uses (asked once per sweep through
    `connections_in_use`) stays open; a quiet unused one is closed."""
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("tcp", host, 0)], sink, idle_timeout=0.3)
    asked: list[int] = []
    used: set[int] = set()

    def in_use() -> set[int]:
        asked.append(1)
        return used

    layer.connections_in_use = in_use
    async with running(layer):
        port = layer.listening[0].port
        unused_reader, unused_writer = await connect(host, port)
        bound_reader, bound_writer = await connect(host, port)
        bound_writer.write(sip(1))
        _, bound_peer = await sink.get()
        used.add(bound_peer.connection_id)
        await assert_closed(unused_reader)
        await asyncio.sleep(0.5)
        assert asked, "the sweep never asked which connections are in use"
        bound_writer.write(b"\r\n\r\n")
        assert await read_exactly(bound_reader, 2) == b"\r\n"
        assert layer.connection_count == 1
        for w in (unused_writer, bound_writer):
            w.close()


async def test_stop_closes_connections_and_fails_queued_sends() -> None:
    host = loopback()
    errors = Sink()
    layer = TransportLayer(
        [Listen("tcp", host, 0)], Sink(), on_send_error=errors, connect_timeout=2.0
    )
    await layer.start()
    reader, writer = await connect(host, layer.listening[0].port)
    writer.write(b"\r\n\r\n")
    await read_exactly(reader, 2)
    layer.send(sip(), Address("tcp", "192.0.2.1", 5060))  # still connecting at stop()
    await layer.stop()
    await assert_closed(reader)
    await close_clients()
    got = await errors.get()
    assert got[1] == sip()
    layer.send(b"late", Address("udp", host, 9))
    assert (await errors.get())[2] == "transport layer not running"


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    ensure_self_signed(cert, key, "sipbox.test")
    return cert, key


async def test_tls_accepts_and_echoes(certificate: tuple[Path, Path]) -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("tls", host, 0)], sink, tls_context=server_context(*certificate))
    async with running(layer):
        reader, writer = await connect(
            host, layer.listening[0].port, ssl=client_context(verify=False)
        )
        writer.write(sip(1) + b"\r\n\r\n")
        assert await read_exactly(reader, 2) == b"\r\n"
        data, peer = await sink.get()
        assert data == sip(1)
        assert peer.remote.transport == "tls" and peer.local == layer.listening[0]
        layer.send(sip(2), peer.remote)
        assert await read_exactly(reader, len(sip(2))) == sip(2)
        writer.close()


async def test_tls_verifying_client_accepts_the_generated_certificate(
    certificate: tuple[Path, Path],
) -> None:
    host = loopback()
    sink = Sink()
    layer = TransportLayer([Listen("tls", host, 0)], sink, tls_context=server_context(*certificate))
    async with running(layer):
        context = client_context(verify=True, cafile=certificate[0])
        _reader, writer = await connect(
            host, layer.listening[0].port, ssl=context, server_hostname="sipbox.test"
        )
        writer.write(sip())
        assert (await sink.get())[0] == sip()
        writer.close()


async def test_tls_between_two_layers(certificate: tuple[Path, Path]) -> None:
    host_a, host_b = loopback(), loopback()
    sink_a, sink_b = Sink(), Sink()
    server = server_context(*certificate)
    client = client_context(verify=True, cafile=certificate[0])
    a = TransportLayer(
        [Listen("tls", host_a, 0)], sink_a, tls_context=server, client_tls_context=client
    )
    b = TransportLayer([Listen("tls", host_b, 0)], sink_b, tls_context=server)
    async with running(a), running(b):
        a.send(sip(1), b.listening[0], server_name="sipbox.test")
        data, peer_b = await sink_b.get()
        assert data == sip(1)
        b.send(sip(2), peer_b.remote, peer_b.connection_id)
        data, peer_a = await sink_a.get()
        assert data == sip(2) and peer_a.remote == b.listening[0]


async def test_tls_failed_verification_reports_send_error(certificate: tuple[Path, Path]) -> None:
    host = loopback()
    errors = Sink()
    server = TransportLayer(
        [Listen("tls", host, 0)], Sink(), tls_context=server_context(*certificate)
    )
    client = TransportLayer(
        [],
        Sink(),
        client_tls_context=client_context(verify=True),  # system store: not our cert
        on_send_error=errors,
    )
    async with running(server), running(client):
        destination = server.listening[0]
        client.send(sip(), destination)
        got = await errors.get()
        assert got[:2] == (destination, sip())
        assert client.connection_count == 0


async def test_tls_without_client_context_reports_send_error() -> None:
    errors = Sink()
    layer = TransportLayer([], Sink(), on_send_error=errors)
    async with running(layer):
        layer.send(sip(), Address("tls", "127.0.0.1", 5061))
        assert (await errors.get())[2] == "no client TLS context configured"


async def test_tls_banned_source_closed_before_handshake(certificate: tuple[Path, Path]) -> None:
    host, banned = loopback(), loopback()
    layer = TransportLayer(
        [Listen("tls", host, 0)],
        Sink(),
        tls_context=server_context(*certificate),
        accept_source=lambda source: source != banned,
    )
    async with running(layer):
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    layer.listening[0].port,
                    ssl=client_context(verify=False),
                    local_addr=(banned, 0),
                ),
                TIMEOUT,
            )


async def test_tls_listener_needs_a_context() -> None:
    layer = TransportLayer([Listen("tls", loopback(), 0), Listen("udp", loopback(), 0)], Sink())
    with pytest.raises(ValueError):
        await layer.start()
    assert layer.listening == []


# -- IPv6 ------------------------------------------------------------------------------------


def _ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


ipv6 = pytest.mark.skipif(not _ipv6_loopback_works(), reason="IPv6 loopback (::1) is off")


@ipv6
async def test_ipv6_udp_and_tcp_on_loopback() -> None:
    sink = Sink()
    layer: TransportLayer

    def echo(data: bytes, peer: Peer) -> None:
        sink(data, peer)
        layer.send(data, peer.remote, peer.connection_id, local=peer.local)

    layer = TransportLayer([Listen("udp", "[::1]", 0), Listen("tcp", "::1", 0)], echo)
    async with running(layer):
        udp, tcp = layer.listening
        assert udp.host == "::1" and tcp.host == "::1"
        assert udp.hostport() == f"[::1]:{udp.port}"
        async with udp_client("::1") as (transport, client):
            transport.sendto(sip(1), ("::1", udp.port))
            assert (await client.get())[0] == sip(1)
            response = struct.pack("!HHI", 1, 0, MAGIC_COOKIE) + bytes(12)
            transport.sendto(response, ("::1", udp.port))
            stun, _ = await client.get()
            assert stun[24:26] == b"\x00\x02"  # IPv6 family in XOR-MAPPED-ADDRESS
        reader, writer = await connect("::1", tcp.port)
        writer.write(sip(2))
        assert await read_exactly(reader, len(sip(2))) == sip(2)
        _, peer = await sink.get()
        _, peer = await sink.get()
        assert peer.remote.host == "::1" and peer.remote.transport == "tcp"
        writer.close()


async def test_messages_after_a_close_from_the_callback_are_dropped() -> None:
    host = loopback()
    sink = Sink()
    layer: TransportLayer

    def on_message(data: bytes, peer: Peer) -> None:
        sink(data, peer)
        layer.close_connections_from(peer.remote.host)  # e.g. the guard bans on the first

    layer = TransportLayer([Listen("tcp", host, 0)], on_message)
    async with running(layer):
        reader, writer = await connect(host, layer.listening[0].port)
        writer.write(sip(1) + sip(2) + b"\r\n\r\n")
        assert (await sink.get())[0] == sip(1)
        await assert_closed(reader)
        await sink.assert_empty()
