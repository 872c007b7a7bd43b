"""The administrative CLI against a real API listener (uvicorn on 127.0.0.x in a thread).

Why a thread: the CLI is synchronous (it blocks in httpx), so the server must run on another
event loop; a thread keeps it in-process (fast, no subprocess start-up) while still exercising
the real socket, `start_api`, `ensure_admin_token` and the config-file look-up of the CLI.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sipbox.api import ensure_admin_token, hash_token, start_api
from sipbox.cli import app
from sipbox.config import load_settings
from sipbox.storage import open_store
from tests.api.fakes import FakeDirectory, FakeRegistrar, FakeServer
from tests.conftest import free_port, loopback_host

READER = "sbx_cli-reader"


@dataclass
class LiveApi:
    """A running API: its URL, the admin token, and a config file that points at both."""

    url: str
    token: str
    config: Path


@pytest.fixture
def live_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveApi]:
    for name in ("SIPBOX_API_URL", "SIPBOX_TOKEN", "SIPBOX_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    host = loopback_host()
    port = free_port(host, "tcp")
    state_dir = tmp_path / "var"
    config = tmp_path / "sipbox.toml"
    config.write_text(
        f'[server]\nstate_dir = "{state_dir}"\n\n[api]\nlisten = "{host}:{port}"\n'
        '\n[sip]\ndomain = "pbx.test"\n'
    )
    ready = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        box["stop"] = lambda: loop.call_soon_threadsafe(stop.set)
        store = open_store(str(tmp_path / "sipbox.db"))
        try:
            await store.migrate()
            box["token"] = await ensure_admin_token(store, state_dir)
            await store.create_api_token("reader", hash_token(READER), "read-only")
            registrar = FakeRegistrar()
            registrar.add("1001", "sip:1001@192.168.1.20:5062", user_agent="Yealink T46U")
            context = FakeServer(store=store, users=FakeDirectory(store), registrar=registrar)
            handle = await start_api(context, load_settings(config, {}))
            box["url"] = handle.url
            ready.set()
            await stop.wait()
            await handle.stop()
        except BaseException as exc:
            box["error"] = exc
            ready.set()
        finally:
            await store.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(15), "API did not start"
    if "error" in box:
        raise AssertionError(f"API failed to start: {box['error']!r}")
    try:
        yield LiveApi(url=str(box["url"]), token=str(box["token"]), config=config)
    finally:
        box["stop"]()  # type: ignore[operator]
        thread.join(10)


def run(live: LiveApi, *args: str, input: str | None = None, auth: bool = True):  # type: ignore[no-untyped-def]
    """Invoke ``sipbox ARGS`` with the live API's config file (URL and token from it)."""
    extra = ["--config", str(live.config)] if auth else []
    return CliRunner().invoke(app, [*args, *extra], input=input, env={"COLUMNS": "200"})


