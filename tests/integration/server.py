"""Start the real sipbox server as a subprocess on a free loopback address, for integration tests.

The server runs exactly as a user runs it (`python -m sipbox serve --config FILE`), with its
own state directory under the test's tmp_path, SIP on UDP+TCP (one port) and TLS, and the API
on its own port. `start_server` waits for the "ready" log line, so tests never race start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port, loopback_host

READY_TIMEOUT = 30.0


class _PortTaken(RuntimeError):
    """The server could not bind a port picked for it (someone took it meanwhile)."""


@dataclass
class RunningServer:
    """A sipbox process and where it listens."""

    host: str
    port: int
    tls_port: int
    api_port: int
    state_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.api_port}"

    @property
    def sip_uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admin_token(self) -> str:
        return (self.state_dir / "admin-token").read_text().strip()

    def start(self, *, repick_taken_ports: bool = True) -> RunningServer:
        """Start and wait for "ready". A port taken between `free_port` picking it and the
        server binding it (any unbound UDP client socket gets a wildcard ephemeral port, which
        blocks that port on every address) is picked again, up to three times, unless
        `repick_taken_ports` is False (a test of that very failure)."""
        for attempt in range(3):
            try:
                return self._start_once()
            except _PortTaken:
                if attempt == 2 or not repick_taken_ports:
                    raise
                self._repick_ports()
        raise AssertionError("unreachable")

    def _repick_ports(self) -> None:
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        text = self.config_path.read_text()
        for name, kind in (("port", "both"), ("tls_port", "tcp"), ("api_port", "tcp")):
            old, new = getattr(self, name), free_port(self.host, kind)  # type: ignore[arg-type]
            text = text.replace(f'{bracketed}:{old}"', f'{bracketed}:{new}"')
            setattr(self, name, new)
        self.config_path.write_text(text)

    def _start_once(self) -> RunningServer:
        offset = len(self.log_text())
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sipbox", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_text()[offset:]
            if " ready" in text or '"message": "ready"' in text:  # text or JSON log format
                return self
            if self.process.poll() is not None:
                text = self.log_text()[offset:]
                if "Address already in use" in text:
                    raise _PortTaken(f"sipbox exited at start-up:\n{text}")
                raise RuntimeError(f"sipbox exited at start-up:\n{text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sipbox not ready after {READY_TIMEOUT}s:\n{self.log_text()[offset:]}")

    def stop(self) -> int | None:
        """SIGTERM, then wait (SIGKILL after 10 s); returns the exit code."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=5)

    def restart(self) -> RunningServer:
        self.stop()
        return self.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far (from /proc)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks


def make_server(tmp_path: Path, extra_config: str = "", host: str | None = None) -> RunningServer:
    """Write a config for a fresh server on a random 127.0.0.x and return it (not started)."""
    host = host or loopback_host()
    port = free_port(host, "both")
    tls_port = free_port(host, "tcp")
    api_port = free_port(host, "tcp")
    state_dir = tmp_path / "var"
    bracketed = f"[{host}]" if ":" in host else host
    config_path = tmp_path / "sipbox.toml"
    config_path.write_text(
        f"""
[server]
state_dir = "{state_dir}"
log_level = "info"

[sip]
listen = ["udp:{bracketed}:{port}", "tcp:{bracketed}:{port}", "tls:{bracketed}:{tls_port}"]
domain = "{bracketed}"

[api]
listen = "{bracketed}:{api_port}"
{extra_config}
"""
    )
    return RunningServer(
        host=host,
        port=port,
        tls_port=tls_port,
        api_port=api_port,
        state_dir=state_dir,
        config_path=config_path,
        log_path=tmp_path / "sipbox.log",
    )


def start_server(tmp_path: Path, extra_config: str = "", host: str | None = None) -> RunningServer:
    return make_server(tmp_path, extra_config, host).start()
