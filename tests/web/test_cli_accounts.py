"""``sipbox admin passwd`` (straight to the database) and ``sipbox token`` (through the API)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from typer.testing import CliRunner

from sipbox.api.web.accounts import verify_password
from sipbox.cli import app
from sipbox.storage import open_store
from tests.integration.server import make_server

runner = CliRunner()


def _account_hash(state_dir: Path, username: str) -> str | None:
    async def go() -> str | None:
        store = open_store(f"sqlite:///{state_dir}/sipbox.db")
        try:
            account = await store.get_web_admin(username)
            return None if account is None else account.password_hash
        finally:
            await store.close()

    return asyncio.run(go())


def test_admin_passwd_creates_and_changes(tmp_path: Path) -> None:
    state = tmp_path / "var"
    config = tmp_path / "sipbox.toml"
    config.write_text(f'[server]\nstate_dir = "{state}"\n')
    result = runner.invoke(app, ["admin", "passwd", "-c", str(config), "-p", "first-password"])
    assert result.exit_code == 0, result.output
    assert "created web admin admin" in result.output
    first = _account_hash(state, "admin")
    assert first is not None and first.startswith("$argon2id$")
    assert asyncio.run(verify_password(first, "first-password"))

    result = runner.invoke(
        app, ["admin", "passwd", "-c", str(config)], input="second-password\nsecond-password\n"
    )
    assert result.exit_code == 0, result.output
    assert "password changed for web admin admin" in result.output
    assert asyncio.run(verify_password(_account_hash(state, "admin"), "second-password"))

    short = runner.invoke(app, ["admin", "passwd", "-c", str(config), "-p", "short"])
    assert short.exit_code == 1 and "at least 8" in short.output


def test_passwd_before_first_start_means_nothing_is_printed(tmp_path: Path) -> None:
    """An account set up in advance (e.g. by provisioning) is kept: no random password."""
    server = make_server(tmp_path)
    result = runner.invoke(
        app, ["admin", "passwd", "-c", str(server.config_path), "-p", "provisioned-pw"]
    )
    assert result.exit_code == 0, result.output
    server.start()
    try:
        assert "Web admin http" not in server.log_text()
        with httpx.Client(base_url=server.api_url) as browser:
            form = browser.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            done = browser.post(
                "/login",
                data={"username": "admin", "password": "provisioned-pw", "csrf_token": token[1]},
            )
            assert done.status_code == 303
            assert browser.get("/ui/").status_code == 200
    finally:
        server.stop()


def test_token_commands(tmp_path: Path) -> None:
    server = make_server(tmp_path).start()
    try:
        common = ["--api-url", server.api_url, "--token", server.admin_token()]
        created = runner.invoke(app, ["token", "create", "grafana", *common])
        assert created.exit_code == 0, created.output
        token = created.output.strip().splitlines()[-1]
        assert token.startswith("sbx_")
        listed = runner.invoke(app, ["token", "list", "--json", *common])
        assert listed.exit_code == 0, listed.output
        assert '"grafana"' in listed.output and token not in listed.output
        ids = re.findall(r'"id": (\d+),\s+"name": "grafana"', listed.output)
        assert ids
        with httpx.Client(base_url=server.api_url) as http:
            auth = {"Authorization": f"Bearer {token}"}
            assert http.get("/status", headers=auth).status_code == 200
            revoked = runner.invoke(app, ["token", "revoke", ids[0], *common])
            assert revoked.exit_code == 0, revoked.output
            assert "revoked token" in revoked.output
            assert http.get("/status", headers=auth).status_code == 401
        bad = runner.invoke(app, ["token", "create", "x", "--role", "root", *common])
        assert bad.exit_code == 1 and "role" in bad.output
    finally:
        server.stop()
