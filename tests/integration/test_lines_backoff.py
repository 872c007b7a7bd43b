"""Registration backoff seen from the carrier (issue 5): a registrar answering 403 must not be
hammered. With ``backoff_base = 500ms`` and ``backoff_cap = 2s`` the tries come at 0, 0.5,
1.5, 3.5, 5.5 s...: in a 5 s window the carrier sees at most 4 REGISTERs (one a second
would be 5), and `/lines` says when the next one comes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.integration.calltools import other_host
from tests.integration.peertools import Peer
from tests.integration.server import make_server


def test_403_backoff_schedule_at_the_carrier(tmp_path: Path) -> None:
    server = make_server(
        tmp_path,
        extra_config='\n[guard]\nenabled = false\n[lines]\nbackoff_base = "500ms"\n'
        'backoff_cap = "2s"\n',
    )  # fmt: skip
    carrier = Peer(other_host(server.host))
    carrier.register_status = 403
    server.start()
    try:
        api = httpx.Client(base_url=server.api_url, timeout=10,
                           headers={"Authorization": f"Bearer {server.admin_token()}"})  # fmt: skip
        made = api.post("/lines", json={
            "name": "banned", "domain": "carrier.example", "account": "5550100",
            "password": "pw", "proxy": f"{carrier.host}:{carrier.port}",
        })  # fmt: skip
        assert made.status_code == 201, made.text
        started = time.monotonic()
        time.sleep(5.0 - (time.monotonic() - started))
        count = carrier.count("REGISTER")
        status = api.get(f"/lines/{made.json()['id']}").json()["status"]
        assert 3 <= count <= 4, count  # 0, 0.5, 1.5, 3.5 s (2 s cap: then every 2 s)
        assert status["state"] == "failed" and status["last_status"] == 403, status
        assert status["failures"] == count
        assert status["next_attempt"] > time.time()
    finally:
        server.stop()
        carrier.close()
