"""Contract: web admin accounts (issue 7) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from sipbox.storage import AlreadyExists, InvalidValue, NotFound
from sipbox.storage.sql import SqlStore
from tests.storage.conftest import FakeClock

HASH_A = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
HASH_B = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdDI$aGFzaDI"


async def test_web_admin_lifecycle(store: SqlStore, clock: FakeClock) -> None:
    assert await store.list_web_admins() == []
    created = await store.create_web_admin("admin", HASH_A)
    assert (created.username, created.password_hash) == ("admin", HASH_A)
    assert created.created_at == created.updated_at == clock.now
    assert await store.get_web_admin("admin") == created
    assert await store.get_web_admin("Admin") is None  # names are case-sensitive
    await store.create_web_admin("ops@example.com", HASH_B)
    assert [a.username for a in await store.list_web_admins()] == ["admin", "ops@example.com"]

    clock.now += 60
    await store.set_web_admin_password("admin", HASH_B)
    changed = await store.get_web_admin("admin")
    assert changed is not None
    assert (changed.password_hash, changed.updated_at) == (HASH_B, clock.now)
    assert changed.created_at == created.created_at

    await store.delete_web_admin("ops@example.com")
    assert [a.username for a in await store.list_web_admins()] == ["admin"]


async def test_web_admin_errors(store: SqlStore) -> None:
    await store.create_web_admin("admin", HASH_A)
    with pytest.raises(AlreadyExists, match="admin"):
        await store.create_web_admin("admin", HASH_B)
    with pytest.raises(NotFound):
        await store.set_web_admin_password("nobody", HASH_A)
    with pytest.raises(NotFound):
        await store.delete_web_admin("nobody")
    with pytest.raises(InvalidValue, match="PHC"):
        await store.create_web_admin("other", "password-in-clear")
    for bad in ("", " admin", "a b", "x" * 65, "<script>"):
        with pytest.raises(InvalidValue, match="username"):
            await store.create_web_admin(bad, HASH_A)


async def test_the_last_account_is_kept(store: SqlStore) -> None:
    """``keep_last`` (the API and pages use it): never zero accounts, even when two are
    deleted at the same moment (count and delete are one locked transaction)."""
    from sipbox.storage import Refused

    await store.create_web_admin("admin", HASH_A)
    with pytest.raises(Refused, match="last"):
        await store.delete_web_admin("admin", keep_last=True)
    with pytest.raises(NotFound):
        await store.delete_web_admin("nobody", keep_last=True)
    await store.create_web_admin("alice", HASH_B)
    results = await asyncio.gather(
        store.delete_web_admin("admin", keep_last=True),
        store.delete_web_admin("alice", keep_last=True),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1, results
    assert len(await store.list_web_admins()) == 1
