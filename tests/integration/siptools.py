"""Small helpers for talking SIP to a test server from the test process itself."""

from __future__ import annotations

import socket
import time

from sipbox.sip.message import Message, Response
from sipbox.sip.parser import parse_message


def udp_exchange(
    host: str, port: int, data: bytes, *, timeout: float = 2.0, expect: int = 1
) -> list[Response]:
    """Send one datagram from a fresh socket; collect up to `expect` responses."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host if family == socket.AF_INET6 else "127.0.0.1", 0))
        sock.sendto(data, (host, port))
        return _collect(sock, timeout, expect)


def _collect(sock: socket.socket, timeout: float, expect: int) -> list[Response]:
    responses: list[Response] = []
    deadline = time.monotonic() + timeout
    while len(responses) < expect:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            break
        message: Message = parse_message(data)
        if isinstance(message, Response):
            responses.append(message)
    return responses


def final_response(responses: list[Response]) -> Response | None:
    finals = [r for r in responses if r.status >= 200]
    return finals[0] if finals else None


def options_request(
    host: str, port: int, *, branch: str = "z9hG4bKtest1", extra: str = ""
) -> bytes:
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch};rport\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=abc\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {branch}@test\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"Max-Forwards: 70\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    ).encode()
