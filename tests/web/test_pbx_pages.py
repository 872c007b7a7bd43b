"""The second slice of the web admin in a real browser (issue 7, "How it is tested"): add a
group, add an external line and press Test against a SIPp carrier, place a call (SIPp caller
and callee) and open its ladder diagram. A screenshot of each new page goes to
``test-artifacts/web/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, require_tool
from tests.integration.calltools import CallLab, other_host, start_lab
from tests.integration.test_lines_sipp import _carrier

pytestmark = pytest.mark.interop

TIMEOUT_MS = 20_000


def _shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[CallLab]:
    """Started before the browser: provisioning runs its own event loop, which Playwright's
    synchronous API would be sitting in otherwise."""
    require_tool("sipp")
    lab = start_lab(tmp_path, extra_config='\n[lines]\nbackoff_base = "30s"\n'
                                           'test_spacing = "200ms"\n')  # fmt: skip
    yield lab
    lab.close()


def test_groups_lines_and_call_ladder(
    lab: CallLab, tmp_path: Path, browser: Any, artifacts: Path
) -> None:
    server = lab.server
    base = server.api_url
    carrier_host = other_host(server.host, lab.uac_host, *(h for h, _ in lab.callees.values()))
    carrier_port = free_port(carrier_host, "udp")
    carrier = _carrier(carrier_host, carrier_port, tmp_path)
    try:
        password = re.search(r"password: (\S+)", server.log_text())[1]  # type: ignore[index]
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/ui/")

        # -- a group: the API's error shows next to the form, then it is added
        page.goto(f"{base}/ui/groups")
        page.fill("#add-group input[name=number]", "600")
        page.fill("#add-group input[name=name]", "Sales")
        page.select_option("#add-group select[name=strategy]", "sequential")
        page.fill("#add-group input[name=members]", "1002, 9999")
        page.click("#add-group button[type=submit]")
        page.locator("#add-group .form-error", has_text="9999").wait_for()
        page.fill("#add-group input[name=members]", "1002:15, 1001")
        page.click("#add-group button[type=submit]")
        row = page.locator("tr[data-group='600']")
        row.wait_for()
        assert "sequential" in row.inner_text() and "(15 s)" in row.inner_text()
        _shot(page, artifacts, "10-groups")

        # -- an external line; Test says in plain words which form the carrier accepts
        page.goto(f"{base}/ui/lines")
        page.fill("#add-line input[name=name]", "ct")
        page.fill("#add-line input[name=domain]", "ims.invalid")
        page.fill("#add-line input[name=proxy]", f"{carrier_host}:{carrier_port}")
        page.fill("#add-line input[name=account]", "1001")
        page.fill("#add-line input[name=password]", "linepw")
        page.click("#add-line button[type=submit]")
        line = page.locator("tr[data-line='ct']")
        line.wait_for()
        line.locator("button", has_text="Test").click()
        result = line.locator(".test-result")
        result.wait_for(state="visible")
        assert "auth_id_with_domain" in result.inner_text()
        page.goto(f"{base}/ui/lines")
        page.locator("tr[data-line='ct'] .state", has_text=re.compile("failed|registering"))
        # the Test result stays on the page (kept in the line's status) after a reload
        kept = page.locator("tr[data-line='ct'] .test-result")
        assert kept.is_visible() and "auth_id_with_domain" in kept.inner_text()
        assert "tested" in kept.inner_text()
        # IMS options under Edit -> Advanced
        row = page.locator("tr[data-line='ct']")
        row.locator("summary", has_text="Edit").click()
        row.locator("summary", has_text="Advanced").click()
        row.locator("input[name=uri_params]").fill("user=phone")
        row.locator("select[name=identity_header]").select_option("pai")
        row.locator("input[name=keepalive]").fill("30")
        row.locator("input[name=max_calls_out]").fill("2")
        row.locator("input[name=from_domain]").fill("ims.example.cn")
        _shot(page, artifacts, "11-lines-advanced")
        row.locator("form button[type=submit]").click()
        page.locator("tr[data-line='ct'] input[name=uri_params][value='user=phone']").wait_for(
            state="attached"
        )
        saved = page.locator("tr[data-line='ct']")
        assert saved.locator("select[name=identity_header]").input_value() == "pai"
        assert saved.locator("input[name=max_calls_out]").input_value() == "2"
        assert saved.locator("input[name=tls_verify]").is_checked()  # default kept, not cleared
        _shot(page, artifacts, "11-lines")
        for path, name in (("/ui/trunks", "12-trunks"), ("/ui/prefixes", "13-prefixes"),
                           ("/ui/inbound", "14-inbound")):  # fmt: skip
            page.goto(f"{base}{path}")
            assert page.locator("h1").inner_text()
            _shot(page, artifacts, name)
        page.fill("#add-route input[name=did]", "+8675512345678")
        page.fill("#add-route input[name=destination]", "600")
        page.click("#add-route button[type=submit]")
        page.locator("#routes", has_text="+8675512345678").wait_for()

        # -- forwarding on the user page
        page.goto(f"{base}/ui/users/1003" if "1003" in lab.callees else f"{base}/ui/users/1002")
        page.fill("#user-forwarding input[name='forwarding.busy']", "1002")
        page.click("#user-forwarding button[type=submit]")
        page.locator("#user-forwarding .form-error", has_text="itself").wait_for()
        page.fill("#user-forwarding input[name='forwarding.busy']", "600")
        page.click("#user-forwarding button[type=submit]")
        page.wait_for_load_state()
        page.locator("#user-forwarding input[name='forwarding.busy'][value='600']").wait_for()
        _shot(page, artifacts, "15-user-forwarding")

        # -- a call (SIPp caller 1001 -> sipbox -> SIPp callee 1002), then its ladder
        uas = lab.uas("1002", "uas_answer.xml")
        time.sleep(0.2)
        done = lab.uac("uac_call.xml", "1002", "-d", "300")
        assert done.returncode == 0, done.stderr[-2000:]
        assert lab.wait_uas(uas) == 0
        record = lab.cdrs(expect=1)[0]
        page.goto(f"{base}/ui/cdr")
        page.click(f"a[href='/ui/calls/{record['id']}']")
        page.wait_for_url(f"{base}/ui/calls/{record['id']}")
        ladder = page.locator("svg#ladder")
        ladder.wait_for()
        labels = ladder.locator(".label").all_text_contents()
        assert labels[0] == "INVITE" and "200 OK (INVITE)" in labels and "ACK" in labels
        assert "BYE" in labels and "200 OK (BYE)" in labels
        assert "Callee 1002" in (ladder.text_content() or "")
        ladder.locator("a.arrow", has_text="BYE").first.locator(".label").click()
        page.locator("details.raw[open] pre", has_text="BYE sip:").first.wait_for()
        _shot(page, artifacts, "16-call-ladder")
    finally:
        carrier.kill()
        carrier.wait()
