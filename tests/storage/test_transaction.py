"""Contract: `Store.transaction` (all or nothing across object kinds, for the YAML import) on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from sipbox.storage import AlreadyExists, NewUser, StoreError
from sipbox.storage.lines import LineStore
from sipbox.storage.sql import SqlStore


class Boom(Exception):
    """A failure raised inside the block."""


async def _write_everything(store: SqlStore) -> None:
    lines = LineStore(store)
    await store.create_user(NewUser(number="1001", display_name="Alice"))
    await store.create_group("600", name="Sales", members=[])
    await lines.create_peer("line", "ct", {"domain": "ims.invalid", "account": "1"})
    await lines.create_peer("trunk", "pbx2", {"addresses": ["192.0.2.1"]})
    await lines.create_prefix("9", {"strip": 1, "targets": ["line:ct"]})
    await lines.create_inbound_route("ct", "+861", "1001")
    await store.add_address("whitelist", "192.0.2.0/24", "office")


async def _counts(store: SqlStore) -> tuple[int, ...]:
    lines = LineStore(store)
    return (
        len(await store.list_users()),
        len(await store.list_groups()),
        len(await lines.list_peers("line")),
        len(await lines.list_peers("trunk")),
        len(await lines.list_prefixes()),
        len(await lines.list_inbound_routes()),
        len(await store.list_addresses()),
    )


async def test_commits_together_and_reads_its_own_writes(store: SqlStore) -> None:
    async with store.transaction():
        await _write_everything(store)
        assert await _counts(store) == (1, 1, 1, 1, 1, 1, 1)  # read on the same connection
    assert await _counts(store) == (1, 1, 1, 1, 1, 1, 1)


async def test_a_failure_leaves_nothing_written(store: SqlStore) -> None:
    await store.create_user(NewUser(number="999"))
    with pytest.raises(Boom):
        async with store.transaction():
            await _write_everything(store)
            kept = await store.get_user_by_number("999")
            assert kept is not None
            await store.update_user(kept.id, {"display_name": "x"})
            raise Boom
    assert await _counts(store) == (1, 0, 0, 0, 0, 0, 0)
    kept = await store.get_user_by_number("999")
    assert kept is not None and kept.display_name == ""


async def test_a_database_error_rolls_everything_back(store: SqlStore) -> None:
    """The last write breaks a constraint only the database checks (a second route for the
    same source and DID, inserted bypassing the admin layer's checks)."""
    lines = LineStore(store)
    with pytest.raises(AlreadyExists):
        async with store.transaction():
            await _write_everything(store)
            await lines.create_inbound_route("ct", "+861", "1002")
    assert await _counts(store) == (0, 0, 0, 0, 0, 0, 0)


async def test_a_caught_failure_does_not_poison_the_transaction(store: SqlStore) -> None:
    """Each write is a savepoint: PostgreSQL would otherwise refuse every later statement."""
    async with store.transaction():
        await store.add_address("blacklist", "198.51.100.7", "")
        with pytest.raises(AlreadyExists):
            await store.add_address("blacklist", "198.51.100.7", "")
        await store.create_user(NewUser(number="1001"))
    assert len(await store.list_addresses("blacklist")) == 1
    assert await store.get_user_by_number("1001") is not None


async def test_other_tasks_do_not_join_and_nesting_is_refused(store: SqlStore) -> None:
    async with store.transaction():
        await store.create_user(NewUser(number="1001"))
        # A task started inside inherits the context but gets a connection of its own, so it
        # does not see the uncommitted row (and never shares the connection).
        other = await asyncio.create_task(store.get_user_by_number("1001"))
        assert other is None
        with pytest.raises(RuntimeError):
            async with store.transaction():
                pass
    assert await store.get_user_by_number("1001") is not None


async def test_errors_are_store_errors(store: SqlStore) -> None:
    with pytest.raises(StoreError):
        async with store.transaction():
            await store.create_user(NewUser(number="1001"))
            await store.create_user(NewUser(number="1001"))
    assert await store.list_users() == []
