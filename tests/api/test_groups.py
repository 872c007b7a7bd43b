"""``/groups`` CRUD + members, and users' forwarding fields (issue 4), against a real SQLite
store; every change reaches the in-memory group cache the SIP path reads."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from sipbox.pbx.calls.groups import GroupDirectory
from sipbox.storage.sql import SqlStore
from tests.api.fakes import FakeServer


@pytest.fixture
def cache(server: FakeServer, store: SqlStore) -> GroupDirectory:
    groups = GroupDirectory(store)
    server.calls = SimpleNamespace(groups=groups)  # type: ignore[attr-defined]
    return groups


async def users(client: httpx.AsyncClient, *numbers: str) -> None:
    for number in numbers:
        r = await client.post("/users", json={"number": number, "password": "pw"})
        assert r.status_code == 201, r.text


async def test_group_crud_reaches_the_cache(client: httpx.AsyncClient, cache: GroupDirectory):
    await users(client, "1001", "1002", "1003")
    r = await client.post(
        "/groups",
        json={
            "number": "600",
            "name": "Sales",
            "members": ["1001", {"number": "1002", "timeout": 15}],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == "/groups/600"
    assert body["strategy"] == "ring-all" and body["completed_elsewhere"] and body["skip_busy"]
    assert body["members"] == [
        {"number": "1001", "timeout": None},
        {"number": "1002", "timeout": 15},
    ]
    cached = cache.get("600")
    assert cached is not None and [m.number for m in cached.members] == ["1001", "1002"]

    r = await client.patch(
        "/groups/600",
        json={"strategy": "circular", "ring_timeout": 12, "skip_busy": False,
              "completed_elsewhere": False, "members": ["1003", "1001"]},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["strategy"], body["ring_timeout"], body["skip_busy"]) == ("circular", 12, False)
    assert [m["number"] for m in body["members"]] == ["1003", "1001"]
    assert cache.get("600").strategy == "circular"  # type: ignore[union-attr]
    assert (await client.patch("/groups/600", json={"name": "S2"})).json()["skip_busy"] is False

    r = await client.post("/groups/600/members", json={"number": "1002", "position": 0})
    assert [m["number"] for m in r.json()["members"]] == ["1002", "1003", "1001"]
    r = await client.delete("/groups/600/members/1003")
    assert [m["number"] for m in r.json()["members"]] == ["1002", "1001"]
    assert (await client.delete("/groups/600/members/1003")).status_code == 404

    cache.last_answered["600"] = "1002"
    listed = (await client.get("/groups")).json()
    assert listed["total"] == 1 and listed["groups"][0]["last_answered"] == "1002"
    assert (await client.get("/groups/600")).json()["name"] == "S2"

    r = await client.patch("/groups/600", json={"number": "610"})
    assert r.json()["number"] == "610" and cache.get("600") is None and cache.get("610")
    assert (await client.delete("/groups/610")).status_code == 204
    assert cache.get("610") is None
    assert (await client.get("/groups/610")).status_code == 404


async def test_group_validation(client: httpx.AsyncClient, cache: GroupDirectory):
    await users(client, "1001", "1002")

    async def refused(method: str, path: str, json: object, status: int = 422) -> dict:
        r = await client.request(method, path, json=json)
        assert r.status_code == status, r.text
        return r.json()

    assert (await refused("POST", "/groups", {"number": "600", "members": ["1001", "9999"]}))[
        "field"
    ] == "members[1]"
    assert (await refused("POST", "/groups", {"number": "600", "members": ["1001", "1001"]}))[
        "field"
    ] == "members[1]"
    await refused("POST", "/groups", {"number": "1001"}, 409)  # a user's number
    await refused("POST", "/groups", {"number": "600", "strategy": "random"})
    await refused("POST", "/groups", {"number": "6 0"})
    body = await refused("POST", "/groups", {"number": "600", "no_answer_destination": "777"})
    assert body["field"] == "no_answer_destination"
    assert (await client.post("/groups", json={"number": "600"})).status_code == 201
    await refused("POST", "/groups", {"number": "600"}, 409)
    await refused("PATCH", "/groups/600", {"no_answer_destination": "600"})
    await refused("PATCH", "/groups/600", {"strategy": None})
    await refused("PATCH", "/groups/601", {"name": "x"}, 404)
    await refused("POST", "/groups/600/members", {"number": "1001", "timeout": 0})
    ok = await client.patch("/groups/600", json={"no_answer_destination": "1002"})
    assert ok.json()["no_answer_destination"] == "1002"


async def test_groups_without_a_running_calls_service(client: httpx.AsyncClient):
    await users(client, "1001")
    r = await client.post("/groups", json={"number": "600", "members": ["1001"]})
    assert r.status_code == 201 and r.json()["last_answered"] is None


async def test_read_only_token_cannot_change_groups(reader: httpx.AsyncClient):
    assert (await reader.get("/groups")).status_code == 200
    assert (await reader.post("/groups", json={"number": "600"})).status_code == 403


async def test_user_forwarding_fields(client: httpx.AsyncClient, directory) -> None:
    r = await client.post(
        "/users", json={"number": "1001", "password": "pw", "forwarding": {"busy": "1002"}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["forwarding"] == {
        "unconditional": None, "busy": "1002", "no_answer": None, "unreachable": None,
        "dnd": False,
    }  # fmt: skip
    r = await client.patch("/users/1001", json={"forwarding": {"no_answer": "1003", "dnd": True}})
    assert r.json()["forwarding"]["busy"] == "1002"  # untouched: only the keys sent change
    assert r.json()["forwarding"]["no_answer"] == "1003" and r.json()["forwarding"]["dnd"]
    r = await client.patch("/users/1001", json={"password": "new"})  # keeps forwarding
    assert r.json()["forwarding"]["busy"] == "1002"
    stored = await directory.store.get_user_by_number("1001")
    assert stored.settings["forwarding"]["no_answer"] == "1003" and "ha1b_md5" in stored.settings
    r = await client.patch("/users/1001", json={"forwarding": {"busy": None}})
    assert r.json()["forwarding"]["busy"] is None
    r = await client.patch("/users/1001", json={"forwarding": None})
    assert not any(r.json()["forwarding"].values())
    for bad, field in (
        ({"busy": "1001"}, "forwarding.busy"),
        ({"busy": "*90"}, "forwarding.busy"),
        ({"busy": "a b"}, "forwarding.busy"),
    ):
        r = await client.patch("/users/1001", json={"forwarding": bad})
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    r = await client.patch("/users/1001", json={"forwarding": {"sometimes": "1002"}})
    assert r.status_code == 422
