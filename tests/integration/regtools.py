"""Helpers for the registration interop tests: provisioning users straight into the server's
store before it starts, running SIPp scenarios, and a tiny digest-answering UA."""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from sipbox.pbx.users import password_fields
from sipbox.sip.digest import answer_challenge
from sipbox.sip.message import Response
from sipbox.sip.parser import parse_message
from sipbox.storage import NewUser, open_store
from tests.integration.server import RunningServer

SIPP_DIR = Path(__file__).parent / "sipp"
_seq = itertools.count(1)


def db_url(server: RunningServer) -> str:
    return f"sqlite:///{server.state_dir}/sipbox.db"


def provision(server: RunningServer, users: list[NewUser]) -> None:
    """Create users in the server's SQLite store (the server must not be running)."""

    async def go() -> None:
        server.state_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(db_url(server))
        try:
            await store.migrate()
            for start in range(0, len(users), 1000):
                await store.create_users(users[start : start + 1000])
        finally:
            await store.close()

    asyncio.run(go())


def digest_user(number: str, realm: str, password: str, **kw: object) -> NewUser:
    return NewUser(number=number, **password_fields(number, realm, password), **kw)  # type: ignore[arg-type]


def injection(users: Iterable[tuple[str, str]]) -> str:
    """A SIPp injection file: number;password;[authentication ...] per line."""
    lines = [f"{n};{pw};[authentication username={n} password={pw}]\n" for n, pw in users]
    return "SEQUENTIAL\n" + "".join(lines)


def stored_bindings(server: RunningServer) -> list:
    async def go() -> list:
        store = open_store(db_url(server))
        try:
            return await store.load_bindings(time.time())
        finally:
            await store.close()

    return asyncio.run(go())


def run_sipp(
    server: RunningServer,
    scenario: str,
    *,
    csv: Path | None = None,
    calls: int = 1,
    rate: int = 100,
    local_ip: str = "127.0.0.1",
    extra: list[str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run a SIPp client scenario against the server; returns the finished process."""
    cmd = [
        "sipp",
        f"{server.host}:{server.port}",
        "-sf",
        str(SIPP_DIR / scenario),
        "-i",
        local_ip,
        "-p",
        "0",
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(max(rate, 1)),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
    ]
    if csv is not None:
        cmd += ["-inf", str(csv)]
    cmd += extra or []
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout + 15, cwd=csv.parent if csv else None
    )


class DigestUA:
    """A minimal UDP UA bound to a chosen loopback address (REGISTER + digest answer)."""

    def __init__(self, server: RunningServer, number: str, password: str, host: str) -> None:
        self.server = server
        self.number = number
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()
        self.call_id = f"ua-{next(_seq)}-{time.time()}"
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def request(
        self, method: str = "REGISTER", *, expires: int | None = 300, auth: str | None = None,
        contact: bool = True, to_user: str | None = None,
    ) -> bytes:  # fmt: skip
        self.cseq += 1
        s = self.server
        lines = [
            f"{method} sip:{s.host}:{s.port} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{next(_seq)}x;rport",
            f"From: <sip:{self.number}@{s.host}>;tag=t{self.cseq}",
            f"To: <sip:{to_user or self.number}@{s.host}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            "Max-Forwards: 70",
        ]
        if contact:
            lines.append(f"Contact: <sip:{self.number}@{self.host}:{self.port}>")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if auth:
            lines.append(f"Authorization: {auth}")
        return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()

    def exchange(self, data: bytes, timeout: float = 3.0) -> Response:
        self.sock.sendto(data, (self.server.host, self.server.port))
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            raw, _ = self.sock.recvfrom(65535)
            message = parse_message(raw)
            if isinstance(message, Response) and message.status >= 200:
                return message

    def register(self, *, expires: int | None = 300, contact: bool = True) -> Response:
        first = self.exchange(self.request(expires=expires, contact=contact))
        if first.status != 401:
            return first
        auth = answer_challenge(
            first.headers.get("WWW-Authenticate") or "",
            "REGISTER",
            f"sip:{self.server.host}:{self.server.port}",
            self.number,
            self.password,
            "abcdef",
            1,
        )
        return self.exchange(self.request(expires=expires, auth=auth, contact=contact))
