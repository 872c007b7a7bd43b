"""Contract: call records (open at set-up, completed at the end, interrupted after a crash),
their filters and paging, and groups — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from sipbox.storage import AlreadyExists, Cdr, CdrFilter, GroupMember, NotFound
from sipbox.storage.records import billable_seconds, finish_cdr
from sipbox.storage.sql import SqlStore

T0 = 1_700_000_000.0


def open_record(n: int, *, caller: str = "1001", dialed: str = "1002", start: float = T0) -> Cdr:
    return Cdr(
        id=f"call{n}",
        start_time=start,
        caller_number=caller,
        dialed_number=dialed,
        a_call_id=f"a{n}@host",
        caller_display="Alice",
        caller_source="127.0.0.5:5060",
        caller_transport="udp",
    )


def test_billable_rounds_up() -> None:
    assert billable_seconds(10.0, 10.0) == 0
    assert billable_seconds(10.0, 10.2) == 1
    assert billable_seconds(10.0, 13.0) == 3
    assert billable_seconds(10.0, 9.0) == 0


async def test_open_then_complete(store: SqlStore) -> None:
    record = open_record(1)
    await store.create_cdr(record)
    got = await store.get_cdr("call1")
    assert got == record and got.end_time is None
    with pytest.raises(AlreadyExists):
        await store.create_cdr(record)
    done = finish_cdr(
        record,
        end_time=T0 + 12.5,
        answer_time=T0 + 2.0,
        disposition="answered",
        status=200,
        reason="OK",
        hangup_by="caller",
        destination="1002 sip:1002@127.0.0.9:5070",
        b_call_id="b1@host",
    )
    await store.complete_cdr(done)
    got = await store.get_cdr("call1")
    assert got == done
    assert (got.duration, got.billable) == (13, 11)
    assert got.line is None


async def test_complete_without_open_inserts(store: SqlStore) -> None:
    done = finish_cdr(open_record(2), end_time=T0 + 1, disposition="busy", status=486)
    await store.complete_cdr(done)
    assert await store.get_cdr("call2") == done


async def test_batch_and_filters_and_paging(store: SqlStore) -> None:
    records = [
        finish_cdr(open_record(i, start=T0 + i), end_time=T0 + i + 5, disposition="answered")
        for i in range(10)
    ]
    records[3] = finish_cdr(
        open_record(3, caller="2000", start=T0 + 3), end_time=T0 + 9, disposition="busy"
    )
    await store.save_cdrs(records)
    await store.save_cdrs([])
    newest = await store.list_cdrs(limit=3)
    assert [r.id for r in newest] == ["call9", "call8", "call7"]
    page2 = await store.list_cdrs(limit=3, offset=3)
    assert [r.id for r in page2] == ["call6", "call5", "call4"]
    assert await store.count_cdrs() == 10
    window = CdrFilter(since=T0 + 2, until=T0 + 5)
    assert [r.id for r in await store.list_cdrs(window)] == ["call4", "call3", "call2"]
    assert [r.id for r in await store.list_cdrs(CdrFilter(number="2000"))] == ["call3"]
    assert await store.count_cdrs(CdrFilter(disposition="busy")) == 1
    assert await store.count_cdrs(CdrFilter(number="1002")) == 10
    # destination matches by its user part too
    await store.complete_cdr(
        finish_cdr(open_record(20), end_time=T0 + 30, disposition="answered",
                   destination="1003 sip:1003@h:5060")
    )  # fmt: skip
    assert [r.id for r in await store.list_cdrs(CdrFilter(number="1003"))] == ["call20"]


async def test_close_interrupted(store: SqlStore) -> None:
    await store.create_cdr(open_record(1))
    from dataclasses import replace

    answered = replace(open_record(2), answer_time=T0 + 5)
    await store.create_cdr(answered)
    await store.complete_cdr(finish_cdr(open_record(3), end_time=T0 + 1, disposition="failed"))
    assert await store.close_interrupted_cdrs(T0 + 60.2) == 2
    one = await store.get_cdr("call1")
    two = await store.get_cdr("call2")
    assert one is not None and two is not None
    assert one.disposition == "interrupted" and one.end_time == T0 + 60.2
    assert (one.duration, one.billable, one.hangup_by) == (61, 0, "system")
    assert (two.duration, two.billable) == (61, 56)
    three = await store.get_cdr("call3")
    assert three is not None and three.disposition == "failed"
    assert await store.close_interrupted_cdrs(T0 + 100) == 0


async def test_groups(store: SqlStore) -> None:
    group = await store.create_group(
        "600",
        name="Sales",
        members=[GroupMember("1001"), GroupMember("1002", 15), GroupMember("1003")],
        ring_timeout=20,
    )
    assert group.number == "600" and group.strategy == "ring-all"
    assert [m.number for m in group.members] == ["1001", "1002", "1003"]
    assert group.members[1].timeout == 15
    with pytest.raises(AlreadyExists):
        await store.create_group("600")
    with pytest.raises(ValueError):
        await store.create_group("601", strategy="random")
    await store.create_group("500", strategy="sequential")
    assert [g.number for g in await store.list_groups()] == ["500", "600"]
    assert await store.get_group_by_number("600") == group
    await store.delete_group("600")
    assert await store.get_group_by_number("600") is None
    with pytest.raises(NotFound):
        await store.delete_group("600")
