"""Contract: API tokens and the key/value settings table."""

from __future__ import annotations

import hashlib

import pytest

from sipbox.storage import AlreadyExists, InvalidValue, NotFound
from sipbox.storage.sql import SqlStore
from tests.storage.conftest import FakeClock


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_token_lifecycle(store: SqlStore, clock: FakeClock) -> None:
    admin = await store.create_api_token("ci", digest("secret-1"), "admin")
    reader = await store.create_api_token("grafana", digest("secret-2"), "read-only")
    assert (admin.name, admin.role, admin.revoked, admin.last_used_at) == (
        "ci",
        "admin",
        False,
        None,
    )
    assert admin.created_at == clock.now
    assert await store.find_api_token(digest("secret-1")) == admin
    assert await store.find_api_token(digest("unknown")) is None

    await store.touch_api_token(admin.id, clock.now + 5)
    touched = await store.find_api_token(digest("secret-1"))
    assert touched is not None and touched.last_used_at == clock.now + 5
    await store.touch_api_token(9999, clock.now)  # ignored

    await store.revoke_api_token(admin.id)
    assert await store.find_api_token(digest("secret-1")) is None
    listed = await store.list_api_tokens()
    assert [(t.id, t.revoked) for t in listed] == [(admin.id, True), (reader.id, False)]
    with pytest.raises(NotFound, match="9999"):
        await store.revoke_api_token(9999)


async def test_token_errors(store: SqlStore) -> None:
    await store.create_api_token("a", digest("x"), "admin")
    with pytest.raises(AlreadyExists):
        await store.create_api_token("b", digest("x"), "read-only")
    with pytest.raises(InvalidValue):
        await store.create_api_token("c", digest("y"), "root")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        await store.create_api_token("d", "secret-in-clear", "admin")


async def test_settings(store: SqlStore) -> None:
    assert await store.get_setting("digest_realm") is None
    await store.set_setting("digest_realm", "pbx.example.com")
    assert await store.get_setting("digest_realm") == "pbx.example.com"
    await store.set_setting("digest_realm", "voice.example.com")
    assert await store.get_setting("digest_realm") == "voice.example.com"
    assert await store.delete_setting("digest_realm") is True
    assert await store.delete_setting("digest_realm") is False
    assert await store.get_setting("digest_realm") is None
