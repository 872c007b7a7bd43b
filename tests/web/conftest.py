"""Headless Chromium for the web admin tests (Debian's ``chromium`` driven by Playwright).

Never ``playwright install``: the browser is the distribution's, found at ``/usr/bin/chromium``
(installed by ``scripts/install-interop-tools.sh``). Without it, or without the ``playwright``
package, the tests skip with a message, unless ``SIPBOX_REQUIRE_INTEROP=1`` (CI), where a missing
browser fails, as for the SIP tools.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def _require_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "the Python package playwright is missing (pip install -e '.[test]')"
        if os.environ.get("SIPBOX_REQUIRE_INTEROP") == "1":
            pytest.fail(f"{message} - required because SIPBOX_REQUIRE_INTEROP=1", pytrace=False)
        pytest.skip(message)
    return sync_playwright


@pytest.fixture
def browser() -> Iterator[Any]:
    """A fresh headless Chromium (one per test: tests never share cookies)."""
    sync_playwright = _require_playwright()
    executable = require_tool("chromium")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable if Path(executable).exists() else CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (gitignored ``test-artifacts/web``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
