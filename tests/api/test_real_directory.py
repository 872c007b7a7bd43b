"""The API with the real `UserDirectory` (the SIP side's cache): changes are visible at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sipbox.api import create_api
from sipbox.api.context import DirectoryView
from sipbox.pbx.users import UserDirectory
from sipbox.storage.sql import SqlStore
from tests.api.conftest import ADMIN_TOKEN
from tests.api.fakes import FakeRegistrar, FakeServer


@pytest.fixture
async def real(store: SqlStore) -> AsyncIterator[tuple[httpx.AsyncClient, UserDirectory]]:
    directory = UserDirectory(store)
    await directory.load()
    as_view: DirectoryView = directory  # the real class satisfies the API's Protocol
    context = FakeServer(store=store, users=as_view, registrar=FakeRegistrar())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_api(context))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", headers=headers
    ) as client:
        yield client, directory


async def test_changes_reach_the_directory_at_once(
    real: tuple[httpx.AsyncClient, UserDirectory],
) -> None:
    client, directory = real
    await client.post("/users", json={"number": "1001", "password": "x", "ip_auth": ["10.9.9.9"]})
    user = directory.get("1001")
    assert user is not None and user.ip_auth == ("10.9.9.9/32",)
    await client.patch("/users/1001", json={"enabled": False})
    user = directory.get("1001")
    assert user is not None and not user.enabled
    response = await client.post(
        "/users/bulk", json={"users": [{"number": str(n)} for n in range(2000, 2050)]}
    )
    assert response.status_code == 201
    assert directory.get("2049") is not None
    await client.delete("/users/1001")
    assert directory.get("1001") is None
