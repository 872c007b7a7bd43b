"""External lines against a SIPp "carrier" on loopback (issue 5).

The IMS case: domain `ims.invalid` (never resolves), proxy = the carrier's 127.0.0.x:port.
The carrier wants the digest username `account@domain`: with `auth_id_with_domain` off the
line fails (403, then backs off), `line test` names the working form, and with the option on
the line registers (Service-Route and P-Associated-URI shown in `/lines`).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import free_port, require_tool
from tests.integration.calltools import other_host
from tests.integration.regtools import SIPP_DIR
from tests.integration.server import make_server


def _carrier(
    host: str, port: int, cwd: Path, scenario: str = "carrier_register.xml"
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["sipp", "-sf", str(SIPP_DIR / scenario), "-i", host, "-p", str(port),
         "-nostdin", "-trace_msg", "-trace_err"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd,
    )  # fmt: skip


def _wait(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s; last value {value!r}")


def test_ims_line_auth_id_with_domain(tmp_path: Path) -> None:
    require_tool("sipp")
    server = make_server(
        tmp_path,
        extra_config='\n[guard]\nenabled = false\n[lines]\nbackoff_base = "30s"\n'
        'test_spacing = "200ms"\n',
    )
    carrier_host = other_host(server.host)
    carrier_port = free_port(carrier_host, "udp")
    carrier = _carrier(carrier_host, carrier_port, tmp_path)
    server.start()
    try:
        api = httpx.Client(
            base_url=server.api_url,
            headers={"Authorization": f"Bearer {server.admin_token()}"},
            timeout=30,
        )
        created = api.post("/lines", json={
            "name": "ct", "domain": "ims.invalid", "proxy": f"{carrier_host}:{carrier_port}",
            "account": "1001", "password": "linepw",
        })  # fmt: skip
        assert created.status_code == 201, created.text
        line = created.json()
        assert "password" not in line and line["has_password"] is True
        failed = _wait(lambda: (s := api.get(f"/lines/{line['id']}").json()["status"])["state"]
                       == "failed" and s)  # fmt: skip
        assert failed["last_status"] == 403
        assert failed["next_attempt"] > time.time() + 20  # backoff: no hammering

        report = api.post(f"/lines/{line['id']}/test", json={}).json()
        assert report["accepted"]["username"] == "1001@ims.invalid", report
        assert "auth_id_with_domain on" in report["summary"]

        changed = api.patch(f"/lines/{line['id']}", json={"auth_id_with_domain": True})
        assert changed.status_code == 200, changed.text
        ok = _wait(lambda: (s := api.get(f"/lines/{line['id']}").json()["status"])["state"]
                   == "registered" and s)  # fmt: skip
        assert ok["service_route"] == ["<sip:scscf.ims.invalid;lr>"]
        assert ok["registered_until"] > time.time()
        # Refresh before the granted 10 s run out (at half-time).
        first = ok["last_attempt"]
        _wait(lambda: api.get(f"/lines/{line['id']}").json()["status"]["last_attempt"] > first,
              timeout=9)  # fmt: skip
        listed = api.get("/lines").json()
        assert listed["total"] == 1 and "password" not in listed["lines"][0]
    finally:
        server.stop()
        carrier.kill()
        carrier.wait()
    messages = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*messages.log"))
    assert "REGISTER sip:ims.invalid SIP/2.0" in messages
    assert 'username="1001"' in messages and 'username="1001@ims.invalid"' in messages
    assert "Expires: 0" in messages  # un-REGISTER at shutdown
