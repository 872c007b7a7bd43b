"""A small RFC 3263 resolver for line domains without a proxy: NAPTR -> SRV -> A, over UDP.

Only what locating a carrier needs (RFC 3263 §4.1-4.2): NAPTR records with SIP services
("SIP+D2U", "SIP+D2T", "SIPS+D2T") give SRV names; SRV records give hosts in priority/weight
order; A records give addresses. Without NAPTR, ``_sip._udp`` (or ``_tcp``/``_sips._tcp``)
SRV; without SRV, the domain's A record on the transport's default port. Resolvers are
``[dns] servers`` or those of /etc/resolv.conf. IPv4 only (carriers' SBCs in practice).
"""

from __future__ import annotations

import asyncio
import secrets
import struct
from pathlib import Path
from typing import Any

from sipbox.sip.address import DEFAULT_PORTS, Address

__all__ = ["query", "resolve_sip_targets", "system_servers"]

A, SRV, NAPTR = 1, 33, 35
_NAPTR_SERVICE = {"udp": "SIP+D2U", "tcp": "SIP+D2T", "tls": "SIPS+D2T"}
_SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}


def system_servers() -> list[str]:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return ["127.0.0.1"]
    found = [line.split()[1] for line in text.splitlines() if line.startswith("nameserver ")]
    return found or ["127.0.0.1"]


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(64):
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        offset += 1
        if length == 0:
            break
        labels.append(data[offset : offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def _parse(data: bytes, qid: int, qtype: int) -> list[Any]:
    rid, flags, qd, an = struct.unpack("!HHHH", data[:8])
    if rid != qid or flags & 0x000F not in (0, 3):
        return []
    offset = 12
    for _ in range(qd):
        _, offset = _read_name(data, offset)
        offset += 4
    out: list[Any] = []
    for _ in range(an):
        _, offset = _read_name(data, offset)
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        rdata = offset
        offset += length
        if rtype != qtype:
            continue
        if rtype == A:
            out.append(".".join(str(b) for b in data[rdata : rdata + 4]))
        elif rtype == SRV:
            priority, weight, port = struct.unpack("!HHH", data[rdata : rdata + 6])
            target, _ = _read_name(data, rdata + 6)
            out.append((priority, -weight, port, target))
        elif rtype == NAPTR:
            order, pref = struct.unpack("!HH", data[rdata : rdata + 4])
            pos = rdata + 4
            fields = []
            for _ in range(3):
                size = data[pos]
                fields.append(data[pos + 1 : pos + 1 + size].decode("ascii", "replace"))
                pos += 1 + size
            replacement, _ = _read_name(data, pos)
            out.append((order, pref, fields[0].lower(), fields[1].upper(), replacement))
    return out


class _Once(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done():
            self.answer.set_result(data)


async def query(name: str, qtype: int, servers: tuple[str, ...], timeout: float) -> list[Any]:
    """One question to each server in turn until one answers."""
    qid = secrets.randbits(16)
    packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name)
    packet += struct.pack("!HH", qtype, 1)
    loop = asyncio.get_running_loop()
    for server in servers or tuple(system_servers()):
        host, _, port = server.partition(":")
        transport, protocol = await loop.create_datagram_endpoint(
            _Once, remote_addr=(host, int(port or 53))
        )
        try:
            transport.sendto(packet)
            data = await asyncio.wait_for(protocol.answer, timeout)
            return _parse(data, qid, qtype)
        except (TimeoutError, OSError, struct.error, IndexError):
            continue
        finally:
            transport.close()
    return []


async def resolve_sip_targets(
    domain: str, transport: str, *, servers: tuple[str, ...] = (), timeout: float = 2.0
) -> list[Address]:
    """RFC 3263 §4: the ordered targets for `domain` over `transport`."""
    srv_names: list[str] = []
    naptr = await query(domain, NAPTR, servers, timeout)
    wanted = _NAPTR_SERVICE[transport]
    for _order, _pref, flags, service, replacement in sorted(naptr):
        if flags == "s" and service == wanted and replacement:
            srv_names.append(replacement)
    if not srv_names:
        srv_names = [_SRV_PREFIX[transport] + domain]
    out: list[Address] = []
    for srv_name in srv_names:
        for _prio, _w, port, target in sorted(await query(srv_name, SRV, servers, timeout)):
            for host in await query(target, A, servers, timeout):
                out.append(Address(transport, str(host), int(port)))  # type: ignore[arg-type]
    if not out:
        for host in await query(domain, A, servers, timeout):
            out.append(Address(transport, str(host), DEFAULT_PORTS[transport]))  # type: ignore[arg-type]
    return out
