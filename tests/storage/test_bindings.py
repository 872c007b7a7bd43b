"""Contract: registrar bindings, the live state persisted for restarts."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from sipbox.storage import Binding, BindingKey, StoreError
from sipbox.storage.sql import SqlStore

NOW = 1_700_000_000.0
AOR = "sip:alice@pbx.example.com"


def binding(contact: str = "sip:alice@192.0.2.1:5060", **changes: object) -> Binding:
    base = Binding(
        aor=AOR,
        contact_uri=contact,
        user_number="alice",
        call_id="a84b4c76e66710@pc33",
        cseq=314159,
        expires_at=NOW + 3600,
        instance_id='"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"',
        reg_id=1,
        received_transport="tcp",
        received_host="2001:db8::1",
        received_port=40123,
        local_transport="tcp",
        local_host="2001:db8::5",
        local_port=5060,
        connection_hint="tcp:17",
        path=("<sip:edge1.example.com;lr>", "<sip:edge2.example.com;lr>"),
        user_agent="Linphone/5.2",
        q=0.7,
        node_id="node-a",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_upsert_inserts_then_replaces(store: SqlStore) -> None:
    first = binding()
    await store.upsert_binding(first)
    assert await store.load_bindings(NOW) == [first]
    refreshed = dataclasses.replace(first, cseq=314160, expires_at=NOW + 7200, path=(), q=None)
    await store.upsert_binding(refreshed)
    assert await store.load_bindings(NOW) == [refreshed]


async def test_minimal_binding_round_trips(store: SqlStore) -> None:
    minimal = Binding(AOR, "sip:alice@192.0.2.9", "alice", "cid", 1, NOW + 1)
    await store.upsert_binding(minimal)
    assert await store.load_bindings(NOW) == [minimal]


async def test_load_returns_only_unexpired(store: SqlStore) -> None:
    live = binding("sip:a@192.0.2.1", expires_at=NOW + 0.5)
    at_edge = binding("sip:a@192.0.2.2", expires_at=NOW)
    gone = binding("sip:a@192.0.2.3", expires_at=NOW - 10)
    for b in (live, at_edge, gone):
        await store.upsert_binding(b)
    assert await store.load_bindings(NOW) == [live]
    assert len(await store.load_bindings(NOW - 100)) == 3


async def test_purge_expired(store: SqlStore) -> None:
    keep = binding("sip:a@192.0.2.1", expires_at=NOW + 1)
    await store.upsert_binding(keep)
    await store.upsert_binding(binding("sip:a@192.0.2.2", expires_at=NOW))
    await store.upsert_binding(binding("sip:a@192.0.2.3", expires_at=NOW - 1))
    assert await store.purge_expired_bindings(NOW) == 2
    assert await store.load_bindings(0) == [keep]
    assert await store.purge_expired_bindings(NOW) == 0


async def test_delete_one(store: SqlStore) -> None:
    a, b = binding("sip:a@192.0.2.1"), binding("sip:a@192.0.2.2")
    await store.upsert_binding(a)
    await store.upsert_binding(b)
    assert await store.delete_binding(AOR, a.contact_uri) is True
    assert await store.delete_binding(AOR, a.contact_uri) is False
    assert await store.load_bindings(NOW) == [b]


async def test_delete_all_for_aor(store: SqlStore) -> None:
    other = binding("sip:bob@192.0.2.7", aor="sip:bob@pbx.example.com", user_number="bob")
    await store.upsert_binding(binding("sip:a@192.0.2.1"))
    await store.upsert_binding(binding("sip:a@192.0.2.2"))
    await store.upsert_binding(other)
    assert await store.delete_bindings_for_aor(AOR) == 2
    assert await store.load_bindings(NOW) == [other]
    assert await store.delete_bindings_for_aor(AOR) == 0


async def test_apply_binding_changes_batch(store: SqlStore) -> None:
    old1, old2 = binding("sip:a@192.0.2.1"), binding("sip:a@192.0.2.2")
    await store.apply_binding_changes([old1, old2], [])
    refreshed = dataclasses.replace(old2, cseq=99)
    new = binding("sip:a@192.0.2.3")
    await store.apply_binding_changes(
        [refreshed, new], [old1.key, ("sip:nobody@x", "sip:nobody@192.0.2.9")]
    )
    assert await store.load_bindings(NOW) == [refreshed, new]
    await store.apply_binding_changes([], [BindingKey(AOR, new.contact_uri)])
    assert await store.load_bindings(NOW) == [refreshed]
    await store.apply_binding_changes([], [])  # nothing to do is fine


async def test_apply_binding_changes_is_atomic(store: SqlStore) -> None:
    keep = binding("sip:a@192.0.2.1")
    await store.upsert_binding(keep)
    broken = binding("sip:a@192.0.2.2", call_id=None)  # NOT NULL violation
    with pytest.raises(StoreError):
        await store.apply_binding_changes([binding("sip:a@192.0.2.3"), broken], [keep.key])
    assert await store.load_bindings(NOW) == [keep]


async def test_batch_is_written_in_chunks_as_it_is_read(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deletes then upserts, BINDING_CHUNK rows per statement, one transaction; the upserts
    are read a chunk at a time (a generator is never read ahead of what is being written)."""
    from sqlalchemy.ext.asyncio import AsyncConnection

    from sipbox.storage import sql

    old = [binding(f"sip:a@192.0.2.{n}") for n in range(3)]
    await store.apply_binding_changes(old, [])
    monkeypatch.setattr(sql, "BINDING_CHUNK", 2)
    produced: list[int] = []
    seen: list[tuple[int, int]] = []  # (rows in the statement, records produced by then)
    execute = AsyncConnection.execute

    async def counting(self, statement, parameters=None, *args, **kw):  # type: ignore[no-untyped-def]
        if isinstance(parameters, list):
            seen.append((len(parameters), len(produced)))
        return await execute(self, statement, parameters, *args, **kw)

    monkeypatch.setattr(AsyncConnection, "execute", counting)

    def fresh():  # type: ignore[no-untyped-def]
        for n in range(10, 15):
            produced.append(n)
            yield binding(f"sip:a@192.0.2.{n}")

    await store.apply_binding_changes(fresh(), [b.key for b in old])
    assert seen == [(2, 0), (1, 0), (2, 2), (2, 4), (1, 5)]
    assert [b.contact_uri for b in await store.load_bindings(NOW)] == [
        f"sip:a@192.0.2.{n}" for n in range(10, 15)
    ]
    monkeypatch.setattr(AsyncConnection, "execute", execute)
    broken = binding("sip:a@192.0.2.99", call_id=None)  # NOT NULL violation in a later chunk
    with pytest.raises(StoreError):
        await store.apply_binding_changes(
            [binding("sip:a@192.0.2.20"), binding("sip:a@192.0.2.21"), broken], [old[0].key]
        )
    assert len(await store.load_bindings(NOW)) == 5  # all or nothing


async def test_many_bindings_in_one_batch(store: SqlStore) -> None:
    batch = [binding(f"sip:a@192.0.2.{n % 250}:{5000 + n}") for n in range(2000)]
    await store.apply_binding_changes(batch, [])
    assert len(await store.load_bindings(NOW)) == 2000


async def test_concurrent_background_writes_do_not_fail(store: SqlStore) -> None:
    """Background writers overlap; SQLite must queue them (BEGIN IMMEDIATE + busy_timeout)."""
    writes = [store.upsert_binding(binding(f"sip:a@192.0.2.{n}")) for n in range(60)]
    reads = [store.load_bindings(NOW) for _ in range(20)]
    await asyncio.gather(*writes, *reads)
    assert len(await store.load_bindings(NOW)) == 60
