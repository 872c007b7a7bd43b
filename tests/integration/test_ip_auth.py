"""IP address authorization end to end (issue 3): a SIPp UAS on its own 127.0.0.x is reachable
without ever registering, requests from its address are accepted without a challenge, and the
same identity from another address is challenged (or refused when it has no password).

The server runs in-process (`sipbox.app.Server`) so the test can ask the registrar directly
whether the user is reachable and send to its target through the real endpoint/transport.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from sipbox.app import Server
from sipbox.config import load_settings
from sipbox.sip.headers import Headers
from sipbox.sip.message import Request
from sipbox.storage import NewUser
from tests.conftest import free_port, loopback_host, require_tool
from tests.integration.regtools import SIPP_DIR, DigestUA, digest_user, provision
from tests.integration.server import make_server

pytestmark = pytest.mark.interop


async def test_ip_authorized_uas_reachable_and_accepted(tmp_path) -> None:
    require_tool("sipp")
    server_info = make_server(tmp_path, extra_config="\n[guard]\nenabled = false\n")
    uas_host = loopback_host()
    while uas_host == server_info.host:
        uas_host = loopback_host()
    uas_port = free_port(uas_host, "udp")
    realm = server_info.host
    await asyncio.to_thread(
        provision,
        server_info,
        [
            digest_user(
                "2000", realm, "gwpass", ip_auth=(f"{uas_host}/32",),
                static_contact=f"{uas_host}:{uas_port}",
            ),
            # IP authorization only, no password.
            NewUser(number="2001", ip_auth=(f"{uas_host}/32",)),
        ],
    )  # fmt: skip
    server = Server(load_settings(server_info.config_path))
    await server.start()
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SIPP_DIR / "uas_options.xml"), "-i", uas_host, "-p", str(uas_port),
         "-m", "1", "-timeout", "10s", "-timeout_error", "-nostdin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        registrar = server.registrar
        # Reachable without registering, through its static contact.
        assert registrar.bindings_for("2000") == []
        assert registrar.reachable("2000")
        [target] = registrar.targets("2000")
        assert target.request_uri == f"sip:2000@{uas_host}:{uas_port}"

        # The real endpoint reaches the SIPp UAS there (it answers 200 and exits 0).
        await asyncio.sleep(0.3)
        headers = Headers()
        headers.add("From", f"<sip:pbx@{realm}>;tag=probe1")
        headers.add("To", f"<{target.request_uri}>")
        headers.add("Call-ID", "ipauth-probe-1")
        headers.add("CSeq", "1 OPTIONS")
        probe = Request("OPTIONS", target.request_uri, headers)
        server.pump.send_request(probe, target.destination)

        # A request from its address claiming it: accepted without a challenge.
        gateway = DigestUA(server_info, "2000", "ignored", uas_host)
        try:
            r = await asyncio.to_thread(gateway.exchange, gateway.request())
            assert r.status == 200, r
        finally:
            gateway.close()
        # The same From from another address: a normal digest challenge...
        other = DigestUA(server_info, "2000", "gwpass", "127.0.0.1")
        try:
            r = await asyncio.to_thread(other.exchange, other.request())
            assert r.status == 401
            # ...which the right password passes.
            r = await asyncio.to_thread(other.register)
            assert r.status == 200
        finally:
            other.close()
        # A password-less IP user claimed from elsewhere is refused outright.
        nopass = DigestUA(server_info, "2001", "", "127.0.0.1")
        try:
            r = await asyncio.to_thread(nopass.exchange, nopass.request())
            assert r.status == 403
        finally:
            nopass.close()

        for _ in range(50):
            if uas.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert uas.poll() == 0, uas.stderr.read().decode() if uas.stderr else ""
    finally:
        if uas.poll() is None:
            uas.kill()
        uas.wait()
        await server.stop()
