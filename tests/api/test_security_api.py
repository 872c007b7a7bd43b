"""``/bans``, ``/whitelist``, ``/blacklist``, ``/security-events`` against a real SecurityService
(real guard, real SQLite store), including every refusal path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sipbox.config import GuardSettings
from sipbox.pbx.security import SecurityService
from sipbox.storage.sql import SqlStore
from tests.api.fakes import FakeServer


@pytest.fixture
async def security(server: FakeServer, store: SqlStore) -> AsyncIterator[SecurityService]:
    service = SecurityService(
        GuardSettings(whitelist=("192.0.2.0/24",), blacklist=("198.18.0.0/15",)), store
    )
    await service.load()
    service.start()
    server.security = service  # type: ignore[attr-defined]
    yield service
    await service.stop()


async def test_ban_list_add_remove(client: httpx.AsyncClient, security: SecurityService) -> None:
    assert (await client.get("/bans")).json() == {"total": 0, "bans": []}
    r = await client.post("/bans", json={"source": "203.0.113.7", "duration": "1h", "reason": "x"})
    assert r.status_code == 201, r.text
    ban = r.json()
    assert (ban["source"], ban["reason"], ban["detail"], ban["offence"]) == (
        "203.0.113.7",
        "manual",
        "x",
        1,
    )
    assert ban["until"] - ban["since"] == 3600 and 3590 <= ban["expires_in"] <= 3600
    assert not security.accept_source()("203.0.113.7")
    listed = (await client.get("/bans")).json()
    assert listed["total"] == 1
    assert set(listed["bans"][0]) >= {"source", "reason", "since", "until", "hit_count"}
    assert listed["bans"][0]["hit_count"] == 1  # the accept_source call above
    # IPv6: the /64 is banned; delete by query or by any address inside it.
    r = await client.post("/bans", json={"source": "2001:db8:5:6::1"})
    assert r.json()["source"] == "2001:db8:5:6::/64"
    assert r.json()["until"] - r.json()["since"] == 3 * 3600
    assert (await client.delete("/bans", params={"source": "2001:db8:5:6::/64"})).status_code == 200
    assert (await client.delete("/bans/203.0.113.7")).json() == {
        "source": "203.0.113.7",
        "unbanned": True,
    }
    assert (await client.get("/bans")).json()["total"] == 0
    r = await client.delete("/bans/203.0.113.7")
    assert r.status_code == 404 and r.json()["field"] == "source"
    await security.stop()  # drain the writer so every event is stored
    events = (await client.get("/security-events", params={"limit": 10})).json()
    assert [(e["kind"], e["source"]) for e in events["events"]] == [
        ("unban", "203.0.113.7"),
        ("unban", "2001:db8:5:6::/64"),
        ("ban", "2001:db8:5:6::/64"),
        ("ban", "203.0.113.7"),
    ]
    assert (await client.get("/security-events", params={"limit": 1})).json()["total"] == 1
    future = (await client.get("/security-events", params={"since": 4e9})).json()
    assert future["total"] == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"source": "127.0.0.1"}, "loopback"),
        ({"source": "::1"}, "loopback"),
        ({"source": "192.0.2.9"}, "whitelisted"),
        ({"source": "10.0.0.0/8"}, "blacklist"),
        ({"source": "not-an-ip"}, "not an IP address"),
        ({"source": "203.0.113.7", "duration": 0}, "greater than 0"),
        ({"source": "203.0.113.7", "duration": "soon"}, "duration"),
        ({"source": "203.0.113.7", "color": "red"}, "color"),
    ],
)
async def test_manual_ban_refusals(
    client: httpx.AsyncClient, security: SecurityService, body: dict, words: str
) -> None:
    r = await client.post("/bans", json=body)
    assert r.status_code == 422, r.text
    assert words in r.text
    assert security.active_bans() == []


async def test_lists(client: httpx.AsyncClient, security: SecurityService) -> None:
    white = (await client.get("/whitelist")).json()
    assert white["entries"] == [
        {"network": "192.0.2.0/24", "note": "", "origin": "config", "created_at": None}
    ]
    security.ban("203.0.113.7")
    r = await client.post("/whitelist", json={"network": "203.0.113.0/24", "note": "office"})
    assert r.status_code == 201 and r.json()["origin"] == "api"
    assert security.active_bans() == []  # the white-listed address was unbanned
    assert (await client.post("/whitelist", json={"network": "203.0.113.0/24"})).status_code == 409
    assert (await client.post("/whitelist", json={"network": "192.0.2.0/24"})).status_code == 409
    r = await client.post("/whitelist", json={"network": "nope"})
    assert r.status_code == 422 and "network" in r.text
    r = await client.post("/bans", json={"source": "203.0.113.50"})
    assert r.status_code == 422 and "whitelisted" in r.text
    # Black list: live at once; single addresses delete by path, networks by query.
    assert (await client.post("/blacklist", json={"network": "100.64.0.9"})).status_code == 201
    assert not security.accept_source()("100.64.0.9")
    assert (await client.delete("/blacklist/100.64.0.9")).status_code == 204
    assert security.accept_source()("100.64.0.9")
    r = await client.delete("/blacklist", params={"network": "198.18.0.0/15"})
    assert r.status_code == 409 and "configuration file" in r.text
    r = await client.delete("/blacklist", params={"network": "100.64.0.0/10"})
    assert r.status_code == 404
    r = await client.delete("/whitelist", params={"network": "203.0.113.0/24"})
    assert r.status_code == 204
    assert [e["origin"] for e in (await client.get("/whitelist")).json()["entries"]] == ["config"]


async def test_read_only_token_may_list_not_change(
    reader: httpx.AsyncClient, security: SecurityService
) -> None:
    assert (await reader.get("/bans")).status_code == 200
    assert (await reader.get("/blacklist")).status_code == 200
    assert (await reader.post("/bans", json={"source": "203.0.113.7"})).status_code == 403
    assert (await reader.delete("/bans/203.0.113.7")).status_code == 403


async def test_no_token_and_no_guard(anon: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    assert (await anon.get("/bans")).status_code == 401
    r = await client.get("/bans")  # no `security` on the server
    assert r.status_code == 503 and "guard" in r.text
