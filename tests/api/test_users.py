"""``/users``: every CRUD path, every 4xx, hashing, secrecy, bulk speed and atomicity."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from sipbox.sip.digest import compute_ha1
from sipbox.storage.sql import SqlStore
from tests.api.fakes import FakeDirectory, FakeRegistrar

SECRET = "s3cret-Pässword"


async def _create(client: httpx.AsyncClient, number: str = "1001", **fields: object) -> dict:
    response = await client.post("/users", json={"number": number, **fields})
    assert response.status_code == 201, response.text
    return response.json()


# --------------------------------------------------------------------------------- create


async def test_create_hashes_password_for_realm(
    client: httpx.AsyncClient, store: SqlStore, directory: FakeDirectory
) -> None:
    body = await _create(client, "1001", password=SECRET, display_name="Alice")
    assert body["number"] == "1001"
    assert body["display_name"] == "Alice"
    assert body["has_password"] is True
    assert body["password_stale"] is False
    assert body["enabled"] is True
    assert body["registrations"] == 0 and body["reachable"] is False
    stored = await store.get_user_by_number("1001")
    assert stored is not None
    assert stored.realm == "pbx.test"
    assert stored.ha1_md5 == compute_ha1("1001", "pbx.test", SECRET, "MD5")
    assert stored.ha1_sha256 == compute_ha1("1001", "pbx.test", SECRET, "SHA-256")
    # The number@realm variants the authenticator uses for phones sending that username form.
    at = "1001@pbx.test"
    assert stored.settings["ha1b_md5"] == compute_ha1(at, "pbx.test", SECRET, "MD5")
    assert stored.settings["ha1b_sha256"] == compute_ha1(at, "pbx.test", SECRET, "SHA-256")
    assert directory.refreshed == ["1001"]
    assert "1001" in directory.users


async def test_create_returns_location(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json={"number": "alice", "password": "x"})
    assert response.status_code == 201
    assert response.headers["location"] == "/users/alice"


async def test_create_ip_auth_user_without_password(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    body = await _create(
        client,
        "2001",
        ip_auth=["10.0.0.5", "10.0.0.5/32", "192.168.1.77/24", "2001:db8::1"],
        static_contact="10.0.0.5:5070;transport=TCP",
        nat="no",
        class_of_service="international",
        max_contacts=3,
        ring_timeout=30,
        max_calls=2,
        enabled=False,
    )
    assert body["has_password"] is False
    assert body["ip_auth"] == ["10.0.0.5/32", "192.168.1.0/24", "2001:db8::1/128"]
    assert body["static_contact"] == "10.0.0.5:5070;transport=tcp"
    assert (body["nat"], body["class_of_service"]) == ("no", "international")
    assert (body["max_contacts"], body["ring_timeout"], body["max_calls"]) == (3, 30, 2)
    assert body["enabled"] is False
    stored = await store.get_user_by_number("2001")
    assert stored is not None and stored.ha1_md5 is None and stored.realm is None


async def test_create_duplicate_is_409(client: httpx.AsyncClient) -> None:
    await _create(client, "1001", password="a")
    response = await client.post("/users", json={"number": "1001", "password": "b"})
    assert response.status_code == 409
    body = response.json()
    assert body["field"] == "number"
    assert "1001" in body["error"]


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"number": "10 01"}, "number", "not a valid user number"),
        ({"number": ""}, "number", "not a valid user number"),
        ({"number": "a@b"}, "number", "not a valid user number"),
        ({"number": "x" * 65}, "number", "not a valid user number"),
        ({"number": ".."}, "number", "not a valid user number"),
        ({"number": 1001}, "number", "string"),
        ({}, "number", "required"),
        ({"number": "1001", "ip_auth": ["10.0.0.300"]}, "ip_auth", "10.0.0.300"),
        ({"number": "1001", "ip_auth": ["10.0.0.0/33"]}, "ip_auth", "CIDR"),
        ({"number": "1001", "ip_auth": "10.0.0.1"}, "ip_auth", "list"),
        ({"number": "1001", "ip_auth": [5]}, "ip_auth[0]", "string"),
        ({"number": "1001", "static_contact": "10.0.0.5:99999"}, "static_contact", "host:port"),
        ({"number": "1001", "static_contact": "10.0.0.5;transport=sctp"}, "static_contact", "tcp"),
        ({"number": "1001", "static_contact": "fe80::1:5060"}, "static_contact", "host:port"),
        ({"number": "1001", "static_contact": "bad host:5060"}, "static_contact", "host:port"),
        ({"number": "1001", "static_contact": "300.1.1.1:5060"}, "static_contact", "host:port"),
        ({"number": "1001", "static_contact": ""}, "static_contact", "host:port"),
        ({"number": "1001", "nat": "maybe"}, "nat", "auto"),
        ({"number": "1001", "class_of_service": "galactic"}, "class_of_service", "local"),
        ({"number": "1001", "max_contacts": -1}, "max_contacts", "greater than"),
        ({"number": "1001", "ring_timeout": "soon"}, "ring_timeout", "integer"),
        ({"number": "1001", "password": ""}, "password", "at least 1"),
        ({"number": "1001", "enabled": "perhaps"}, "enabled", "boolean"),
        ({"number": "1001", "ipauth": []}, "ipauth", "not a known field"),
        ({"number": "1001", "ha1_md5": "0" * 32}, "ha1_md5", "not a known field"),
    ],
)
async def test_create_invalid_is_422_naming_the_field(
    client: httpx.AsyncClient, payload: dict, field: str, words: str
) -> None:
    response = await client.post("/users", json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field
    assert words.lower() in body["error"].lower()
    assert body["error"].startswith(f"{field}: ")
    assert (await client.get("/users")).json()["total"] == 0


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b"null", b'"1001"', b"\xff\xfe"],
)
async def test_create_with_garbage_body_is_422(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post(
        "/users", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]


@pytest.mark.parametrize("number", ["1001", "alice", "+4930123456", "front.desk", "a_b-c~d*e!"])
async def test_valid_numbers(client: httpx.AsyncClient, number: str) -> None:
    await _create(client, number, password="x")
    assert (await client.get(f"/users/{number}")).status_code == 200


# ------------------------------------------------------------------------------- read


async def test_get_and_404(client: httpx.AsyncClient, registrar: FakeRegistrar) -> None:
    await _create(client, "1001", password="x")
    registrar.add("1001", "sip:1001@192.168.1.20:5060")
    registrar.add("1001", "sip:1001@192.168.1.21:5060")
    body = (await client.get("/users/1001")).json()
    assert body["registrations"] == 2 and body["reachable"] is True
    response = await client.get("/users/9999")
    assert response.status_code == 404
    assert response.json() == {"error": "user '9999' does not exist", "field": "number"}


async def test_list_paginates_with_total(client: httpx.AsyncClient) -> None:
    for n in range(1001, 1026):
        await _create(client, str(n))
    page = (await client.get("/users", params={"limit": 10, "offset": 20})).json()
    assert page["total"] == 25
    assert (page["limit"], page["offset"]) == (10, 20)
    assert [u["number"] for u in page["users"]] == [str(n) for n in range(1021, 1026)]
    default = (await client.get("/users")).json()
    assert len(default["users"]) == 25


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 100000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "many"}, "limit"),
    ],
)
async def test_list_bad_paging_is_422(client: httpx.AsyncClient, params: dict, field: str) -> None:
    response = await client.get("/users", params=params)
    assert response.status_code == 422
    assert response.json()["field"] == field


async def test_without_registrar_live_fields_are_null(
    client: httpx.AsyncClient, server: object
) -> None:
    server.registrar = None  # type: ignore[attr-defined]
    await _create(client, "1001")
    body = (await client.get("/users/1001")).json()
    assert body["registrations"] is None and body["reachable"] is None


# ------------------------------------------------------------------------------ update


async def test_patch_changes_only_given_fields(
    client: httpx.AsyncClient, directory: FakeDirectory
) -> None:
    await _create(client, "1001", password="x", display_name="Alice", max_calls=2)
    response = await client.patch(
        "/users/1001", json={"display_name": "Alice B", "ip_auth": ["10.1.1.1"], "max_calls": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["display_name"] == "Alice B"
    assert body["ip_auth"] == ["10.1.1.1/32"]
    assert body["max_calls"] is None
    assert body["has_password"] is True
    assert directory.refreshed == ["1001", "1001"]
    assert directory.users["1001"].display_name == "Alice B"


async def test_patch_password_set_and_remove(client: httpx.AsyncClient, store: SqlStore) -> None:
    await _create(client, "1001", password="old")
    await client.patch("/users/1001", json={"password": "new"})
    stored = await store.get_user_by_number("1001")
    assert stored is not None
    assert stored.ha1_md5 == compute_ha1("1001", "pbx.test", "new", "MD5")
    body = (await client.patch("/users/1001", json={"password": None})).json()
    assert body["has_password"] is False
    stored = await store.get_user_by_number("1001")
    assert stored is not None and stored.ha1_md5 is None and stored.ha1_sha256 is None
    assert "ha1b_md5" not in stored.settings and "ha1b_sha256" not in stored.settings


async def test_patch_disable_refreshes_directory(
    client: httpx.AsyncClient, directory: FakeDirectory
) -> None:
    await _create(client, "1001", password="x")
    await client.patch("/users/1001", json={"enabled": False})
    assert directory.users["1001"].enabled is False


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"number": "1002"}, "number"),
        ({"nat": None}, None),
        ({"enabled": None}, None),
        ({"ip_auth": ["nonsense"]}, "ip_auth"),
        ({"static_contact": "::1"}, "static_contact"),
        ({"max_contacts": 1.5}, "max_contacts"),
    ],
)
async def test_patch_invalid_is_422(
    client: httpx.AsyncClient, payload: dict, field: str | None
) -> None:
    await _create(client, "1001", password="x")
    response = await client.patch("/users/1001", json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    if field is not None:
        assert body["field"] == field
    else:
        assert "may not be null" in body["error"]


async def test_patch_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch("/users/9999", json={"display_name": "x"})
    assert response.status_code == 404
    assert "9999" in response.json()["error"]


async def test_patch_empty_body_changes_nothing(client: httpx.AsyncClient) -> None:
    before = await _create(client, "1001", password="x")
    after = (await client.patch("/users/1001", json={})).json()
    assert after == before


async def test_password_stale_after_domain_change(
    client: httpx.AsyncClient, server: object
) -> None:
    await _create(client, "1001", password="x")
    await _create(client, "1002")
    server.domain = "new.example"  # type: ignore[attr-defined]
    assert (await client.get("/users/1001")).json()["password_stale"] is True
    assert (await client.get("/users/1002")).json()["password_stale"] is False
    body = (await client.patch("/users/1001", json={"password": "y"})).json()
    assert body["password_stale"] is False


# ------------------------------------------------------------------------------ delete


async def test_delete_removes_user_bindings_and_directory_entry(
    client: httpx.AsyncClient, directory: FakeDirectory, registrar: FakeRegistrar
) -> None:
    await _create(client, "1001", password="x")
    registrar.add("1001", "sip:1001@192.168.1.20:5060")
    response = await client.delete("/users/1001")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get("/users/1001")).status_code == 404
    assert directory.forgotten == ["1001"]
    assert registrar.removed == [("1001", None)]
    assert registrar.count() == 0
    assert (await client.delete("/users/1001")).status_code == 404


# -------------------------------------------------------------------------------- bulk


async def test_bulk_creates_2000_users_quickly(client: httpx.AsyncClient, store: SqlStore) -> None:
    users = [
        {"number": str(100000 + i), "password": f"pw{i}", "display_name": f"User {i}"}
        for i in range(2000)
    ]
    started = time.perf_counter()
    response = await client.post("/users/bulk", json={"users": users})
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text[:500]
    body = response.json()
    assert body["created"] == 2000
    assert body["numbers"][:2] == ["100000", "100001"]
    assert elapsed < 3.0, f"bulk create of 2000 users took {elapsed:.2f}s"
    assert await store.count_users() == 2000
    sample = await store.get_user_by_number("101234")
    assert sample is not None
    assert sample.ha1_sha256 == compute_ha1("101234", "pbx.test", "pw1234", "SHA-256")


async def test_bulk_is_all_or_nothing_and_names_duplicates(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    await _create(client, "1003")
    await _create(client, "1007")
    users = [{"number": str(n)} for n in range(1000, 1010)]
    response = await client.post("/users/bulk", json={"users": users})
    assert response.status_code == 409
    error = response.json()["error"]
    assert "1003" in error and "1007" in error and "1004" not in error
    assert await store.count_users() == 2


async def test_bulk_repeated_number_in_batch_is_409(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users/bulk", json={"users": [{"number": "1"}, {"number": "2"}, {"number": "1"}]}
    )
    assert response.status_code == 409
    assert "1" in response.json()["error"]


async def test_bulk_invalid_entry_names_its_index(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    users = [{"number": "1001"}, {"number": "1002", "ip_auth": ["1.2.3.4/40"]}]
    response = await client.post("/users/bulk", json={"users": users})
    assert response.status_code == 422
    assert response.json()["field"] == "users[1].ip_auth"
    assert await store.count_users() == 0


@pytest.mark.parametrize("payload", [{"users": []}, {}, {"users": "x"}, [{"number": "1"}]])
async def test_bulk_bad_shape_is_422(client: httpx.AsyncClient, payload: object) -> None:
    response = await client.post("/users/bulk", json=payload)
    assert response.status_code == 422


# ------------------------------------------------------------------------------ secrecy


async def test_password_and_hashes_never_appear_in_any_response(
    client: httpx.AsyncClient, store: SqlStore, registrar: FakeRegistrar
) -> None:
    password = "Unique-Pa55word-XYZ"
    seen: list[str] = []
    seen.append((await client.post("/users", json={"number": "1001", "password": password})).text)
    seen.append(
        (
            await client.post(
                "/users/bulk", json={"users": [{"number": "1002", "password": password}]}
            )
        ).text
    )
    seen.append((await client.patch("/users/1001", json={"password": password})).text)
    seen.append((await client.post("/users", json={"number": "1001", "password": password})).text)
    seen.append((await client.post("/users", json={"number": "1 1", "password": password})).text)
    registrar.add("1001", "sip:1001@10.0.0.1")
    for path in ("/users", "/users/1001", "/users/1002", "/registrations", "/status"):
        seen.append((await client.get(path)).text)
    stored = await store.get_user_by_number("1001")
    assert stored is not None and stored.ha1_md5 and stored.ha1_sha256
    for text in seen:
        assert password not in text
        assert stored.ha1_md5 not in text
        assert stored.ha1_sha256 not in text
        assert stored.settings["ha1b_md5"] not in text
        assert not _keys(json.loads(text)) & {"password", "ha1_md5", "ha1_sha256", "realm"}


def _keys(value: object) -> set[str]:
    """Every object key anywhere in a decoded JSON document."""
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()
