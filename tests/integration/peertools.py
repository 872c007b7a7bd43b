"""A scriptable SIP peer in the test process (a carrier or a trunk) for the line/trunk tests.

SIPp cannot both answer a REGISTER and then, as the carrier, send an INVITE to the Contact it
learnt, nor answer OPTIONS keep-alives for as long as a test wants; this small UDP peer can.
It parses with sipbox's own parser and builds requests/responses as plain text (no cleverness:
what a carrier sends, written out).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable

from sipbox.sip.message import Message, Request, Response
from sipbox.sip.parser import parse_message

_ids = itertools.count(1)
SDP = (
    "v=0\r\no=peer 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
    "m=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class Peer:
    """One UDP socket at (host, port). `auto` answers requests in the background: OPTIONS
    (when `answer_options`), REGISTER (200 echoing the Contact with `expires`), and calls
    to it through `on_invite`; everything else received is queued for `wait`."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()
        self.received: list[tuple[Message, tuple[str, int]]] = []
        self.answer_options = True
        self.silent = False  # a dead SBC: record what arrives, answer nothing
        self.register_expires = 60
        self.register_status = 200  # e.g. 503: a registrar in trouble (RFC 3263 failover)
        self.contact_user: str | None = None
        self.on_invite: Callable[[Request, tuple[str, int]], None] | None = None
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- background -------------------------------------------------------------------------
    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            try:
                message = parse_message(data)
            except Exception:
                continue
            with self._lock:
                self.received.append((message, addr))
            if isinstance(message, Request) and not self.silent:
                self._auto(message, addr)

    def _auto(self, request: Request, addr: tuple[str, int]) -> None:
        method = request.method
        if method == "OPTIONS" and self.answer_options:
            self.reply(request, addr, 200)
        elif method == "REGISTER":
            contact = request.headers.get("contact") or ""
            expires = 0 if request.headers.get("expires") == "0" else self.register_expires
            uri = contact.split("<", 1)[-1].split(">", 1)[0]
            self.contact_user = uri.split(":", 1)[1].split("@", 1)[0]
            if self.register_status != 200:
                self.reply(request, addr, self.register_status)
                return
            self.reply(request, addr, 200, extra=f"Contact: <{uri}>;expires={expires}\r\n")
        elif method == "INVITE" and self.on_invite is not None:
            self.on_invite(request, addr)
        elif method == "BYE":
            self.reply(request, addr, 200)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=1)
        self.sock.close()

    # -- sending ----------------------------------------------------------------------------
    def send(self, data: str, addr: tuple[str, int]) -> None:
        self.sock.sendto(data.encode(), addr)

    def reply(
        self, request: Request, addr: tuple[str, int], status: int, *, to_tag: str = "peer1",
        extra: str = "", body: str = "",
    ) -> None:  # fmt: skip
        headers = request.headers
        to = headers.get("to") or ""
        if ";tag=" not in to and status != 100:
            to += f";tag={to_tag}"
        vias = "".join(f"Via: {v}\r\n" for v in headers.get_all("via"))
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        self.send(
            f"SIP/2.0 {status} Test\r\n{vias}From: {headers.get('from')}\r\nTo: {to}\r\n"
            f"Call-ID: {request.call_id}\r\nCSeq: {headers.get('cseq')}\r\n"
            f"Contact: <sip:peer@{self.host}:{self.port}>\r\n{extra}{ctype}"
            f"Content-Length: {len(body)}\r\n\r\n{body}",
            addr,
        )

    def answer(self, request: Request, addr: tuple[str, int]) -> None:
        """180, then 200 with an SDP answer (the ACK and BYE arrive in `received`)."""
        self.reply(request, addr, 180)
        self.reply(request, addr, 200, body=SDP.format(host=self.host))

    def request(
        self, method: str, uri: str, addr: tuple[str, int], *, from_user: str = "+8613800000000",
        to: str | None = None, call_id: str | None = None, cseq: int = 1, to_tag: str = "",
        extra: str = "", body: str = "",
    ) -> str:  # fmt: skip
        """Send a request; returns its Call-ID."""
        n = next(_ids)
        call_id = call_id or f"peer-{n}-{time.time()}@{self.host}"
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        self.send(
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bKpeer{n}\r\n"
            f"From: <sip:{from_user}@{self.host}>;tag=pf{call_id[:12]}\r\n"
            f"To: {to or '<' + uri + '>'}{';tag=' + to_tag if to_tag else ''}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:carrier@{self.host}:{self.port}>\r\n{extra}{ctype}"
            f"Content-Length: {len(body)}\r\n\r\n{body}",
            addr,
        )
        return call_id

    # -- waiting ----------------------------------------------------------------------------
    def wait(
        self, match: Callable[[Message], bool], timeout: float = 5.0
    ) -> tuple[Message, tuple[str, int]]:
        """The first received message matching (removed from the queue)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for i, (message, addr) in enumerate(self.received):
                    if match(message):
                        del self.received[i]
                        return message, addr
            time.sleep(0.02)
        with self._lock:
            seen = [repr(m) for m, _ in self.received]
        raise AssertionError(f"{self.host}:{self.port}: nothing matched in {timeout}s; got {seen}")

    def final(self, call_id: str, timeout: float = 5.0) -> Response:
        message, _ = self.wait(
            lambda m: isinstance(m, Response) and m.call_id == call_id and m.status >= 200,
            timeout,
        )
        assert isinstance(message, Response)
        return message

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.received if isinstance(m, Request) and m.method == method)
