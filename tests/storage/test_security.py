"""Contract: bans, white/black lists and security events (the anti-scanning guard's data)."""

from __future__ import annotations

import re

import pytest

from sipbox.storage import AlreadyExists, Ban, InvalidValue, NotFound
from sipbox.storage.sql import SqlStore
from tests.storage.conftest import FakeClock

NOW = 1_700_000_000.0


# ---------------------------------------------------------------------------------------- bans


async def test_ban_upsert_get_and_replace(store: SqlStore) -> None:
    ban = Ban(
        source="203.0.113.7",
        reason="auth-failures",
        since=NOW,
        until=NOW + 600,
        detail={"failures": 12, "users": ["100", "admin"]},
        hit_count=3,
        manual=False,
        offence_count=2,
    )
    await store.upsert_ban(ban)
    assert await store.get_ban("203.0.113.7") == ban
    escalated = Ban("203.0.113.7", "auth-failures", NOW + 700, NOW + 3600, offence_count=3)
    await store.upsert_ban(escalated)
    assert await store.get_ban("203.0.113.7") == escalated
    assert await store.get_ban("198.51.100.1") is None


async def test_active_bans_and_purge(store: SqlStore) -> None:
    permanent = Ban("198.51.100.0/24", "manual", NOW - 100, None, manual=True)
    active = Ban("203.0.113.1", "scanner", NOW - 10, NOW + 1)
    ended = Ban("203.0.113.2", "scanner", NOW - 20, NOW)
    old = Ban("203.0.113.3", "scanner", NOW - 30, NOW - 5)
    for ban in (active, ended, permanent, old):
        await store.upsert_ban(ban)
    assert await store.list_active_bans(NOW) == [permanent, active]
    assert await store.purge_expired_bans(NOW) == 2
    assert await store.get_ban(ended.source) is None
    assert await store.list_active_bans(NOW + 10) == [permanent]
    assert await store.purge_expired_bans(NOW + 10) == 1
    assert await store.list_active_bans(NOW + 10) == [permanent]


async def test_delete_ban(store: SqlStore) -> None:
    await store.upsert_ban(Ban("203.0.113.1", "scanner", NOW, NOW + 60))
    assert await store.delete_ban("203.0.113.1") is True
    assert await store.delete_ban("203.0.113.1") is False
    assert await store.list_active_bans(NOW) == []


# ------------------------------------------------------------------------------- address lists


async def test_address_lists(store: SqlStore, clock: FakeClock) -> None:
    w = await store.add_address("whitelist", "10.0.0.0/8", "office")
    assert (w.kind, w.network, w.note, w.created_at) == (
        "whitelist",
        "10.0.0.0/8",
        "office",
        clock.now,
    )
    b1 = await store.add_address("blacklist", "192.0.2.1")
    b2 = await store.add_address("blacklist", "2001:DB8::/32", "bad net")
    assert b1.network == "192.0.2.1/32"
    assert b2.network == "2001:db8::/32"
    # The same network may sit on both lists; the guard decides precedence.
    await store.add_address("blacklist", "10.0.0.0/8")
    assert [(e.kind, e.network) for e in await store.list_addresses()] == [
        ("blacklist", "10.0.0.0/8"),
        ("blacklist", "192.0.2.1/32"),
        ("blacklist", "2001:db8::/32"),
        ("whitelist", "10.0.0.0/8"),
    ]
    assert await store.list_addresses("whitelist") == [w]


async def test_address_list_errors(store: SqlStore) -> None:
    await store.add_address("blacklist", "192.0.2.1")
    with pytest.raises(AlreadyExists, match=re.escape("192.0.2.1/32")):
        await store.add_address("blacklist", "192.0.2.1/32")
    with pytest.raises(InvalidValue):
        await store.add_address("blacklist", "not-a-network")
    with pytest.raises(InvalidValue):
        await store.add_address("greylist", "192.0.2.1")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match=re.escape("198.51.100.1")):
        await store.remove_address("blacklist", "198.51.100.1")
    await store.remove_address("blacklist", "192.0.2.1")
    assert await store.list_addresses() == []


# ----------------------------------------------------------------------------- security events


async def test_security_events_append_and_list(store: SqlStore) -> None:
    detail = {"user_agent": "friendly-scanner", "methods": ["REGISTER", "OPTIONS"], "n": 1.5}
    first = await store.append_security_event(NOW, "ban", "203.0.113.7", "scanner", detail)
    assert first.detail == detail and first.id > 0
    second = await store.append_security_event(NOW + 5, "unban", "203.0.113.7", "expired")
    assert second.detail == {}
    third = await store.append_security_event(NOW + 5, "ban", "198.51.100.1", "flood")
    assert await store.list_security_events() == [third, second, first]
    assert await store.list_security_events(limit=1) == [third]
    assert await store.list_security_events(since=NOW + 1) == [third, second]
    assert await store.purge_security_events(NOW + 5) == 1
    assert await store.list_security_events() == [third, second]
