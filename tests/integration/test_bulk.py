"""``sipbox export`` / ``sipbox import`` against a real server (issue 7, "Bulk"): a round trip
restores working accounts (HA1s), an invalid file changes nothing and names its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.server import RunningServer, make_server


@pytest.fixture
def server(tmp_path: Path) -> RunningServer:
    server = make_server(tmp_path).start()
    yield server
    server.stop()


def _cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sipbox", *args, "--api-url", server.api_url,
         "--token", server.admin_token()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _api(server: RunningServer) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server.admin_token()}"}
    return httpx.Client(base_url=server.api_url, headers=headers, timeout=10)


def test_round_trip_and_all_or_nothing(server: RunningServer, tmp_path: Path) -> None:
    with _api(server) as api:
        assert api.post("/users", json={"number": "1001", "password": "pw-1001",
                                        "ip_auth": ["10.0.0.5"]}).status_code == 201  # fmt: skip
        assert api.post("/users", json={"number": "1002"}).status_code == 201
        group = {"number": "600", "name": "Sales", "members": ["1001", "1002"]}
        assert api.post("/groups", json=group).status_code == 201
        assert api.post("/whitelist", json={"network": "192.0.2.0/24", "note": "office"}
                        ).status_code in (200, 201)  # fmt: skip
        ha1 = None
    exported = _cli(server, "export")
    assert exported.returncode == 0, exported.stderr
    text = exported.stdout
    assert "ha1_md5:" in text and "pw-1001" not in text
    assert "passwords are write-only" in text.lower() or "NOT in this file" in text
    ha1 = next(line for line in text.splitlines() if "ha1_md5" in line)
    (tmp_path / "pbx.yaml").write_text(text)

    # Delete everything, import the file: users (same HA1), group and list come back.
    with _api(server) as api:
        api.delete("/groups/600")
        api.delete("/users/1001")
        api.delete("/users/1002")
    done = _cli(server, "import", str(tmp_path / "pbx.yaml"))
    assert done.returncode == 0, done.stderr + done.stdout
    assert "2 users" in done.stdout and "1 groups" in done.stdout
    again = _cli(server, "export").stdout
    assert ha1 in again
    with _api(server) as api:
        group = api.get("/groups/600").json()
        assert [m["number"] for m in group["members"]] == ["1001", "1002"]
        assert api.get("/users/1001").json()["has_password"] is True

    # A bad entry late in the file: 422 naming its line, and nothing of the file applied.
    bad = text.replace("users:\n", "users:\n- number: '1003'\n  display_name: New\n", 1)
    bad += "blacklist:\n- network: 10.0.0.300\n"
    bad_line = len(bad.splitlines())
    with _api(server) as api:
        answer = api.post("/import", content=bad, headers={"Content-Type": "application/yaml"})
        assert answer.status_code == 422, answer.text
        error = answer.json()
        assert error["error"].startswith(f"line {bad_line}:"), error
        assert error["field"] == "blacklist[0].network"
        assert api.get("/users/1003").status_code == 404
    (tmp_path / "bad.yaml").write_text("users:\n  - number: '1004'\n    nat: sometimes\n")
    failed = _cli(server, "import", str(tmp_path / "bad.yaml"))
    assert failed.returncode != 0 and "line 3" in failed.stderr + failed.stdout


FULL = """\
users:
  - number: "1010"
    password: pw-1010
groups:
  - number: "610"
    members: ["1010"]
lines:
  - name: ims
    domain: ims.example.cn
    proxy: 127.0.0.1:9
    account: "+8675500000001"
    password: pw-line
    auth_id_with_domain: true
trunks:
  - name: office
    addresses: ["127.0.0.1:9"]
prefixes:
  - pattern: "9"
    strip: 1
    targets: ["line:ims"]
inbound_routes:
  - source: ims
    did: "+8675500000001"
    destination: "1010"
whitelist:
  - network: 192.0.2.77
"""


def test_import_is_one_transaction_with_every_section(server: RunningServer) -> None:
    """The last entry fails only in the database (a trigger refuses it): nothing of the file
    is written, in any section; the same file without it is applied, and the live services
    (lines, guard lists) show it at once."""
    import sqlite3

    db = sqlite3.connect(server.state_dir / "sipbox.db", timeout=10)
    db.execute(
        "CREATE TRIGGER refuse_net BEFORE INSERT ON address_lists "
        "WHEN NEW.network = '203.0.113.99/32' BEGIN SELECT RAISE(ABORT, 'refused by db'); END"
    )
    db.commit()
    db.close()
    bad = FULL + "blacklist:\n  - network: 203.0.113.99\n"
    with _api(server) as api:
        answer = api.post("/import", content=bad, headers={"Content-Type": "application/yaml"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "blacklist[0]"
        assert answer.json()["error"].startswith(f"line {len(bad.splitlines())}:")
        assert api.get("/users/1010").status_code == 404
        assert api.get("/groups/610").status_code == 404
        for path, key in (("/lines", "lines"), ("/trunks", "trunks"), ("/prefixes", "prefixes"),
                          ("/inbound-routes", "routes")):  # fmt: skip
            assert [x for x in api.get(path).json()[key] if not x.get("implicit")] == [], path
        assert api.get("/whitelist").json()["entries"] == []

        answer = api.post("/import", content=FULL, headers={"Content-Type": "application/yaml"})
        assert answer.status_code == 200, answer.text
        line = api.get("/lines").json()["lines"][0]
        assert line["name"] == "ims" and line["has_password"] and "password" not in line
        assert line["status"]["state"] in ("registering", "failed", "registered")
        assert [e["network"] for e in api.get("/whitelist").json()["entries"]] == ["192.0.2.77/32"]
        assert api.get("/groups/610").json()["members"][0]["number"] == "1010"
