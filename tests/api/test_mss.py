"""``[api] mss_compat``: the miniSipServer-style read-only user list, off by default."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx

from sipbox.api import create_api
from sipbox.api.web.accounts import hash_password
from sipbox.storage import NewUser
from tests.api.fakes import FakeServer


async def test_off_by_default_and_keyed_by_a_web_admin_password(server: FakeServer) -> None:
    await server.store.create_web_admin("admin", hash_password("s3cret-admin"))
    await server.store.create_user(NewUser(number="1001", display_name="Alice"))
    off = httpx.ASGITransport(app=create_api(server))
    async with httpx.AsyncClient(transport=off, base_url="http://t") as client:
        assert (await client.get("/openapi/localuser?syskey=s3cret-admin")).status_code == 401
    on = httpx.ASGITransport(app=create_api(server, mss_compat=True))
    async with httpx.AsyncClient(transport=on, base_url="http://t") as client:
        assert (await client.get("/openapi/localuser?syskey=wrong")).status_code == 401
        plain = await client.get("/openapi/localuser?syskey=s3cret-admin")
        assert plain.status_code == 200, plain.text
        query = quote(json.dumps({"syskey": "s3cret-admin"}))
        mss = await client.get(f"/openapi/localuser?{query}")
        assert mss.json() == plain.json()
        [user] = plain.json()["localuser"]
        assert user["usrNumber"] == "1001" and user["usrName"] == "Alice"
        assert "password" not in json.dumps(plain.json()).lower()
        assert (await client.post("/openapi/localuser?syskey=s3cret-admin")).status_code == 405
