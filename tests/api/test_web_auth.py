"""Web admin authentication: login, session cookie flags, CSRF, lock-out, logout, pages.

The API tests' app and store are reused; a web admin account is added per test. Password
hashing is real argon2 (a few logins per test keep this fast enough).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from sipbox.api.web import LoginLimiter, SessionStore, hash_password
from sipbox.api.web.accounts import ensure_web_admin, verify_password
from sipbox.api.web.nav import NAV
from sipbox.api.web.pages import masked_settings
from sipbox.config import load_settings
from sipbox.storage.sql import SqlStore
from tests.api.conftest import ADMIN_TOKEN

PASSWORD = "correct horse battery"


@pytest.fixture
async def admin(store: SqlStore) -> str:
    await store.create_web_admin("admin", hash_password(PASSWORD))
    return "admin"


def _client(api: FastAPI, source: str = "192.0.2.50", scheme: str = "http") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=api, client=(source, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://admin.test")


@pytest.fixture
async def browser(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(api) as client:
        yield client


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """What a browser does: fetch the form (sets the login CSRF cookie), post it back."""
    form = await client.get("/login")
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token[1], "next": "/ui/"},
    )


async def csrf_of(client: httpx.AsyncClient, page: str = "/ui/") -> str:
    response = await client.get(page)
    assert response.status_code == 200, response.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.text)
    assert found is not None and found[1]
    return found[1]


async def test_anonymous_browser_is_sent_to_login(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/ui/users?offset=0")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/ui/users%3Foffset%3D0"
    page = await browser.get("/login")
    assert page.status_code == 200
    assert 'name="password"' in page.text
    assert (await browser.get("/static/admin.js")).status_code == 200  # public too
    assert (await browser.get("/static/admin.css")).headers["content-type"].startswith("text/css")
    assert (await browser.get("/static/../auth.py")).status_code in (401, 404)


async def test_login_sets_a_strict_http_only_session(
    browser: httpx.AsyncClient, admin: str
) -> None:
    response = await login(browser, admin, PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "sipbox_session" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert (await browser.get("/ui/")).status_code == 200
    assert (await browser.get("/users")).status_code == 200  # the API accepts the session


async def test_cookie_is_secure_over_https(api: FastAPI, admin: str) -> None:
    async with _client(api, scheme="https") as client:
        response = await login(client, admin, PASSWORD)
        cookie = response.headers.get_list("set-cookie")
        assert any("sipbox_session" in c and "Secure" in c for c in cookie)


@pytest.mark.parametrize(("username", "password"), [("admin", "wrong"), ("nobody", PASSWORD)])
async def test_wrong_credentials_one_message(
    browser: httpx.AsyncClient, admin: str, username: str, password: str
) -> None:
    response = await login(browser, username, password)
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert "sipbox_session" not in response.headers.get("set-cookie", "")
    assert (await browser.get("/users")).status_code == 401


async def test_login_form_needs_its_csrf_token(browser: httpx.AsyncClient, admin: str) -> None:
    await browser.get("/login")
    response = await browser.post(
        "/login", data={"username": admin, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 400
    assert (await browser.get("/users")).status_code == 401


async def test_login_never_redirects_off_site(browser: httpx.AsyncClient, admin: str) -> None:
    form = await browser.get("/login?next=//evil.example/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    response = await browser.post(
        "/login",
        data={
            "username": admin,
            "password": PASSWORD,
            "csrf_token": token[1],
            "next": "https://evil.example/",
        },
    )
    assert response.headers["location"] == "/ui/"


async def test_session_writes_need_the_csrf_header(browser: httpx.AsyncClient, admin: str) -> None:
    await login(browser, admin, PASSWORD)
    csrf = await csrf_of(browser)
    body = {"number": "1001", "password": "pw"}
    missing = await browser.post("/users", json=body)
    assert missing.status_code == 403
    assert "CSRF" in missing.json()["error"]
    wrong = await browser.post("/users", json=body, headers={"X-CSRF-Token": "x" + csrf})
    assert wrong.status_code == 403
    assert (await browser.delete("/users/1001")).status_code == 403
    ok = await browser.post("/users", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    # Reads need no CSRF token; a bearer token needs none either (no cookie, no CSRF risk).
    assert (await browser.get("/users/1001")).status_code == 200


async def test_bearer_requests_need_no_csrf(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json={"number": "1002", "password": "pw"})
    assert response.status_code == 201


async def test_logout_ends_the_session(browser: httpx.AsyncClient, admin: str) -> None:
    await login(browser, admin, PASSWORD)
    csrf = await csrf_of(browser)
    cookie = browser.cookies.get("sipbox_session")
    assert (await browser.post("/logout")).status_code == 403  # CSRF applies to logout too
    assert (await browser.post("/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
    # Even a client that kept the old cookie is out.
    browser.cookies.set("sipbox_session", cookie or "", domain="admin.test")
    assert (await browser.get("/users")).status_code == 401
    assert (await browser.get("/ui/")).status_code == 303


async def test_lock_out_is_per_source_address(api: FastAPI, admin: str, store: SqlStore) -> None:
    async with _client(api, source="198.51.100.9") as attacker:
        for _ in range(5):
            assert (await login(attacker, admin, "guess")).status_code == 401
        locked = await login(attacker, admin, PASSWORD)  # even the right password
        assert locked.status_code == 429
        assert "Too many failed logins" in locked.text
        assert (await attacker.get("/users")).status_code == 401
    # The administrator elsewhere is not locked out: the account itself never is.
    async with _client(api, source="192.0.2.77") as office:
        assert (await login(office, admin, PASSWORD)).status_code == 303
    events = await store.list_security_events()
    assert [(e.kind, e.source) for e in events] == [("web-lockout", "198.51.100.9")]


def test_limiter_window_and_expiry() -> None:
    now = [1000.0]
    limiter = LoginLimiter(max_failures=3, window=60, lockout=600, clock=lambda: now[0])
    assert not limiter.failed("a")
    now[0] += 61  # the first failure left the window
    assert not limiter.failed("a")
    assert not limiter.failed("a")
    assert limiter.locked_for("a") == 0
    assert limiter.failed("a")  # third within the window
    assert limiter.locked_for("a") == 600
    limiter.succeeded("a")  # a success while locked does not unlock
    assert limiter.locked_for("a") == 600
    now[0] += 600
    assert limiter.locked_for("a") == 0
    limiter.succeeded("a")
    assert limiter.locked_for("b") == 0


def test_limiter_is_bounded() -> None:
    limiter = LoginLimiter(max_failures=5, max_sources=100, clock=lambda: 0.0)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._records) <= 100


def test_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    sessions = SessionStore(lifetime=100, max_sessions=3, clock=lambda: now[0])
    cookie, session = sessions.create("admin")
    assert sessions.lookup(cookie) == session
    assert sessions.lookup(cookie + "x") is None
    now[0] = 100
    assert sessions.lookup(cookie) is None
    cookies = [sessions.create("admin")[0] for _ in range(5)]
    assert len(sessions) == 3
    assert sessions.lookup(cookies[0]) is None and sessions.lookup(cookies[-1]) is not None
    assert sessions.end_user("admin") == 3


async def test_every_page_renders(browser: httpx.AsyncClient, admin: str, client) -> None:  # type: ignore[no-untyped-def]
    await client.post("/users", json={"number": "1001", "password": "pw", "ip_auth": ["10.0.0.5"]})
    await login(browser, admin, PASSWORD)
    for item in NAV:
        response = await browser.get(item.path)
        assert response.status_code == 200, (item.path, response.text[:500])
        assert f"<h1>{item.label}</h1>" in response.text
        assert 'aria-current="page"' in response.text
    user = await browser.get("/ui/users/1001")
    assert user.status_code == 200 and "10.0.0.5/32" in user.text
    assert (await browser.get("/ui/users/9999")).status_code == 404


async def test_first_admin_account(store: SqlStore) -> None:
    password = await ensure_web_admin(store)
    assert password is not None and len(password) >= 16
    (account,) = await store.list_web_admins()
    assert account.username == "admin"
    assert account.password_hash.startswith("$argon2id$")
    assert await verify_password(account.password_hash, password)
    assert not await verify_password(account.password_hash, password + "x")
    assert not await verify_password(None, password)
    assert await ensure_web_admin(store) is None  # printed once only


def test_settings_page_masks_secrets() -> None:
    settings = load_settings(
        None,
        {
            "SIPBOX_DATABASE_URL": "postgresql://sipbox:hunter2@db.example/sipbox",
            "SIPBOX_SIP_DOMAIN": "pbx.example.com",
        },
    )
    sections = dict(masked_settings(settings))
    shown = " ".join(v for rows in sections.values() for _, v in rows)
    assert "hunter2" not in shown
    assert "postgresql://sipbox:********@db.example/sipbox" in shown
    assert ("domain", "pbx.example.com") in sections["sip"]


async def test_token_and_session_on_the_same_api(browser: httpx.AsyncClient, admin: str) -> None:
    """A page's token is for that browser only: a bearer token does not need it and a
    session does not accept a bearer-style header as CSRF."""
    await login(browser, admin, PASSWORD)
    response = await browser.post(
        "/users",
        json={"number": "1003"},
        headers={"X-CSRF-Token": ADMIN_TOKEN},
    )
    assert response.status_code == 403
