"""Group updates (issue 4, groups): fields, member replacement, renaming, errors — on SQLite
and PostgreSQL (create/get/list/delete are covered in test_cdrs.py)."""

from __future__ import annotations

import pytest

from sipbox.storage import AlreadyExists, GroupMember, InvalidValue, NotFound
from sipbox.storage.sql import SqlStore


async def test_update_fields_and_members(store: SqlStore, clock) -> None:
    created = await store.create_group(
        "600", name="Sales", members=[GroupMember("1001"), GroupMember("1002", 15)]
    )
    clock.now += 10
    updated = await store.update_group(
        "600",
        {"name": "Support", "strategy": "circular", "ring_timeout": 25,
         "no_answer_destination": "1009", "completed_elsewhere": False,
         "settings": {"skip_busy": False}},
    )  # fmt: skip
    assert (updated.name, updated.strategy, updated.ring_timeout) == ("Support", "circular", 25)
    assert updated.no_answer_destination == "1009" and updated.completed_elsewhere is False
    assert updated.settings == {"skip_busy": False}
    assert updated.members == created.members  # untouched without `members`
    assert (
        updated.updated_at == created.updated_at + 10 and updated.created_at == created.created_at
    )
    again = await store.update_group("600", {}, [GroupMember("1003", 5), GroupMember("1001")])
    assert [(m.number, m.timeout) for m in again.members] == [("1003", 5), ("1001", None)]
    assert (await store.update_group("600", {}, [])).members == ()
    assert await store.get_group_by_number("600") == await store.update_group("600", {})


async def test_update_renames_and_refuses(store: SqlStore) -> None:
    await store.create_group("600", members=[GroupMember("1001")])
    await store.create_group("601")
    renamed = await store.update_group("600", {"number": "610"})
    assert renamed.number == "610" and [m.number for m in renamed.members] == ["1001"]
    assert await store.get_group_by_number("600") is None
    with pytest.raises(AlreadyExists):
        await store.update_group("610", {"number": "601"})
    with pytest.raises(NotFound):
        await store.update_group("600", {"name": "x"})
    with pytest.raises(InvalidValue):
        await store.update_group("610", {"strategy": "random"})
    with pytest.raises(InvalidValue):
        await store.update_group("610", {"colour": "red"})
