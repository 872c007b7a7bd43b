"""Bearer tokens, roles, the public paths, and the first-start admin token."""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from sipbox.api import PUBLIC_PATHS, ensure_admin_token, hash_token
from sipbox.api.auth import TokenCache, is_page, is_public
from sipbox.api.factory import iter_routes
from sipbox.storage.sql import SqlStore
from tests.api.conftest import ADMIN_TOKEN, READER_TOKEN


def _protected(api: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route outside the public list."""
    return [
        (method, info.path)
        for info in iter_routes(api)
        if not is_public(info.path)
        for method in sorted(info.methods - {"HEAD"})
    ]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1001", path)


def test_every_public_path_exists(api: FastAPI) -> None:
    paths = {info.path for info in iter_routes(api)}
    assert paths >= PUBLIC_PATHS


async def test_every_non_public_route_refuses_without_a_token(
    api: FastAPI, anon: httpx.AsyncClient
) -> None:
    protected = _protected(api)
    for method, path in protected:
        response = await anon.request(method, _concrete(path), json={})
        if is_page(path) and method == "GET":  # a browser is sent to the login page instead
            assert response.status_code == 303, (method, path, response.text)
            assert response.headers["location"].startswith("/login?next=/"), path
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]
    assert len(protected) >= 9  # users x6, registrations x2, status


async def test_every_non_public_route_refuses_a_wrong_token(
    api: FastAPI, anon: httpx.AsyncClient
) -> None:
    for method, path in _protected(api):
        if is_page(path) and method == "GET":
            continue  # pages are for browsers; tokens are for scripts (covered above)
        response = await anon.request(
            method, _concrete(path), headers={"Authorization": "Bearer sbx_wrong"}
        )
        assert response.status_code == 401, (method, path)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
async def test_public_paths_need_no_token(anon: httpx.AsyncClient, path: str) -> None:
    response = await anon.get(path)
    assert response.status_code == 200, path


async def test_unknown_path_needs_a_token_too(anon: httpx.AsyncClient) -> None:
    """Secure by default: nothing outside the public list is reachable anonymously."""
    assert (await anon.get("/admin/secret")).status_code == 401
    assert (await anon.get("/health/")).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {ADMIN_TOKEN}",
        "Bearer",
        "Bearer ",
        ADMIN_TOKEN,
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN.upper()}",
    ],
)
async def test_malformed_or_wrong_authorization(anon: httpx.AsyncClient, header: str) -> None:
    response = await anon.get("/users", headers={"Authorization": header})
    assert response.status_code == 401


async def test_scheme_is_case_insensitive(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/users", headers={"Authorization": f"bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200


async def test_read_only_token_may_read(reader: httpx.AsyncClient) -> None:
    assert (await reader.get("/users")).status_code == 200
    assert (await reader.get("/status")).status_code == 200
    assert (await reader.get("/registrations")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", {"number": "1001", "password": "x"}),
        ("POST", "/users/bulk", {"users": [{"number": "1001"}]}),
        ("PATCH", "/users/1001", {"display_name": "x"}),
        ("DELETE", "/users/1001", None),
        ("DELETE", "/registrations/1001", None),
    ],
)
async def test_read_only_token_may_not_write(
    reader: httpx.AsyncClient,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
) -> None:
    await client.post("/users", json={"number": "1001", "password": "secret"})
    response = await reader.request(method, path, json=body)
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]
    assert (await client.get("/users/1001")).json()["display_name"] == ""


async def test_token_use_is_recorded(client: httpx.AsyncClient, store: SqlStore) -> None:
    await client.get("/users")
    (admin,) = [t for t in await store.list_api_tokens() if t.name == "test admin"]
    assert admin.last_used_at is not None


async def test_valid_tokens_are_cached(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    real = store.find_api_token

    async def counting(digest: str):  # type: ignore[no-untyped-def]
        lookups.append(digest)
        return await real(digest)

    monkeypatch.setattr(store, "find_api_token", counting)
    now = [100.0]
    cache = TokenCache(store, ttl=5.0, clock=lambda: now[0])
    for _ in range(10):
        principal = await cache.lookup(ADMIN_TOKEN)
        assert principal is not None and principal.role == "admin"
    assert len(lookups) == 1
    now[0] += 5.1
    await cache.lookup(ADMIN_TOKEN)
    assert len(lookups) == 2
    # Unknown tokens are never cached (each costs a look-up, none fills memory).
    assert await cache.lookup("nope") is None
    assert await cache.lookup("nope") is None
    assert len(lookups) == 4


async def test_revocation_applies_after_invalidate(store: SqlStore) -> None:
    cache = TokenCache(store, ttl=60.0)
    principal = await cache.lookup(READER_TOKEN)
    assert principal is not None and principal.role == "read-only"
    await store.revoke_api_token(principal.token_id)
    assert await cache.lookup(READER_TOKEN) is not None  # still cached
    cache.invalidate()
    assert await cache.lookup(READER_TOKEN) is None


def test_hash_token_is_sha256() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


async def test_ensure_admin_token_first_start(tmp_path: Path) -> None:
    from sipbox.storage import open_store

    store = open_store(str(tmp_path / "db.sqlite"))
    await store.migrate()
    try:
        state = tmp_path / "var"
        token = await ensure_admin_token(store, state)
        assert token is not None and len(token) > 32
        path = state / "admin-token"
        assert path.read_text().strip() == token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        (record,) = await store.list_api_tokens()
        assert record.role == "admin"
        assert record.token_hash == hash_token(token)
        assert token not in repr(record)
        assert await store.find_api_token(hash_token(token)) is not None
        # Second start: nothing new, file untouched.
        assert await ensure_admin_token(store, state) is None
        assert path.read_text().strip() == token
        # Every admin token revoked: the next start creates a fresh one (no lock-out).
        await store.revoke_api_token(record.id)
        again = await ensure_admin_token(store, state)
        assert again is not None and again != token
        assert path.read_text().strip() == again
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        await store.close()


async def test_ensure_admin_token_ignores_read_only_tokens(store: SqlStore, tmp_path: Path) -> None:
    # The fixture store has an admin token already.
    assert await ensure_admin_token(store, tmp_path) is None
    assert not (tmp_path / "admin-token").exists()
