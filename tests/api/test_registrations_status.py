"""``/registrations`` and ``/status``."""

from __future__ import annotations

import time

import httpx

from tests.api.fakes import FakeDirectory, FakeRegistrar, FakeServer


async def test_list_registrations(client: httpx.AsyncClient, registrar: FakeRegistrar) -> None:
    registrar.add("1002", "sip:1002@10.0.0.2:5060", user_agent=None)
    registrar.add(
        "1001",
        "sip:1001@192.168.1.20:5060",
        source_transport="tcp",
        source_host="2001:db8::7",
        source_port=41000,
        expires_at=time.time() + 300,
    )
    body = (await client.get("/registrations")).json()
    assert body["total"] == 2
    first, second = body["registrations"]
    assert first["number"] == "1001" and second["number"] == "1002"
    assert first["aor"] == "sip:1001@pbx.test"
    assert first["source"] == "tcp:[2001:db8::7]:41000"
    assert (first["source_host"], first["source_port"]) == ("2001:db8::7", 41000)
    assert 295 <= first["expires_in"] <= 300
    assert first["user_agent"] == "FakePhone/1.0" and second["user_agent"] is None
    only = (await client.get("/registrations", params={"user": "1002"})).json()
    assert [r["number"] for r in only["registrations"]] == ["1002"]
    none = (await client.get("/registrations", params={"user": "nobody"})).json()
    assert none == {"total": 0, "registrations": []}


async def test_delete_all_registrations_of_a_user(
    client: httpx.AsyncClient, registrar: FakeRegistrar
) -> None:
    registrar.add("1001", "sip:1001@a")
    registrar.add("1001", "sip:1001@b")
    response = await client.delete("/registrations/1001")
    assert response.status_code == 200
    assert response.json() == {"removed": 2}
    assert registrar.count() == 0


async def test_delete_one_contact(client: httpx.AsyncClient, registrar: FakeRegistrar) -> None:
    registrar.add("1001", "sip:1001@a")
    registrar.add("1001", "sip:1001@b")
    response = await client.delete("/registrations/1001", params={"contact": "sip:1001@b"})
    assert response.json() == {"removed": 1}
    assert [b.contact for b in registrar.bindings()] == ["sip:1001@a"]
    missing = await client.delete("/registrations/1001", params={"contact": "sip:1001@zzz"})
    assert missing.status_code == 404
    assert missing.json()["field"] == "contact"


async def test_delete_registrations_of_known_user_without_any(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/users", json={"number": "1001"})
    response = await client.delete("/registrations/1001")
    assert response.status_code == 200 and response.json() == {"removed": 0}


async def test_delete_registrations_of_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete("/registrations/9999")
    assert response.status_code == 404
    assert response.json()["field"] == "number"


async def test_registrations_without_registrar_is_503(
    client: httpx.AsyncClient, server: FakeServer
) -> None:
    server.registrar = None
    assert (await client.get("/registrations")).status_code == 503
    assert (await client.delete("/registrations/1001")).status_code == 503


async def test_status(
    client: httpx.AsyncClient, registrar: FakeRegistrar, directory: FakeDirectory
) -> None:
    for number in ("1001", "1002", "1003"):
        await client.post("/users", json={"number": number})
    registrar.add("1001", "sip:1001@a")
    registrar.add("1001", "sip:1001@b")
    registrar.ip_reachable.add("1003")
    body = (await client.get("/status")).json()
    assert body["version"]
    assert body["domain"] == "pbx.test"
    assert 41 <= body["uptime_seconds"] < 100
    assert body["counts"] == {
        "users": 3,
        "registrations": 2,
        "reachable": 2,
        "calls": None,
        "bans": None,
    }
    assert body["listeners"] == [
        {"transport": "udp", "host": "127.0.0.1", "port": 5060},
        {"transport": "tcp", "host": "::1", "port": 5060},
    ]
    assert body["sip_counters"] == {"received": 10, "sent": 12, "discarded": 1}


async def test_status_with_nothing_but_a_store(
    client: httpx.AsyncClient, server: FakeServer
) -> None:
    server.registrar = None
    server.users = None
    server.transport = None
    server.endpoint = None
    body = (await client.get("/status")).json()
    assert body["counts"] == {
        "users": 0,
        "registrations": None,
        "reachable": None,
        "calls": None,
        "bans": None,
    }
    assert body["listeners"] == [] and body["sip_counters"] is None


async def test_status_counters_from_a_mapping(
    client: httpx.AsyncClient, server: FakeServer
) -> None:
    class Endpoint:
        counters = {"retransmissions": 3, "label": "x", "flag": True}

    server.endpoint = Endpoint()  # type: ignore[assignment]
    body = (await client.get("/status")).json()
    assert body["sip_counters"] == {"retransmissions": 3}
