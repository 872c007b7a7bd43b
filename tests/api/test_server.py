"""`start_api`: a real uvicorn listener inside the running loop, and a clean stop."""

from __future__ import annotations

import socket

import httpx
import pytest

from sipbox.api import start_api
from sipbox.config import load_settings
from tests.api.conftest import ADMIN_TOKEN
from tests.api.fakes import FakeServer


async def test_start_serve_stop(server: FakeServer, loopback: str) -> None:
    settings = load_settings(None, {"SIPBOX_API_LISTEN": f"{loopback}:0"})
    handle = await start_api(server, settings)
    try:
        assert handle.host == loopback and handle.port > 0
        async with httpx.AsyncClient(base_url=handle.url) as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            assert (await client.get("/status")).status_code == 401
            response = await client.get(
                "/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            assert response.status_code == 200
            assert response.json()["domain"] == "pbx.test"
    finally:
        await handle.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=handle.url) as client:
            await client.get("/health")
    await handle.stop()  # idempotent


async def test_port_in_use_is_an_oserror(server: FakeServer, loopback: str) -> None:
    with socket.socket() as taken:
        taken.bind((loopback, 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(None, {"SIPBOX_API_LISTEN": f"{loopback}:{port}"})
        with pytest.raises(OSError, match=f"{loopback}:{port}"):
            await start_api(server, settings)
