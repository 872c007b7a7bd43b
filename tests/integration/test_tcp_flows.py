"""TCP flows the PBX still uses are never closed as idle (issue 6, hardening): a phone that
registered over TCP keeps its connection however quiet it is, while an unused connection from
the same kind of client is closed after `[sip] tcp_idle_timeout`."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from sipbox.sip.digest import answer_challenge, parse_challenge
from sipbox.sip.message import Response
from sipbox.sip.parser import parse_message
from tests.integration.regtools import digest_user, provision
from tests.integration.server import make_server

PASSWORD = "tcp-flow-pw"


def _read_message(sock: socket.socket) -> Response:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65535)
        assert chunk, "connection closed while waiting for a response"
        data += chunk
    message = parse_message(data, stream=True)
    assert isinstance(message, Response)
    return message


def _register(sock: socket.socket, host: str, port: int, cseq: int, auth: str | None) -> bytes:
    local_host, local_port = sock.getsockname()[:2]
    lines = [
        f"REGISTER sip:{host}:{port};transport=tcp SIP/2.0",
        f"Via: SIP/2.0/TCP {local_host}:{local_port};branch=z9hG4bKtcp{cseq};rport",
        f"From: <sip:1001@{host}>;tag=tcp1",
        f"To: <sip:1001@{host}>",
        "Call-ID: tcp-flow-1",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
        f"Contact: <sip:1001@{local_host}:{local_port};transport=tcp>",
        "Expires: 300",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def _alive(sock: socket.socket) -> bool:
    """A CRLFCRLF ping answered with CRLF (RFC 5626 §3.5.1) means the server kept the flow."""
    try:
        sock.sendall(b"\r\n\r\n")
        sock.settimeout(2)
        return sock.recv(2) == b"\r\n"
    except OSError:
        return False


def test_registered_tcp_flow_survives_the_idle_timeout(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    # make_server already wrote a [sip] section: add the key to it.
    text = server.config_path.read_text().replace(
        "[sip]\n", '[sip]\ntcp_idle_timeout = "1s"\n', 1
    )
    server.config_path.write_text(text)
    provision(server, [digest_user("1001", server.host, PASSWORD)])
    server.start()
    try:
        host, port = server.host, server.port
        phone = socket.create_connection((host, port), timeout=3)
        idle = socket.create_connection((host, port), timeout=3)
        phone.sendall(_register(phone, host, port, 1, None))
        challenge = _read_message(phone)
        assert challenge.status == 401
        header = challenge.headers.get("WWW-Authenticate") or ""
        auth = answer_challenge(
            parse_challenge(header), "REGISTER", f"sip:{host}:{port};transport=tcp",
            "1001", PASSWORD, cnonce="0a4f113b", nc=1,
        )  # fmt: skip
        phone.sendall(_register(phone, host, port, 2, auth))
        assert _read_message(phone).status == 200
        time.sleep(3.0)  # three idle timeouts: both are quiet
        assert not _alive(idle), "an unused idle connection should have been closed"
        assert _alive(phone), "the registered phone's flow was closed as idle"
    finally:
        server.stop()
