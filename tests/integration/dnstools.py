"""A tiny authoritative DNS server for the RFC 3263 tests: NAPTR, SRV and A from a table.

Why our own: the test needs fixed answers on a loopback address (``[dns] servers``) and
nothing on the host resolver; the standard library's `socketserver` plus a few `struct`
calls are enough for the three record types a SIP client asks for (RFC 3263 §4).
"""

from __future__ import annotations

import socketserver
import struct
import threading
from typing import Any

A, SRV, NAPTR = 1, 33, 35


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"


def _text(value: str) -> bytes:
    return bytes([len(value)]) + value.encode()


def naptr(order: int, pref: int, flags: str, service: str, replacement: str) -> bytes:
    return (
        struct.pack("!HH", order, pref)
        + _text(flags)
        + _text(service)
        + _text("")
        + _name(replacement)
    )


def srv(priority: int, weight: int, port: int, target: str) -> bytes:
    return struct.pack("!HHH", priority, weight, port) + _name(target)


def a(address: str) -> bytes:
    return bytes(int(x) for x in address.split("."))


class DnsServer:
    """Answers from `records`: {(name, type): [rdata, ...]}; unknown names get NXDOMAIN.
    `queries` lists (name, type) as asked."""

    def __init__(self, host: str, records: dict[tuple[str, int], list[bytes]]) -> None:
        self.records = {(n.lower().rstrip("."), t): v for (n, t), v in records.items()}
        self.queries: list[tuple[str, int]] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = outer.answer(data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        self.server = socketserver.ThreadingUDPServer((host, 0), Handler)
        self.host, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def answer(self, data: bytes) -> bytes | None:
        try:
            qid, _flags, qd = struct.unpack("!HHH", data[:6])
            labels: list[str] = []
            pos = 12
            while data[pos]:
                labels.append(data[pos + 1 : pos + 1 + data[pos]].decode())
                pos += 1 + data[pos]
            qtype = struct.unpack("!H", data[pos + 1 : pos + 3])[0]
            question = data[12 : pos + 5]
        except (struct.error, IndexError, UnicodeDecodeError):
            return None
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        found = self.records.get((name, qtype))
        known = any(n == name for n, _ in self.records)
        rcode = 0 if found or known else 3
        out = struct.pack("!HHHHHH", qid, 0x8400 | rcode, qd, len(found or ()), 0, 0) + question
        for rdata in found or ():
            out += struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
