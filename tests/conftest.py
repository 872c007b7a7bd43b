"""Helpers shared by the whole suite: loopback addresses, free ports, external tools.

Why random ``127.0.0.x`` hosts: Linux routes all of 127.0.0.0/8 to the loopback interface, so
each test server can bind its own address. Tests running side by side (or a stray Kamailio on
127.0.0.1:5060) then never collide on a port, and a capture filtered by host shows one test.

Import the plain functions where a fixture does not fit (helpers, parametrisation)::

    from tests.conftest import free_port, loopback_host, require_tool

The fixtures below wrap them for the common case.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
from typing import Literal

import pytest

__all__ = ["INTEROP_PACKAGES", "free_port", "loopback_host", "require_tool"]

#: The Debian package that provides each external tool the interop tests use.
INTEROP_PACKAGES: dict[str, str] = {
    "sipp": "sip-tester",
    "sipsak": "sipsak",
    "baresip": "baresip",
    "kamailio": "kamailio",
    "svmap": "sipvicious",
    "svwar": "sipvicious",
    "svcrack": "sipvicious",
}


def loopback_host() -> str:
    """A random loopback address ``127.0.0.x`` with x in 2..250 (never the busy 127.0.0.1)."""
    return f"127.0.0.{random.randint(2, 250)}"


def free_port(host: str, kind: Literal["udp", "tcp", "both"] = "udp") -> int:
    """A port that is free on ``host`` for ``kind`` right now (the OS picks it via port 0).

    ``"both"`` finds a number free for UDP *and* TCP, as a SIP listener on one port needs.
    There is an unavoidable race between returning and the caller binding; on loopback with
    random hosts it does not happen in practice. Prefer binding port 0 directly and reading the
    bound address when the code under test allows it.
    """
    if kind == "both":
        for _ in range(50):
            port = free_port(host, "tcp")
            try:
                with socket.socket(_family(host), socket.SOCK_DGRAM) as probe:
                    probe.bind((host, port))
            except OSError:
                continue
            return port
        raise RuntimeError(f"no port free for both UDP and TCP on {host}")
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(_family(host), sock_type) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def require_tool(name: str) -> str:
    """Return the path of executable ``name``, or skip the test when it is not installed.

    With ``SIPBOX_REQUIRE_INTEROP=1`` (set by CI) a missing tool *fails* the test instead, so a
    broken install step cannot turn the interop suite into a row of silent skips.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    package = INTEROP_PACKAGES.get(name, name)
    message = (
        f"{name} is not installed (Debian package {package!r}); "
        "install it with `sudo scripts/install-interop-tools.sh`"
    )
    if os.environ.get("SIPBOX_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{message} - required because SIPBOX_REQUIRE_INTEROP=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def loopback() -> str:
    """A fresh random ``127.0.0.x`` address for this test (see :func:`loopback_host`)."""
    return loopback_host()
