"""The B2BUA's extensions through SIPp (issue 4): 100rel/PRACK (a callee sending a reliable 183
with Require: 100rel, to callers with and without 100rel), session timers (a short
Session-Expires: a refresh by UPDATE observed on both legs; silent peers torn down with
`hangup_by=session-timer`), blind transfer by REFER with NOTIFY sipfrag checked by the
transferor, and page-mode MESSAGE; each call checks its CDR.

One server for the module with `[calls] session_expires = 8s` (refreshes at 4 s): every other
call here ends well before that, so only the timer tests see refreshes.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import require_tool
from tests.integration.calltools import CallLab, start_lab
from tests.integration.test_calls_sipp import call, newest

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> CallLab:
    require_tool("sipp")
    lab = start_lab(
        tmp_path_factory.mktemp("calls_ext"),
        callees=("1002", "1003", "1004"),
        extra_config='\n[calls]\nring_timeout = "5s"\nsession_expires = "8s"\nmin_se = "2s"\n',
    )
    yield lab
    lab.close()


def test_prack_reliable_183_caller_with_100rel(lab: CallLab) -> None:
    since = call(lab, "uas_prack.xml", "uac_prack.xml", "1002", "-d", "200")
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"


def test_prack_reliable_183_caller_without_100rel(lab: CallLab) -> None:
    """The caller gets the 183 unreliably and the early answer in its 200 (uac_call checks
    nothing more, but a 200 without SDP would leave it without media)."""
    since = call(lab, "uas_prack.xml", "uac_call.xml", "1002", "-d", "200")
    [record] = newest(lab, since)
    assert record["disposition"] == "answered"


def test_session_refresh_by_update_on_both_legs(lab: CallLab) -> None:
    started = time.monotonic()
    since = call(lab, "uas_timer_refresh.xml", "uac_timer_refresh.xml", "1003")
    assert time.monotonic() - started >= 3.5  # the refreshes came at half of 8 s
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"


def test_silent_peers_are_torn_down_by_the_session_timer(lab: CallLab) -> None:
    since = call(lab, "uas_timer_silent.xml", "uac_timer_silent.xml", "1004")
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["hangup_by"] == "session-timer"
    # 8 - min(32, 8/3) = 5.33 s after the answer
    assert 4 <= record["duration"] <= 7


def test_blind_transfer_by_refer(lab: CallLab) -> None:
    """1001 calls 1002; 1002 REFERs 1001 to 1003 (NOTIFY 100 then 200 checked by 1002's
    scenario); sipbox calls 1003 without SDP and re-INVITEs 1001 with its offer; 1001's BYE
    ends the call at 1003."""
    since = time.time() - 0.01
    target = lab.uas("1003", "uas_delayed.xml")
    transferor = lab.uas("1002", "uas_refer.xml")
    time.sleep(0.2)
    result = lab.uac("uac_transferee.xml", "1002", "-d", "500")
    assert result.returncode == 0, result.stderr[-3000:] + lab.server.log_text()[-3000:]
    for uas in (transferor, target):
        assert lab.wait_uas(uas) == 0, uas.stderr.read()[-2000:] if uas.stderr else ""
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"


def test_page_mode_message(lab: CallLab) -> None:
    uas = lab.uas("1002", "uas_message.xml")
    time.sleep(0.2)
    result = lab.uac("uac_message.xml", "1002")
    assert result.returncode == 0, result.stderr[-3000:] + lab.server.log_text()[-3000:]
    assert lab.wait_uas(uas) == 0
    result = lab.uac("uac_message_404.xml", "9999")
    assert result.returncode == 0, result.stderr[-3000:]
