"""Unit tests of URL translation and of the storage layer's import boundary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sipbox.storage import open_store
from sipbox.storage.sql import to_async_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/sipbox.db", "sqlite+aiosqlite:///var/sipbox.db"),
        ("sqlite:////abs/sipbox.db", "sqlite+aiosqlite:////abs/sipbox.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("var/sipbox.db", "sqlite+aiosqlite:///var/sipbox.db"),
        ("/abs/sipbox.db", "sqlite+aiosqlite:////abs/sipbox.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@db:5432/pbx", "postgresql+asyncpg://u:p@db:5432/pbx"),
        ("postgres://u@db/pbx", "postgresql+asyncpg://u@db/pbx"),
        ("postgresql+asyncpg://u@db/pbx", "postgresql+asyncpg://u@db/pbx"),
        ("postgresql+psycopg2://u@db/pbx", "postgresql+asyncpg://u@db/pbx"),
    ],
)
def test_to_async_url(given: str, expected: str) -> None:
    assert to_async_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("bad", ["", "mysql://u@db/pbx", "sqlite+pysqlcipher:///x.db"])
def test_unsupported_urls_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        to_async_url(bad)


def test_schema_is_postgresql_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        open_store(str(tmp_path / "x.db"), schema="s")
    with pytest.raises(ValueError, match="schema name"):
        open_store("postgresql://u@127.0.0.1/db", schema='x"; drop table users; --')


async def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/nested/dir/sipbox.db")
    try:
        await store.migrate()
        assert (tmp_path / "nested" / "dir" / "sipbox.db").exists()
    finally:
        await store.close()


async def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    store = open_store("sqlite://")
    try:
        await store.migrate()
        assert await store.count_users() == 0
    finally:
        await store.close()


def test_storage_imports_no_upper_layer() -> None:
    """The layer rule: storage knows its records, not the SIP core, PBX, transport or API."""
    code = (
        "import sys, sipbox.storage, sipbox.storage.sql, sipbox.storage.migrate\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['sipbox','sip'], ['sipbox','pbx'], ['sipbox','transport'], ['sipbox','api']))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_interface_import_does_not_load_sqlalchemy() -> None:
    """The PBX imports the interface; SQLAlchemy is the composition root's business."""
    code = "import sys, sipbox.storage; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
