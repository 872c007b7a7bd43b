"""The configuration the in-process benches start their real `Server` with.

One UDP listener on `host:port`, the API on `port + api_offset`, no OPTIONS keep-alives, and the
guard on with loopback white-listed (so its cost is in the figures, but the driver is never
banned).
"""

from __future__ import annotations

from pathlib import Path


def write_config(work: Path, host: str, port: int, api_offset: int = 1) -> Path:
    """Write `work/sipbox.toml` (state under `work/var`) and return its path."""
    path = work / "sipbox.toml"
    path.write_text(
        f"""
[server]
state_dir = "{work / "var"}"
log_level = "warning"
[sip]
listen = ["udp:{host}:{port}"]
domain = "{host}"
[api]
listen = "{host}:{port + api_offset}"
[registrar]
keepalive_interval = 0
[guard]
whitelist = ["127.0.0.0/8"]
"""
    )
    return path
