"""A line over TLS (issue 5): the carrier's certificate is checked for `tls_server_name` (a
logical domain with an SBC given by address), or not at all with `tls_verify` off.

The carrier is a small TLS registrar in the test with a self-signed certificate for
``sbc.carrier.test``; the server trusts it through ``SSL_CERT_FILE`` (what the system store
would hold for a real carrier CA). Three lines, each to its own SBC (the policy is per
destination: lines at one SBC share its connection): the right name registers, a wrong name
fails the handshake (the line fails, nothing registered), verification off registers anyway.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

import httpx

from sipbox.sip.message import Request
from sipbox.sip.parser import parse_message
from sipbox.transport.tlscert import ensure_self_signed
from tests.conftest import free_port
from tests.integration.calltools import other_host
from tests.integration.server import make_server


class TlsRegistrar:
    """Accepts TLS connections; answers every REGISTER 200 (expires 300). `users` lists the
    Contact users that reached it (only after a completed handshake)."""

    def __init__(self, host: str, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind((host, free_port(host, "tcp")))
        self.sock.listen()
        self.host, self.port = self.sock.getsockname()
        self.users: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65535)
                except (ssl.SSLError, OSError):
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    message = parse_message(head + b"\r\n\r\n")
                    if isinstance(message, Request) and message.method == "REGISTER":
                        conn.sendall(self._ok(message))

    def _ok(self, request: Request) -> bytes:
        h = request.headers
        contact = h.get("contact") or ""
        uri = contact.split("<", 1)[-1].split(">", 1)[0]
        self.users.append(uri.split(":", 1)[1].split("@", 1)[0])
        vias = "".join(f"Via: {v}\r\n" for v in h.get_all("via"))
        return (
            f"SIP/2.0 200 OK\r\n{vias}From: {h.get('from')}\r\nTo: {h.get('to')};tag=t\r\n"
            f"Call-ID: {request.call_id}\r\nCSeq: {h.get('cseq')}\r\n"
            f"Contact: <{uri}>;expires=300\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    def close(self) -> None:
        self.sock.close()


def test_tls_server_name_and_verify(tmp_path: Path) -> None:
    cert, key = tmp_path / "carrier.pem", tmp_path / "carrier.key"
    ensure_self_signed(cert, key, "sbc.carrier.test")
    server = make_server(tmp_path, extra_config="\n[guard]\nenabled = false\n")
    server.env = {"SSL_CERT_FILE": str(cert)}
    host = other_host(server.host)
    carriers = {name: TlsRegistrar(host, cert, key) for name in ("right", "wrong", "noverify")}
    server.start()
    try:
        api = httpx.Client(base_url=server.api_url, timeout=10,
                           headers={"Authorization": f"Bearer {server.admin_token()}"})  # fmt: skip
        ids = {}
        for name, extra in (
            ("right", {"tls_server_name": "sbc.carrier.test"}),
            ("wrong", {"tls_server_name": "other.carrier.test"}),
            ("noverify", {"tls_server_name": "other.carrier.test", "tls_verify": False}),
        ):
            proxy = f"{host}:{carriers[name].port};transport=tls"
            made = api.post("/lines", json={
                "name": name, "domain": "ims.invalid", "proxy": proxy, "account": name,
                "password": "pw", **extra,
            })  # fmt: skip
            assert made.status_code == 201, made.text
            ids[name] = made.json()["id"]

        def state(name: str) -> dict:
            return api.get(f"/lines/{ids[name]}").json()["status"]

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = {n: state(n)["state"] for n in ids}
            if states == {"right": "registered", "wrong": "failed", "noverify": "registered"}:
                break
            time.sleep(0.1)
        assert states == {"right": "registered", "wrong": "failed", "noverify": "registered"}, (
            states, server.log_text()[-2000:])  # fmt: skip
        assert not carriers["wrong"].users  # never got past the handshake
        assert carriers["right"].users and carriers["noverify"].users
        wrong = state("wrong")
        assert (wrong["last_status"], wrong["last_reason"]) == (503, "transport error"), wrong
    finally:
        server.stop()
        for carrier in carriers.values():
            carrier.close()
