"""The real attack tools against the real server, on loopback only (issue 6, "How it is tested").

sipvicious 0.3.x ignores ``-b`` in svwar and svcrack, so those always send from 127.0.0.1
(the kernel's source for a loopback destination); the server under test therefore sits on a
random 127.0.0.x and legitimate phones use yet other 127.0.0.y addresses. Every tool runs
under `timeout` with ``--maximumtime`` so a silent (banned) server ends it in seconds.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sipbox.cli import app as cli
from sipbox.sip.message import Response
from sipbox.sip.parser import parse_message
from tests.conftest import require_tool
from tests.integration.regtools import DigestUA, digest_user, provision
from tests.integration.server import RunningServer, make_server

pytestmark = pytest.mark.interop

BENCH = Path(__file__).resolve().parents[2] / "bench"
PASSWORD = "tr0ub4dor&3"  # position 20 of the dictionary


def _hosts(n: int, avoid: str) -> list[str]:
    """n distinct 127.0.0.x addresses, none of them the server's or 127.0.0.1."""
    pool = [f"127.0.0.{i}" for i in range(2, 251) if f"127.0.0.{i}" != avoid]
    return random.sample(pool, n)


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.api_url,
        headers={"Authorization": f"Bearer {server.admin_token()}"},
        timeout=5,
    )


def _bans(server: RunningServer) -> dict[str, dict]:
    with _api(server) as api:
        return {b["source"]: b for b in api.get("/bans").json()["bans"]}


def _events(server: RunningServer) -> list[dict]:
    with _api(server) as api:
        return api.get("/security-events").json()["events"]  # newest first


def _tool(args: list[str], seconds: float = 25) -> str:
    proc = subprocess.run(
        ["timeout", str(int(seconds)), *args], capture_output=True, text=True, timeout=seconds + 5
    )
    return proc.stdout + proc.stderr


def _started(
    tmp_path: Path, config: str, users: dict[str, str], host: str | None = None
) -> RunningServer:
    server = make_server(tmp_path, extra_config=config, host=host)
    provision(server, [digest_user(n, server.host, pw) for n, pw in users.items()])
    return server.start()


def _register_ok(ua: DigestUA) -> bool:
    try:
        return ua.register().status == 200
    except (TimeoutError, OSError):
        return False


