"""Contract: migrations are idempotent, match `schema.py`, and configure SQLite as intended."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from sipbox.storage import NewUser, Store
from sipbox.storage.migrate import head_revision
from sipbox.storage.schema import metadata
from sipbox.storage.sql import SqlStore


async def test_migrate_twice_is_idempotent(unmigrated_store: SqlStore) -> None:
    store = unmigrated_store
    assert await store.schema_revision() is None
    await store.migrate()
    assert await store.schema_revision() == head_revision()
    await store.create_user(NewUser("100"))
    await store.migrate()
    assert await store.schema_revision() == head_revision()
    assert await store.count_users() == 1


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_database_matches_schema_module(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_store_satisfies_protocol(store: SqlStore) -> None:
    assert isinstance(store, Store)


async def test_sqlite_pragmas(store: SqlStore) -> None:
    if store.dialect != "sqlite":
        return
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1


async def test_concurrent_migrations_serialise(unmigrated_store: SqlStore) -> None:
    """Several nodes (or tasks) migrating at once must not trip over each other."""
    await asyncio.gather(*(unmigrated_store.migrate() for _ in range(3)))
    assert await unmigrated_store.schema_revision() == head_revision()
