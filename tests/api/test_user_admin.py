"""The user service and its validators, without HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sipbox.pbx.user_admin import (
    UserAdmin,
    UserFieldError,
    check_number,
    normalise_ip_auth,
    normalise_static_contact,
    stale_realm_users,
    warn_stale_realm_users,
)
from sipbox.sip.digest import compute_ha1
from sipbox.storage import NotFound
from sipbox.storage.sql import SqlStore
from tests.api.fakes import FakeRegistrar, PlainDirectory


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("10.0.0.5:5060", "10.0.0.5:5060"),
        ("10.0.0.5", "10.0.0.5:5060"),
        ("10.0.0.5;transport=tls", "10.0.0.5:5061;transport=tls"),
        ("10.0.0.5:5080;transport=UDP", "10.0.0.5:5080"),
        ("sip:pbx.example.com:5070;transport=tcp", "pbx.example.com:5070;transport=tcp"),
        ("[2001:db8::1]:5060", "[2001:db8::1]:5060"),
        ("[2001:db8::1]", "[2001:db8::1]:5060"),
    ],
)
def test_static_contact_canonical(text: str, canonical: str) -> None:
    assert normalise_static_contact(text) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":5060",
        "10.0.0.5:0",
        "10.0.0.5:abc",
        "10.0.0.5;lr",
        "[::1",
        "[nothex]:5060",
        "2001:db8::1",
        "10.0.0.5:5060;transport=",
        "-bad-.example:5060",
        "1.2.3:5060",
    ],
)
def test_static_contact_rejected(text: str) -> None:
    with pytest.raises(UserFieldError) as info:
        normalise_static_contact(text)
    assert info.value.field == "static_contact"


def test_ip_auth_normalised_and_bounded() -> None:
    assert normalise_ip_auth(["10.0.0.5", " 10.0.0.5/32 ", "::1"]) == ("10.0.0.5/32", "::1/128")
    with pytest.raises(UserFieldError):
        normalise_ip_auth([f"10.0.{i}.0/24" for i in range(65)])
    with pytest.raises(UserFieldError):
        normalise_ip_auth("10.0.0.1")


@pytest.mark.parametrize("number", ["", " ", "1001 ", "a:b", "a;b", "a/b", "a?b", ".", "-1", "é"])
def test_bad_numbers(number: str) -> None:
    with pytest.raises(UserFieldError):
        check_number(number)


async def test_service_fallback_refresh_and_delete(store: SqlStore) -> None:
    directory = PlainDirectory(store)
    registrar = FakeRegistrar()
    admin = UserAdmin(store, "pbx.test", directory, registrar)
    await admin.create_many([("1", {"password": "a"}), ("2", {})])
    assert directory.refreshed == ["1", "2"]
    user = await admin.set_password("2", "b")
    assert user.ha1_md5 == compute_ha1("2", "pbx.test", "b", "MD5")
    await admin.delete("1")
    assert directory.forgotten == ["1"] and registrar.removed == [("1", None)]
    with pytest.raises(NotFound):
        await admin.update("1", {"display_name": "x"})
    with pytest.raises(UserFieldError) as info:
        await admin.update("2", {"number": "3"})
    assert info.value.field == "number"


async def test_service_works_without_sip_side(store: SqlStore) -> None:
    admin = UserAdmin(store, "pbx.test")
    await admin.create("1001", {"password": "x"})
    await admin.delete("1001")
    assert await store.get_user_by_number("1001") is None


async def test_stale_realm_users_and_warning(
    tmp_path: Path, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    old = UserAdmin(store, "old.example")
    await old.create_many([(str(n), {"password": "pw"}) for n in range(100, 130)])
    await old.create("nopass", {})
    new = UserAdmin(store, "new.example")
    await new.create("fresh", {"password": "pw"})
    stale = await stale_realm_users(store, "new.example", page=7)
    assert [u.number for u in stale] == [str(n) for n in range(100, 130)]
    assert await stale_realm_users(store, "old.example") == [
        await store.get_user_by_number("fresh")
    ]
    with caplog.at_level(logging.WARNING):
        numbers = await warn_stale_realm_users(store, "new.example")
    assert len(numbers) == 30
    (record,) = caplog.records
    message = record.getMessage()
    assert "30 user(s)" in message and "new.example" in message
    assert "100, 101" in message and "and 10 more" in message
    caplog.clear()
    assert await warn_stale_realm_users(store, "old.example", show=5) == ["fresh"]
