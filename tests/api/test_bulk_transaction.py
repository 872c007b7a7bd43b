"""``POST /import`` is one database transaction (issue 7, "Bulk": all or nothing): a file
whose LAST entry fails only in the database leaves nothing written and the caches untouched;
a good file refreshes the user directory once, after the commit."""

from __future__ import annotations

import httpx

from sipbox.storage.sql import SqlStore
from tests.api.fakes import FakeDirectory

YAML = {"Content-Type": "application/yaml"}
FILE = """\
users:
  - number: "1001"
    display_name: Alice
    password: pw-1001
  - number: "1002"
groups:
  - number: "600"
    name: Sales
    members: ["1001", "1002"]
  - number: "699"
    name: Refused by the database
"""


async def _refuse_group_699(store: SqlStore) -> None:
    """A rule only the database knows (the import's checks cannot see it coming)."""
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TRIGGER refuse_699 BEFORE INSERT ON groups WHEN NEW.number = '699' "
            "BEGIN SELECT RAISE(ABORT, 'group 699 refused by the database'); END"
        )


async def test_database_failure_on_the_last_entry_writes_nothing(
    client: httpx.AsyncClient, store: SqlStore, directory: FakeDirectory
) -> None:
    await _refuse_group_699(store)
    answer = await client.post("/import", content=FILE, headers=YAML)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["error"].startswith("line 10:"), error  # the entry of group 699
    assert "refused by the database" in error["error"]
    assert error["field"] == "groups[1]"
    assert await store.list_users() == [] and await store.list_groups() == []
    assert directory.refreshed == []  # nothing was applied to the live view either
    assert (await client.get("/users/1001")).status_code == 404


async def test_success_refreshes_the_directory_once_after_commit(
    client: httpx.AsyncClient, store: SqlStore, directory: FakeDirectory
) -> None:
    good = FILE.split("  - number: \"699\"")[0]
    answer = await client.post("/import", content=good, headers=YAML)
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"]["users"] == 2
    assert sorted(directory.refreshed) == ["1001", "1002"]  # one refresh_many call
    assert set(directory.users) == {"1001", "1002"}
    group = await store.get_group_by_number("600")
    assert group is not None and [m.number for m in group.members] == ["1001", "1002"]
