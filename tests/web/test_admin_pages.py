"""The web admin in a real browser against a real server (issue 7, "How it is tested").

One walk through the pages, as an administrator would: log in with the password the server
printed at its first start, add a user, watch it register (SIPp REGISTER), see a ban appear
after a burst of wrong passwords from another address and lift it, create an API token, look
at every page. A screenshot of each page goes to ``test-artifacts/web/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from sipbox.api.web.nav import NAV
from tests.conftest import require_tool
from tests.integration.regtools import DigestUA, injection, run_sipp
from tests.integration.server import RunningServer, make_server

pytestmark = pytest.mark.interop

TIMEOUT_MS = 10_000


def _printed_password(server: RunningServer) -> str:
    found = re.search(r"Web admin .*\n\s+user: admin\n\s+password: (\S+)", server.log_text())
    assert found is not None, server.log_text()[-3000:]
    return found[1]


def _shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def _attacker_host(server: RunningServer) -> str:
    last = int(server.host.rsplit(".", 1)[1])
    return f"127.0.0.{251 if last != 251 else 252}"


def test_admin_walkthrough(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    require_tool("sipp")
    server = make_server(tmp_path).start()
    base = server.api_url
    try:
        password = _printed_password(server)
        # Printed once: a restart does not print (or change) it again.
        server.restart()
        assert server.log_text().count("Web admin http") == 1
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())

        # -- login (an anonymous browser is sent to the login page first)
        page.goto(f"{base}/ui/users")
        assert "/login" in page.url
        _shot(page, artifacts, "00-login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        assert "Wrong user name or password" in page.content()
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/ui/users")
        assert page.inner_text("h1") == "Users"

        # -- add a user through the form, then see a form error from the API
        page.fill("#add-user input[name=number]", "2001")
        page.fill("#add-user input[name=display_name]", "Reception")
        page.fill("#add-user input[name=password]", "pw-2001-secret")
        page.click("#add-user button[type=submit]")
        row = page.locator("tr[data-number='2001']")
        row.wait_for()
        assert "not registered" in row.inner_text()
        page.fill("#add-user input[name=number]", "2001")
        page.click("#add-user button[type=submit]")
        page.locator("#add-user .form-error", has_text="already exists").wait_for()

        # -- the phone registers (SIPp): the row turns "registered" by itself
        csv = tmp_path / "user.csv"
        csv.write_text(injection([("2001", "pw-2001-secret")]))
        proc = run_sipp(
            server, "register_auth.xml", csv=csv, calls=1, rate=1, extra=["-set", "expires", "300"]
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        row.locator(".state", has_text="registered (1)").wait_for()
        assert "udp:127.0.0.1:" in row.locator(".sources").inner_text()
        _shot(page, artifacts, "02-users")

        page.click("tr[data-number='2001'] a >> text=Edit")
        page.wait_for_url(f"{base}/ui/users/2001")
        page.fill("#edit-user input[name=ip_auth]", "10.0.0.300")
        page.click("#edit-user button[type=submit]")
        page.locator("#edit-user .form-error", has_text="10.0.0.300").wait_for()
        page.fill("#edit-user input[name=ip_auth]", "192.0.2.10")
        page.click("#edit-user button[type=submit]")
        page.wait_for_load_state()
        page.locator("#edit-user input[name=ip_auth][value='192.0.2.10/32']").wait_for()
        _shot(page, artifacts, "03-user")

        # -- a burst of wrong passwords from another address gets it banned
        attacker = _attacker_host(server)
        ua = DigestUA(server, "2001", "wrong-password", attacker)
        try:
            for _ in range(8):
                try:
                    ua.register()
                except (TimeoutError, OSError):
                    break  # banned: no answer any more
        finally:
            ua.close()
        page.goto(f"{base}/ui/security")
        ban_row = page.locator(f"#bans tr[data-source='{attacker}']")
        ban_row.wait_for()
        assert "auth-failures" in ban_row.inner_text()
        _shot(page, artifacts, "04-security")
        ban_row.locator("button", has_text="Unban").click()
        page.wait_for_load_state()
        page.locator("#bans", has_text="No address is banned").wait_for()
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        assert httpx.get(f"{base}/bans", headers=headers).json()["total"] == 0

        # -- white list: add and see it listed
        page.fill("#add-whitelist input[name=network]", "192.0.2.0/24")
        page.fill("#add-whitelist input[name=note]", "office")
        page.click("#add-whitelist button[type=submit]")
        page.locator("#whitelist", has_text="192.0.2.0/24").wait_for()

        # -- an API token, shown once, works at once
        page.goto(f"{base}/ui/tokens")
        page.fill("#add-token input[name=name]", "grafana")
        page.click("#add-token button[type=submit]")
        shown = page.locator("#new-token [data-field=token]")
        shown.wait_for()
        token = shown.inner_text().strip()
        assert token.startswith("sbx_")
        status = httpx.get(f"{base}/status", headers={"Authorization": f"Bearer {token}"})
        assert status.status_code == 200
        _shot(page, artifacts, "05-tokens")

        # -- web admins: add one (password made up, shown once), reset it, delete it; the
        # last account has no Delete button (and the API refuses it)
        page.goto(f"{base}/ui/admins")
        assert page.locator("tr[data-admin='admin'] button", has_text="Delete").count() == 0
        page.fill("#add-admin input[name=username]", "alice")
        page.click("#add-admin button[type=submit]")
        made = page.locator("#new-password [data-field=password]")
        made.wait_for()
        assert len(made.inner_text().strip()) >= 16
        _shot(page, artifacts, "06-admins")
        page.goto(f"{base}/ui/admins")
        page.locator("tr[data-admin='alice'] button", has_text="Reset password").click()
        page.locator("#new-password [data-field=username]", has_text="alice").wait_for()
        assert made.inner_text().strip()
        page.goto(f"{base}/ui/admins")
        page.locator("tr[data-admin='alice'] button", has_text="Delete").click()
        page.locator("tr[data-admin='alice']").wait_for(state="detached")
        assert page.locator("tr[data-admin='admin'] button", has_text="Delete").count() == 0

        # -- every page of the menu renders; the dashboard shows /status's numbers
        for index, item in enumerate(NAV):
            page.goto(f"{base}{item.path}")
            assert page.inner_text("h1") == item.label
            slug = item.path.strip("/").replace("ui/", "").replace("/", "-") or "dashboard"
            _shot(page, artifacts, f"1{index:02d}-{slug}")
        page.goto(f"{base}/ui/")
        assert page.inner_text("[data-live='counts.registrations']") == str(
            status.json()["counts"]["registrations"]
        )

        # -- log out: the pages need a new login
        page.click("header button", timeout=TIMEOUT_MS)
        page.wait_for_url(re.compile(r".*/login$"))
        page.goto(f"{base}/ui/")
        assert "/login" in page.url
        context.close()
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-4000:]
