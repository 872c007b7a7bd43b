"""``/admins`` and the Web admins page (issue 7): list, add, reset a password, delete - never
the last account; sessions of a reset or deleted account end, the caller's own does not."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from sipbox.api.web import hash_password
from sipbox.api.web.accounts import verify_password
from sipbox.storage.sql import SqlStore
from tests.api.test_web_auth import PASSWORD, _client, csrf_of, login


async def test_admin_accounts_over_the_api(
    client: httpx.AsyncClient, reader: httpx.AsyncClient, store: SqlStore, api: FastAPI
) -> None:
    await store.create_web_admin("admin", hash_password(PASSWORD))
    listed = (await client.get("/admins")).json()
    assert [a["username"] for a in listed["admins"]] == ["admin"]
    assert "password" not in listed["admins"][0] and "password_hash" not in listed["admins"][0]

    chosen = await client.post("/admins", json={"username": "alice", "password": "a long one"})
    assert chosen.status_code == 201, chosen.text
    assert chosen.json()["password"] is None  # a password the client chose is never echoed
    made = await client.post("/admins", json={"username": "bob"})
    generated = made.json()["password"]
    assert made.status_code == 201 and len(generated) >= 16
    bob = await store.get_web_admin("bob")
    assert bob is not None and await verify_password(bob.password_hash, generated)
    assert (await client.post("/admins", json={"username": "bob"})).status_code == 409
    assert (await client.post("/admins", json={"username": "x y"})).status_code == 422
    assert (await reader.post("/admins", json={"username": "eve"})).status_code == 403

    # a reset ends the account's sessions; the new password works
    bob_session, _ = api.state.services.sessions.create("bob")
    reset = await client.post("/admins/bob/password", json={})
    assert reset.status_code == 200 and reset.json()["sessions_ended"] == 1
    assert api.state.services.sessions.lookup(bob_session) is None
    bob = await store.get_web_admin("bob")
    assert bob is not None and await verify_password(bob.password_hash, reset.json()["password"])
    assert (await client.post("/admins/nobody/password", json={})).status_code == 404

    # delete, but never the last account
    for name in ("alice", "bob"):
        assert (await client.delete(f"/admins/{name}")).status_code == 204
    last = await client.delete("/admins/admin")
    assert last.status_code == 409 and "last" in last.json()["error"]
    assert [a.username for a in await store.list_web_admins()] == ["admin"]
    assert (await client.delete("/admins/nobody")).status_code == 404


async def test_changing_your_own_password_keeps_your_session(api: FastAPI, store: SqlStore) -> None:
    await store.create_web_admin("admin", hash_password(PASSWORD))
    async with _client(api) as browser:
        assert (await login(browser, "admin", PASSWORD)).status_code == 303
        page = await browser.get("/ui/admins")
        assert page.status_code == 200 and 'data-admin="admin"' in page.text
        assert "the last account cannot be deleted" in page.text  # no Delete button for it
        csrf = await csrf_of(browser, "/ui/admins")
        changed = await browser.post(
            "/admins/admin/password", json={"password": "new passphrase"},
            headers={"X-CSRF-Token": csrf},
        )  # fmt: skip
        assert changed.status_code == 200 and changed.json()["sessions_ended"] == 0
        assert (await browser.get("/ui/admins")).status_code == 200  # still logged in
    async with _client(api, source="192.0.2.51") as other:
        assert (await login(other, "admin", "new passphrase")).status_code == 303
