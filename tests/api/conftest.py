"""Fixtures: a real SQLite store, fake SIP parts, the API app and an in-process HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from sipbox.api import create_api, hash_token
from sipbox.storage import open_store
from sipbox.storage.sql import SqlStore
from tests.api.fakes import FakeDirectory, FakeRegistrar, FakeServer

ADMIN_TOKEN = "sbx_test-admin-token"
READER_TOKEN = "sbx_test-read-only-token"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = open_store(str(tmp_path / "sipbox.db"))
    await store.migrate()
    await store.create_api_token("test admin", hash_token(ADMIN_TOKEN), "admin")
    await store.create_api_token("test reader", hash_token(READER_TOKEN), "read-only")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def registrar() -> FakeRegistrar:
    return FakeRegistrar()


@pytest.fixture
def directory(store: SqlStore) -> FakeDirectory:
    return FakeDirectory(store)


@pytest.fixture
def server(store: SqlStore, directory: FakeDirectory, registrar: FakeRegistrar) -> FakeServer:
    return FakeServer(store=store, users=directory, registrar=registrar)


@pytest.fixture
def api(server: FakeServer) -> FastAPI:
    return create_api(server)


@pytest.fixture
async def anon(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.fixture
async def client(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with the admin token."""
    transport = httpx.ASGITransport(app=api)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", headers=headers
    ) as client:
        yield client


@pytest.fixture
async def reader(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a read-only token."""
    transport = httpx.ASGITransport(app=api)
    headers = {"Authorization": f"Bearer {READER_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", headers=headers
    ) as client:
        yield client
