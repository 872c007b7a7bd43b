"""Fixtures for tests that run the real server (see server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server import RunningServer, start_server


@pytest.fixture
def sipbox_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh sipbox on a random 127.0.0.x, stopped after the test (its log shown on failure)."""
    server = start_server(tmp_path)
    try:
        yield server
    finally:
        code = server.stop()
        log = server.log_text()
        assert "Traceback" not in log, f"server logged an exception:\n{log[-4000:]}"
        assert code in (0, None), f"server exited with {code}:\n{log[-4000:]}"
