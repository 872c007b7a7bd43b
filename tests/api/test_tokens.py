"""``/tokens``: create (shown once), list, revoke (at once, despite the cache), roles."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from sipbox.storage.sql import SqlStore


def _with(api: FastAPI, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://api.test",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_create_list_revoke(client: httpx.AsyncClient, api: FastAPI, store: SqlStore) -> None:
    created = await client.post("/tokens", json={"name": "grafana"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["role"] == "read-only"  # the safe default
    assert body["token"].startswith("sbx_") and len(body["token"]) > 40
    assert created.headers["location"] == f"/tokens/{body['id']}"
    # Only the digest is stored.
    stored = {t.id: t for t in await store.list_api_tokens()}[body["id"]]
    assert stored.token_hash != body["token"] and body["token"] not in stored.token_hash

    listed = (await client.get("/tokens")).json()
    names = [t["name"] for t in listed["tokens"]]
    assert listed["total"] == len(names) and "grafana" in names
    assert all("token" not in t and "token_hash" not in t for t in listed["tokens"])

    async with _with(api, body["token"]) as grafana:
        assert (await grafana.get("/status")).status_code == 200  # cached now
        revoked = await client.delete(f"/tokens/{body['id']}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked"] is True
        assert (await grafana.get("/status")).status_code == 401  # at once, not after the TTL


async def test_roles(client: httpx.AsyncClient, api: FastAPI) -> None:
    admin = (await client.post("/tokens", json={"name": "ci", "role": "admin"})).json()
    reader = (await client.post("/tokens", json={"name": "ro", "role": "read-only"})).json()
    async with _with(api, admin["token"]) as ci:
        assert (
            await ci.post("/users", json={"number": "1001", "password": "x"})
        ).status_code == 201
        assert (await ci.post("/tokens", json={"name": "more"})).status_code == 201
    async with _with(api, reader["token"]) as ro:
        assert (await ro.get("/tokens")).status_code == 200
        assert (await ro.get("/users/1001")).status_code == 200
        assert (
            await ro.post("/tokens", json={"name": "escalate", "role": "admin"})
        ).status_code == 403
        assert (await ro.delete(f"/tokens/{admin['id']}")).status_code == 403
        assert (await ro.delete("/users/1001")).status_code == 403


async def test_errors(client: httpx.AsyncClient, reader: httpx.AsyncClient) -> None:
    missing = await client.delete("/tokens/99999")
    assert missing.status_code == 404
    bad_role = await client.post("/tokens", json={"name": "x", "role": "root"})
    assert bad_role.status_code == 422 and bad_role.json()["field"] == "role"
    empty = await client.post("/tokens", json={"name": ""})
    assert empty.status_code == 422 and empty.json()["field"] == "name"
    extra = await client.post("/tokens", json={"name": "x", "secret": "y"})
    assert extra.status_code == 422