def test_svcrack_svwar_banned_by_failures_and_enumeration_restart_expiry(tmp_path) -> None:
    """Scanner User-Agents switched off, so the failure and enumeration rules do the work."""
    svcrack, svwar = require_tool("svcrack"), require_tool("svwar")
    server = _started(
        tmp_path,
        '\n[guard]\nscanner_user_agents = []\nban_time = "8s"\nmax_ban_time = "8s"\n',
        {"1001": PASSWORD, "150": "another-secret", "2002": "phone-pass"},
    )
    phone_host, enum_host = _hosts(2, server.host)
    try:
        words = [f"guess{i:02d}" for i in range(1, 40)]
        words[19] = PASSWORD
        dictionary = tmp_path / "dict.txt"
        dictionary.write_text("\n".join(words) + "\n")
        # svcrack in the background while a phone on another address keeps registering.
        crack = subprocess.Popen(
            ["timeout", "25", svcrack, "-u", "1001", "-d", str(dictionary),
             "-p", str(server.port), "--maximumtime=2", server.host],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        phone = DigestUA(server, "2002", "phone-pass", phone_host)
        ok = [_register_ok(phone) for _ in range(10)]
        output = crack.communicate(timeout=30)[0]
        assert all(ok), ok
        assert PASSWORD not in output and "found nothing" in output, output
        # (svcrack waits ~10 s for answers, longer than this server's 8 s bans: read the
        # audit trail rather than the bans in force.)
        ban = _events(server)[-1]
        assert (ban["kind"], ban["source"], ban["reason"]) == ("ban", "127.0.0.1", "auth-failures")
        assert ban["detail"]["users"] == ["1001"]
        log = server.log_text()
        assert "sipbox-guard action=ban source=127.0.0.1 reason=auth-failures" in log
        # Banned on the 5th failure: exactly 5 wrong answers reached the authenticator.
        assert log.count("action=ban source=127.0.0.1") == 1
        assert _register_ok(phone)

        # svwar (no signature rule here): our 401 is the same for every extension, so it finds
        # nothing and gives up after a request or two; the default-config test below bans it.
        with _api(server) as api:
            api.delete("/bans", params={"source": "127.0.0.1"})  # if still in force
        output = _tool([svwar, "--force", "-e100-200", "-p", str(server.port),
                        "--maximumtime=2", server.host])  # fmt: skip
        assert "150" not in output.replace("100-200", "") and "found nothing" in output, output

        # Enumeration by a tool that persists (svwar -m INVITE stops at the first 405 while no
        # call handler is registered): our own client walks the extensions svwar's way.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((enum_host, 0))
        for ext in range(100, 130):
            uri = f"sip:{ext}@{server.host}"
            sock.sendto(
                (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {enum_host}:9;branch=z9hG4bKe{ext}\r\n"
                 f"From: <sip:x@{enum_host}>;tag=1\r\nTo: <{uri}>\r\nCall-ID: e{ext}\r\n"
                 "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(),
                (server.host, server.port),
            )  # fmt: skip
            time.sleep(0.02)
        answered: set[str] = set()  # Call-IDs with a final answer (405 is retransmitted)
        sock.settimeout(0.3)
        try:
            while True:
                message = parse_message(sock.recv(4096))
                if isinstance(message, Response) and message.status >= 200:
                    answered.add(message.call_id)
        except TimeoutError:
            pass
        sock.close()
        assert len(answered) <= 10, sorted(answered)
        assert _bans(server)[enum_host]["reason"] == "enumeration"

        # A ban survives a restart while it lasts, then expires on time.
        server.restart()
        bans = _bans(server)
        assert enum_host in bans
        attacker = DigestUA(server, "1001", PASSWORD, enum_host)
        assert not _register_ok(attacker)  # dropped: no answer at all
        time.sleep(max(0.0, bans[enum_host]["until"] - time.time()) + 0.5)
        assert _register_ok(attacker)
        assert enum_host not in _bans(server)
        assert f"action=unban source={enum_host} reason=expired" in server.log_text()
    finally:
        server.stop()
    assert "Traceback" not in server.log_text()


def test_default_guard_svmap_svwar_whitelist_flood_and_cli(tmp_path) -> None:
    """Zero configuration but a white-listed office: the tools' signatures ban at once."""
    svmap, svwar = require_tool("svmap"), require_tool("svwar")
    host = f"127.0.0.{random.randint(2, 250)}"
    office, scanner, flooder, phone_host = _hosts(4, host)
    server = _started(
        tmp_path,
        f'\n[guard]\nwhitelist = ["{office}"]\n',
        {"1001": "secret1", "150": "secret150", "2002": "phone-pass"},
        host=host,
    )
    try:
        output = _tool([svmap, "-b", scanner, "-p", str(server.port), server.host])
        assert "found nothing" in output, output
        assert _bans(server)[scanner]["reason"] == "scanner"
        assert _bans(server)[scanner]["user_agent"] == "friendly-scanner"

        for method in ("REGISTER", "INVITE"):
            output = _tool([svwar, "--force", "-m", method, "-e100-200", "-p", str(server.port),
                            "--maximumtime=2", server.host])  # fmt: skip
            assert "found nothing" in output, output
            assert _bans(server)["127.0.0.1"]["reason"] == "scanner"
            with _api(server) as api:
                api.delete("/bans/127.0.0.1").raise_for_status()

        # A white-listed office failing 100 times is never banned.
        ua = DigestUA(server, "1001", "wrong", office)
        assert all(ua.register().status == 403 for _ in range(100))
        assert office not in _bans(server)

        # A flood (3,000 requests/s for 2 s) is blocked; a phone elsewhere keeps registering.
        flood = subprocess.Popen(
            [sys.executable, str(BENCH / "udpflood.py"), "--source", flooder,
             "--target", f"{server.host}:{server.port}", "--rate", "3000", "--seconds", "2"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        phone = DigestUA(server, "2002", "phone-pass", phone_host)
        latencies: list[float] = []
        failures = 0
        stop = time.monotonic() + 2.5
        while time.monotonic() < stop:
            started = time.monotonic()
            if _register_ok(phone):
                latencies.append(time.monotonic() - started)
            else:
                failures += 1
            time.sleep(0.04)
        sent = json.loads(flood.communicate(timeout=10)[0])["sent"]
        total = len(latencies) + failures
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 99
        assert total >= 30 and len(latencies) / total >= 0.99, (len(latencies), total)
        assert p99 < 1.0, p99
        assert sent >= 4000
        with _api(server) as api:
            events = api.get("/security-events", params={"limit": 50}).json()["events"]
        assert any(e["kind"] == "flood-block" and e["source"] == flooder for e in events)
        assert "action=flood-block source=" + flooder in server.log_text()

        _cli_basics(server)
    finally:
        server.stop()
    assert "Traceback" not in server.log_text()


def _cli_basics(server: RunningServer) -> None:
    runner = CliRunner()
    opts = ["--api-url", server.api_url, "--token", server.admin_token()]

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*args, *opts])
        assert result.exit_code == 0, result.output
        return result.output

    assert "banned 203.0.113.9" in run("ban", "add", "203.0.113.9", "--for", "1h")
    assert "203.0.113.9" in run("ban", "list")
    listed = json.loads(run("ban", "list", "--json"))
    assert {"203.0.113.9"} <= {b["source"] for b in listed["bans"]}
    assert "unbanned 203.0.113.9" in run("ban", "rm", "203.0.113.9")
    refused = runner.invoke(cli, ["ban", "add", "127.0.0.1", *opts])
    assert refused.exit_code == 1 and "loopback" in refused.output
    assert "added 203.0.113.0/24" in run("whitelist", "add", "203.0.113.0/24", "--note", "office")
    assert "203.0.113.0/24" in run("whitelist", "list")
    refused = runner.invoke(cli, ["ban", "add", "203.0.113.9", *opts])
    assert refused.exit_code == 1 and "whitelisted" in refused.output
    run("whitelist", "rm", "203.0.113.0/24")
    run("blacklist", "add", "198.51.100.0/24")
    assert "198.51.100.0/24" in run("blacklist", "list")
    run("blacklist", "rm", "198.51.100.0/24")
    assert "ban" in run("events", "--limit", "5")
