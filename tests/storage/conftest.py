"""The contract fixture: every storage test runs against SQLite and PostgreSQL.

SQLite uses a file in `tmp_path` (WAL needs a real file). PostgreSQL runs when
``SIPBOX_TEST_PG_URL`` is set; each test gets its own uniquely named schema (``search_path``), so
tests never see each other's rows or anyone else's data, and the schema is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from sipbox.storage.sql import SqlStore, open_store, to_async_url

PG_URL_ENV = "SIPBOX_TEST_PG_URL"
PG_URL = os.environ.get(PG_URL_ENV)


@dataclass
class FakeClock:
    """A settable clock for created_at/updated_at stamps."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _drop_pg_schema(url: str, schema: str) -> None:
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def unmigrated_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[SqlStore]:
    """A store on an empty database of each backend, not yet migrated."""
    if request.param == "sqlite":
        store = open_store(str(tmp_path / "var" / "sipbox.db"), clock=clock)
        try:
            yield store
        finally:
            await store.close()
        return
    if not PG_URL:
        pytest.skip(f"{PG_URL_ENV} is not set: PostgreSQL contract tests skipped")
    schema = f"sipbox_test_{uuid.uuid4().hex[:16]}"
    store = open_store(PG_URL, schema=schema, clock=clock)
    try:
        yield store
    finally:
        await store.close()
        await _drop_pg_schema(PG_URL, schema)


@pytest.fixture
async def store(unmigrated_store: SqlStore) -> SqlStore:
    """A migrated, empty store of each backend."""
    await unmigrated_store.migrate()
    return unmigrated_store
