"""Contract: lines, trunks, prefixes and inbound routes (issue 5) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from sipbox.storage import AlreadyExists, InvalidValue, NotFound
from sipbox.storage.lines import LineStore
from sipbox.storage.sql import SqlStore
from tests.storage.conftest import FakeClock


async def test_peers_lifecycle(store: SqlStore, clock: FakeClock) -> None:
    lines = LineStore(store)
    assert await lines.list_peers("line") == []
    a = await lines.create_peer("line", "ct", {"domain": "ims.invalid"}, secret="gAAA")
    b = await lines.create_peer("line", "backup", {"domain": "b.example"})
    assert (a.position, b.position) == (0, 1)
    assert a.config == {"domain": "ims.invalid"} and a.secret == "gAAA"
    assert [p.name for p in await lines.list_peers("line")] == ["ct", "backup"]
    assert await lines.list_peers("trunk") == []
    with pytest.raises(AlreadyExists):
        await lines.create_peer("line", "ct", {})
    clock.now += 5
    changed = await lines.update_peer(
        "line", a.id, {"enabled": False, "config": {"domain": "x"}, "position": 9}
    )
    assert (changed.enabled, changed.config, changed.updated_at) == (
        False,
        {"domain": "x"},
        clock.now,
    )
    assert await lines.get_peer("line", "ct") == changed
    assert [p.name for p in await lines.list_peers("line")] == ["backup", "ct"]
    await lines.delete_peer("line", a.id)
    with pytest.raises(NotFound):
        await lines.delete_peer("line", a.id)
    with pytest.raises(InvalidValue):
        await lines.create_peer("trunk", "bad name", {})
    t = await lines.create_peer("trunk", "pbx2", {"addresses": ["10.0.0.1"]})
    assert (await lines.get_peer("trunk", t.id)) == t


async def test_prefixes_and_routes(store: SqlStore) -> None:
    lines = LineStore(store)
    p = await lines.create_prefix("9", {"strip": 1, "targets": ["line:ct"]})
    await lines.create_prefix("00", {"targets": ["trunk:x"]}, min_length=5, max_length=20)
    assert [r.pattern for r in await lines.list_prefixes()] == ["00", "9"]
    changed = await lines.update_prefix(p.id, {"config": {"strip": 1, "targets": []}})
    assert changed.config == {"strip": 1, "targets": []}
    with pytest.raises(InvalidValue):
        await lines.create_prefix("9x", {})
    with pytest.raises(InvalidValue):
        await lines.create_prefix("9", {}, min_length=5, max_length=3)
    await lines.delete_prefix(p.id)
    with pytest.raises(NotFound):
        await lines.delete_prefix(p.id)

    r = await lines.create_inbound_route("ct", "+861012345678", "1002")
    await lines.create_inbound_route("ct", "", "1001")
    await lines.create_inbound_route("", "5550100", "1003")
    with pytest.raises(AlreadyExists):
        await lines.create_inbound_route("ct", "", "1002")
    routes = await lines.list_inbound_routes()
    assert [(x.source, x.did) for x in routes] == [
        ("", "5550100"),
        ("ct", ""),
        ("ct", "+861012345678"),
    ]
    assert (await lines.update_inbound_route(r.id, {"destination": "1009"})).destination == "1009"
    await lines.delete_inbound_route(r.id)
    with pytest.raises(NotFound):
        await lines.update_inbound_route(r.id, {"destination": "1"})