def run_json(live: LiveApi, *args: str, input: str | None = None) -> object:
    result = run(live, *args, "--json", input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_user_add_list_show_passwd_rm(live_api: LiveApi) -> None:
    created = run_json(live_api, "user", "add", "1001", "--password", "pw", "--name", "Alice")
    assert isinstance(created, dict)
    assert created["number"] == "1001" and created["display_name"] == "Alice"
    assert created["has_password"] is True and "password" not in created
    assert created["registrations"] == 1 and created["reachable"] is True

    listed = run_json(live_api, "user", "list")
    assert isinstance(listed, dict) and listed["total"] == 1
    table = run(live_api, "user", "list")
    assert table.exit_code == 0, table.output
    assert "1001" in table.stdout and "Alice" in table.stdout and "1 of 1 user" in table.stdout

    shown = run(live_api, "user", "show", "1001")
    assert shown.exit_code == 0 and "Alice" in shown.stdout

    changed = run_json(live_api, "user", "passwd", "1001", "--password", "new")
    assert isinstance(changed, dict) and changed["has_password"] is True

    removed = run(live_api, "user", "rm", "1001")
    assert removed.exit_code == 0 and "deleted user 1001" in removed.stdout
    gone = run(live_api, "user", "show", "1001")
    assert gone.exit_code == 1
    assert "404" in gone.stderr and "does not exist" in gone.stderr


def test_user_add_prompts_for_the_password(live_api: LiveApi) -> None:
    result = run(live_api, "user", "add", "1002", input="secret\nsecret\n")
    assert result.exit_code == 0, result.output
    assert "created user 1002" in result.stdout
    assert "secret" not in result.stdout
    shown = run_json(live_api, "user", "show", "1002")
    assert isinstance(shown, dict) and shown["has_password"] is True


def test_user_add_ip_auth_without_password(live_api: LiveApi) -> None:
    created = run_json(
        live_api,
        "user",
        "add",
        "2001",
        "--no-password",
        "--ip-auth",
        "10.0.0.5",
        "--ip-auth",
        "10.0.1.0/24",
        "--contact",
        "10.0.0.5:5060;transport=tcp",
    )
    assert isinstance(created, dict)
    assert created["has_password"] is False
    assert created["ip_auth"] == ["10.0.0.5/32", "10.0.1.0/24"]
    assert created["static_contact"] == "10.0.0.5:5060;transport=tcp"


def test_user_add_errors_name_the_problem(live_api: LiveApi) -> None:
    run_json(live_api, "user", "add", "1001", "-p", "x")
    duplicate = run(live_api, "user", "add", "1001", "-p", "x")
    assert duplicate.exit_code == 1
    assert "409" in duplicate.stderr and "already exists" in duplicate.stderr
    bad = run(live_api, "user", "add", "1003", "--no-password", "--ip-auth", "10.0.0.300")
    assert bad.exit_code == 1
    assert "ip_auth" in bad.stderr and "10.0.0.300" in bad.stderr
    both = run(live_api, "user", "add", "1004", "-p", "x", "--no-password")
    assert both.exit_code == 2


def test_reg_list_and_rm(live_api: LiveApi) -> None:
    listed = run_json(live_api, "reg", "list")
    assert isinstance(listed, dict) and listed["total"] == 1
    (reg,) = listed["registrations"]
    assert reg["contact"] == "sip:1001@192.168.1.20:5062"
    table = run(live_api, "reg", "list", "--user", "1001")
    assert table.exit_code == 0 and "Yealink T46U" in table.stdout
    removed = run_json(live_api, "reg", "rm", "1001")
    assert removed == {"removed": 1}
    assert run_json(live_api, "reg", "list") == {"total": 0, "registrations": []}


def test_status(live_api: LiveApi) -> None:
    body = run_json(live_api, "status")
    assert isinstance(body, dict)
    assert body["domain"] == "pbx.test" and body["counts"]["registrations"] == 1
    table = run(live_api, "status")
    assert table.exit_code == 0
    assert "pbx.test" in table.stdout and "udp:127.0.0.1:5060" in table.stdout


def test_explicit_url_and_token_override_the_config(live_api: LiveApi) -> None:
    args = ["status", "--json", "--api-url", live_api.url, "--token", live_api.token]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    env = {"SIPBOX_API_URL": live_api.url, "SIPBOX_TOKEN": live_api.token}
    result = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output


def test_wrong_and_read_only_tokens(live_api: LiveApi) -> None:
    wrong = CliRunner().invoke(app, ["status", "--api-url", live_api.url, "--token", "nope"])
    assert wrong.exit_code == 1
    assert "401" in wrong.stderr and "--token" in wrong.stderr
    reader = ["--api-url", live_api.url, "--token", READER]
    assert CliRunner().invoke(app, ["user", "list", *reader]).exit_code == 0
    denied = CliRunner().invoke(app, ["user", "add", "5", "--no-password", *reader])
    assert denied.exit_code == 1 and "403" in denied.stderr


def test_no_server_is_a_clear_error() -> None:
    host = loopback_host()
    url = f"http://{host}:{free_port(host, 'tcp')}"
    result = CliRunner().invoke(app, ["status", "--api-url", url, "--token", "x"])
    assert result.exit_code == 1
    assert "cannot reach the sipbox API" in result.stderr


def test_show_tables(live_api: LiveApi) -> None:
    """Print the human output once (visible with ``pytest -s``) and check it has no markup."""
    run_json(live_api, "user", "add", "1001", "-p", "x", "--name", "Alice", "--ip-auth", "10.0.0.5")
    for args in (("user", "list"), ("user", "show", "1001"), ("reg", "list"), ("status",)):
        result = run(live_api, *args)
        assert result.exit_code == 0, result.output
        assert "[/" not in result.stdout  # Rich markup rendered, not printed
        print(result.stdout)
