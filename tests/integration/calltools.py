"""Helpers for the call interop tests: a server with a caller and IP-authorized SIPp callees,
SIPp runs in the background, and call records read back through the API."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from sipbox.storage import NewUser
from tests.conftest import free_port, loopback_host
from tests.integration.regtools import SIPP_DIR, digest_user, provision
from tests.integration.server import RunningServer, make_server

PASSWORD = "callpw"


def wait_until_bound(host: str, port: int, timeout: float = 10.0) -> None:
    """Return once something (the SIPp UAS just started) holds UDP `host:port`: a fixed sleep
    is not enough on a loaded 2-core machine, and an INVITE sent before the UAS binds is lost
    until the ring timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return  # taken: the UAS is listening
        time.sleep(0.02)
    raise RuntimeError(f"nothing bound {host}:{port} within {timeout}s")


def other_host(*taken: str) -> str:
    host = loopback_host()
    while host in taken:
        host = loopback_host()
    return host


@dataclass
class CallLab:
    """sipbox + the caller 1001 (IP-authorized from `uac_host`, also has a password) + callees
    `numbers` each IP-authorized with a static contact on its own SIPp UAS address."""

    server: RunningServer
    uac_host: str
    callees: dict[str, tuple[str, int]] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def uas(self, number: str, scenario: str, *extra: str) -> subprocess.Popen[str]:
        host, port = self.callees[number]
        proc = subprocess.Popen(
            ["sipp", "-sf", str(SIPP_DIR / scenario), "-i", host, "-p", str(port), "-m", "1",
             "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=self.server.state_dir.parent,  # -trace_err writes its log file here
        )  # fmt: skip
        self.procs.append(proc)
        wait_until_bound(host, port)
        return proc

    def uac(
        self, scenario: str, dialed: str, *extra: str, calls: int = 1, rate: int = 10,
        timeout: float = 20,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        s = self.server
        return subprocess.run(
            ["sipp", f"{s.host}:{s.port}", "-sf", str(SIPP_DIR / scenario), "-s", dialed,
             "-i", self.uac_host, "-p", "0", "-m", str(calls), "-r", str(rate),
             "-timeout", f"{int(timeout)}s", "-timeout_error", "-nostdin", "-trace_err", *extra],
            capture_output=True, text=True, timeout=timeout + 10,
            cwd=s.state_dir.parent,
        )  # fmt: skip

    def wait_uas(self, proc: subprocess.Popen[str], timeout: float = 15) -> int:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return proc.returncode

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.api_url,
            headers={"Authorization": f"Bearer {self.server.admin_token()}"},
            timeout=5,
        )

    def cdrs(self, expect: int = 1, timeout: float = 5.0) -> list[dict]:
        """Completed records (the writer is in the background: wait for them)."""
        deadline = time.monotonic() + timeout
        records: list[dict] = []
        with self.api() as client:
            while time.monotonic() < deadline:
                records = client.get("/cdr").json()["records"]
                done = [r for r in records if r["end_time"] is not None]
                if len(done) >= expect:
                    return done
                time.sleep(0.1)
        raise AssertionError(f"expected {expect} completed records, got {records}")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.server.stop()


def start_lab(
    tmp_path: Path, callees: tuple[str, ...] = ("1002",), extra_config: str = "",
    users: list[NewUser] | None = None, ring_timeout: int | None = None,
) -> CallLab:  # fmt: skip
    server = make_server(tmp_path, extra_config="\n[guard]\nenabled = false\n" + extra_config)
    uac_host = other_host(server.host)
    lab = CallLab(server, uac_host)
    realm = server.host
    provisioned = [
        digest_user("1001", realm, PASSWORD, ip_auth=(f"{uac_host}/32",), display_name="Alice"),
    ]
    for number in callees:
        host = other_host(server.host, uac_host, *(h for h, _ in lab.callees.values()))
        port = free_port(host, "udp")
        lab.callees[number] = (host, port)
        provisioned.append(
            digest_user(number, realm, PASSWORD, ip_auth=(f"{host}/32",),
                        static_contact=f"{host}:{port}", ring_timeout=ring_timeout)
        )  # fmt: skip
    provision(server, provisioned + (users or []))
    server.start()
    return lab
