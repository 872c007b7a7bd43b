"""Contract: users (create, bulk, get, list, update, delete, count) on every backend."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import pickle
import time

import pytest

from sipbox.storage import AlreadyExists, Binding, InvalidValue, NewUser, NotFound, User
from sipbox.storage.sql import SqlStore
from tests.storage.conftest import FakeClock

MD5 = "0" * 32
SHA = "f" * 64


def full_user(number: str = "alice") -> NewUser:
    return NewUser(
        number=number,
        display_name="Alice Ängström",
        ha1_md5=MD5,
        ha1_sha256=SHA,
        realm="pbx.example.com",
        enabled=False,
        max_contacts=3,
        ip_auth=("192.0.2.10", "2001:db8::/32"),
        static_contact="192.0.2.10:5060;transport=udp",
        nat="yes",
        ring_timeout=25,
        max_calls=2,
        class_of_service="international",
        settings={"forward": {"busy": "200", "no_answer": None}, "dnd": True, "n": [1, 2.5]},
    )


async def test_create_and_get_round_trips_every_field(store: SqlStore, clock: FakeClock) -> None:
    new = full_user()
    created = await store.create_user(new)
    assert created.id > 0
    for name in NewUser.__dataclass_fields__:
        assert getattr(created, name) == getattr(new, name), name
    assert created.created_at == created.updated_at == clock.now
    assert await store.get_user(created.id) == created
    assert await store.get_user_by_number("alice") == created


async def test_defaults(store: SqlStore) -> None:
    user = await store.create_user(NewUser("100"))
    assert user.display_name == ""
    assert user.ha1_md5 is None and user.ha1_sha256 is None and user.realm is None
    assert user.enabled is True
    assert user.max_contacts is None and user.max_calls is None and user.ring_timeout is None
    assert user.ip_auth == ()
    assert user.nat == "auto"
    assert user.class_of_service == "local"
    assert user.settings == {}


async def test_get_absent_is_none(store: SqlStore) -> None:
    assert await store.get_user(12345) is None
    assert await store.get_user_by_number("nobody") is None


async def test_duplicate_number_raises_already_exists(store: SqlStore) -> None:
    await store.create_user(NewUser("100"))
    with pytest.raises(AlreadyExists, match="'100'"):
        await store.create_user(NewUser("100", display_name="other"))
    assert await store.count_users() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"number": ""},
        {"number": "a b"},
        {"number": "alice@example.com"},
        {"number": "x" * 65},
        {"nat": "maybe"},
        {"class_of_service": "galactic"},
        {"ip_auth": ("not-an-address",)},
        {"ip_auth": "10.0.0.1"},
        {"max_contacts": -1},
        {"enabled": 1},
    ],
)
async def test_invalid_values_are_rejected(store: SqlStore, bad: dict[str, object]) -> None:
    base = {"number": "100"} | bad
    with pytest.raises(InvalidValue):
        await store.create_user(NewUser(**base))  # type: ignore[arg-type]
    assert await store.count_users() == 0


async def test_list_is_ordered_by_number_and_paginated(store: SqlStore) -> None:
    for number in ["300", "alice", "100", "200"]:
        await store.create_user(NewUser(number))
    assert [u.number for u in await store.list_users()] == ["100", "200", "300", "alice"]
    page = await store.list_users(limit=2, offset=1)
    assert [u.number for u in page] == ["200", "300"]
    assert await store.list_users(limit=10, offset=10) == []
    assert await store.count_users() == 4


async def test_update_changes_only_named_fields(store: SqlStore, clock: FakeClock) -> None:
    user = await store.create_user(full_user())
    clock.now += 10
    updated = await store.update_user(
        user.id, {"display_name": "Alice", "max_contacts": None, "settings": {"dnd": False}}
    )
    assert updated.display_name == "Alice"
    assert updated.max_contacts is None
    assert updated.settings == {"dnd": False}
    assert updated.ha1_sha256 == SHA and updated.nat == "yes"
    assert updated.ip_auth == user.ip_auth
    assert updated.created_at == user.created_at
    assert updated.updated_at == clock.now
    assert await store.get_user(user.id) == updated


async def test_update_unknown_raises_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="999"):
        await store.update_user(999, {"display_name": "x"})


async def test_update_rejects_unknown_fields_and_bad_values(store: SqlStore) -> None:
    user = await store.create_user(NewUser("100"))
    with pytest.raises(InvalidValue, match="password"):
        await store.update_user(user.id, {"password": "secret"})
    with pytest.raises(InvalidValue):
        await store.update_user(user.id, {"nat": "sometimes"})
    with pytest.raises(InvalidValue):
        await store.update_user(user.id, {"id": 7})


async def test_update_to_taken_number_raises_already_exists(store: SqlStore) -> None:
    await store.create_user(NewUser("100"))
    user = await store.create_user(NewUser("200"))
    with pytest.raises(AlreadyExists, match="'100'"):
        await store.update_user(user.id, {"number": "100"})
    assert (await store.get_user(user.id)).number == "200"  # type: ignore[union-attr]


def _binding(number: str, contact: str, expires_at: float) -> Binding:
    return Binding(
        aor=f"sip:{number}@pbx.example.com",
        contact_uri=contact,
        user_number=number,
        call_id="c1",
        cseq=1,
        expires_at=expires_at,
    )


async def test_renumbering_drops_old_bindings(store: SqlStore) -> None:
    user = await store.create_user(NewUser("100"))
    await store.create_user(NewUser("200"))
    later = time.time() + 3600
    await store.upsert_binding(_binding("100", "sip:100@192.0.2.1", later))
    await store.upsert_binding(_binding("200", "sip:200@192.0.2.2", later))
    await store.update_user(user.id, {"display_name": "same number"})
    assert len(await store.load_bindings(0)) == 2
    await store.update_user(user.id, {"number": "101"})
    assert [b.user_number for b in await store.load_bindings(0)] == ["200"]


async def test_delete(store: SqlStore) -> None:
    user = await store.create_user(NewUser("100"))
    other = await store.create_user(NewUser("200"))
    await store.upsert_binding(_binding("100", "sip:100@192.0.2.1", time.time() + 60))
    await store.upsert_binding(_binding("200", "sip:200@192.0.2.2", time.time() + 60))
    await store.delete_user(user.id)
    assert await store.get_user(user.id) is None
    assert await store.list_users() == [other]
    assert [b.user_number for b in await store.load_bindings(0)] == ["200"]
    with pytest.raises(NotFound, match=str(user.id)):
        await store.delete_user(user.id)


async def test_number_is_reusable_after_delete(store: SqlStore) -> None:
    user = await store.create_user(NewUser("100"))
    await store.delete_user(user.id)
    again = await store.create_user(NewUser("100"))
    assert again.number == "100"


async def test_bulk_create_returns_users_in_input_order(store: SqlStore) -> None:
    numbers = ["300", "100", "bob", "200"]
    created = await store.create_users([NewUser(n, settings={"n": n}) for n in numbers])
    assert [u.number for u in created] == numbers
    assert [u.settings for u in created] == [{"n": n} for n in numbers]
    assert len({u.id for u in created}) == 4
    for user in created:
        assert await store.get_user(user.id) == user
    assert await store.create_users([]) == []


async def test_bulk_create_is_all_or_nothing(store: SqlStore) -> None:
    await store.create_user(NewUser("150"))
    batch = [NewUser(str(n)) for n in range(100, 200)]
    with pytest.raises(AlreadyExists, match="150"):
        await store.create_users(batch)
    assert await store.count_users() == 1
    assert [u.number for u in await store.list_users()] == ["150"]


async def test_bulk_create_rejects_duplicates_inside_the_batch(store: SqlStore) -> None:
    with pytest.raises(AlreadyExists, match=r"repeated in the batch: 7$"):
        await store.create_users([NewUser("7"), NewUser("8"), NewUser("7")])
    assert await store.count_users() == 0


async def test_bulk_create_validates_before_writing(store: SqlStore) -> None:
    with pytest.raises(InvalidValue):
        await store.create_users([NewUser("1"), NewUser("2", nat="bogus")])  # type: ignore[arg-type]
    assert await store.count_users() == 0


async def test_bulk_create_thousand_users_is_fast(store: SqlStore) -> None:
    batch = [
        NewUser(str(1000 + n), display_name=f"User {n}", ha1_md5=MD5, ha1_sha256=SHA, realm="r")
        for n in range(1000)
    ]
    started = time.perf_counter()
    created = await store.create_users(batch)
    elapsed = time.perf_counter() - started
    assert len(created) == 1000
    assert await store.count_users() == 1000
    assert elapsed < 1.0, f"1,000 users took {elapsed:.3f}s"


# ------------------------------------------------------------- the compact in-memory record


def _user(**kw: object) -> User:
    values: dict[str, object] = dict(
        id=7, number="1001", display_name="", ha1_md5=None, ha1_sha256=None, realm="pbx.test",
        enabled=True, max_contacts=None, ip_auth=(), static_contact=None, nat="auto",
        ring_timeout=None, max_calls=None, class_of_service="local", settings={},
        created_at=1.5, updated_at=1.5,
    )  # fmt: skip
    values.update(kw)
    return User(**values)  # type: ignore[arg-type]


def test_user_packs_the_four_ha1s_and_reads_them_back_unchanged() -> None:
    md5 = hashlib.md5(b"1001:pbx.test:pw").hexdigest()
    sha = hashlib.sha256(b"1001:pbx.test:pw").hexdigest()
    b_md5, b_sha = "ab" * 16, "cd" * 32
    settings = {"ha1b_md5": b_md5, "ha1b_sha256": b_sha, "forwarding": {"busy": "1002"}}
    user = _user(ha1_md5=md5, ha1_sha256=sha, settings=settings)
    assert type(user._ha1) is bytes and len(user._ha1) == 96  # packed
    assert user._settings == {"forwarding": {"busy": "1002"}}
    assert (user.ha1_md5, user.ha1_sha256) == (md5, sha)
    assert user.settings == settings and list(user.settings) == list(settings)  # same order
    assert user == _user(ha1_md5=md5, ha1_sha256=sha, settings=dict(settings))
    assert user != _user(ha1_md5=md5, ha1_sha256=sha, settings={})
    assert repr(user).count(b_sha) == 1
    assert dataclasses.replace(user) == user
    changed = dataclasses.replace(user, settings={**user.settings, "dnd": True})
    assert changed.settings == {**settings, "dnd": True}
    assert pickle.loads(pickle.dumps(user)) == user and copy.deepcopy(user) == user
    assert dataclasses.asdict(user)["settings"] == settings
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(User))
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.number = "1002"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("md5", "sha", "settings"),
    [
        (None, None, {}),
        ("0" * 32, None, {"ha1b_md5": "1" * 32}),  # no SHA-256: kept as given
        ("ABCDEF" + "0" * 26, "f" * 64, {}),  # upper case: kept as text
        ("0" * 31, "f" * 64, {}),  # wrong length
        ("0" * 32, "f" * 64, {"dnd": True, "ha1b_md5": "1" * 32, "ha1b_sha256": "2" * 64}),
        ("0" * 32, "f" * 64, {"ha1b_md5": "1" * 32, "ha1b_sha256": "not hex"}),
        ("0" * 32, "f" * 64, {"ha1b_md5": "1" * 32}),
        ("0" * 32, "f" * 64, {"n": [1, 2.5]}),
    ],
)
def test_user_keeps_what_it_cannot_pack_as_given(
    md5: str | None, sha: str | None, settings: dict[str, object]
) -> None:
    user = _user(ha1_md5=md5, ha1_sha256=sha, settings=settings)
    assert (user.ha1_md5, user.ha1_sha256) == (md5, sha)
    assert user.settings == settings and list(user.settings) == list(settings)


def test_user_shares_repeated_values() -> None:
    first = _user(realm="".join(["pbx.", "test"]), created_at=2.0, updated_at=2.0)
    second = _user(realm="".join(["pbx.", "test"]), nat="".join(["au", "to"]))
    assert first.realm is second.realm and first.nat is second.nat
    assert first.updated_at is first.created_at
    assert _user(updated_at=3.0).updated_at == 3.0
