"""Calls through sipbox between SIPp UACs and UASes (issue 4): answered calls with BYE from
either side, CANCEL, busy, no answer, re-INVITE + INFO, delayed offer, the CANCEL/200
crossing, two devices answering at once, digest on the A leg; each checks the call record.

One server serves the whole module (users are fixed), so the suite stays fast; each test
looks only at the records of its own calls.
"""

from __future__ import annotations

import time

import pytest

from sipbox.storage import NewUser
from tests.conftest import free_port, require_tool
from tests.integration.calltools import PASSWORD, CallLab, other_host, start_lab
from tests.integration.regtools import DigestUA

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> CallLab:
    require_tool("sipp")
    lab = start_lab(
        tmp_path_factory.mktemp("calls"),
        callees=("1002", "1003", "1004"),
        extra_config='\n[calls]\nring_timeout = "2s"\n',
        users=[NewUser(number="1005")],  # never reachable
    )
    yield lab
    lab.close()


def newest(lab: CallLab, since: float, count: int = 1) -> list[dict]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with lab.api() as client:
            records = client.get("/cdr", params={"since": since}).json()["records"]
        done = [r for r in records if r["end_time"] is not None]
        if len(done) >= count:
            return done
        time.sleep(0.1)
    raise AssertionError(f"no records since {since}")


def call(lab: CallLab, uas_scenario: str, uac_scenario: str, dialed: str = "1002",
         *uac_extra: str, callee: str | None = None) -> float:  # fmt: skip
    since = time.time() - 0.01
    uas = lab.uas(callee or dialed, uas_scenario) if uas_scenario else None
    time.sleep(0.2)
    result = lab.uac(uac_scenario, dialed, *uac_extra)
    assert result.returncode == 0, result.stderr[-3000:] + lab.server.log_text()[-3000:]
    if uas is not None:
        assert lab.wait_uas(uas) == 0, uas.stderr.read()[-3000:] if uas.stderr else ""
    return since


def test_answered_caller_hangs_up(lab: CallLab) -> None:
    since = call(lab, "uas_answer.xml", "uac_call.xml", "1002", "-d", "1100")
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"
    assert record["caller_number"] == "1001" and record["caller_display"] == "Alice"
    assert record["dialed_number"] == "1002" and record["destination"].startswith("1002 sip:")
    assert record["billable"] >= 1 and record["duration"] >= 1
    assert record["a_call_id"] != record["b_call_id"]
    assert record["caller_source"].startswith(lab.uac_host) and record["caller_transport"] == "udp"


def test_answered_callee_hangs_up(lab: CallLab) -> None:
    since = call(lab, "uas_bye.xml", "uac_wait_bye.xml", "1002", callee="1002")
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["hangup_by"] == "callee"


def test_cancel_before_answer(lab: CallLab) -> None:
    since = call(lab, "uas_ring.xml", "uac_cancel.xml", "1003")
    [record] = newest(lab, since)
    assert (record["disposition"], record["status"]) == ("cancelled", 487)
    assert record["hangup_by"] == "caller" and record["billable"] == 0


def test_busy(lab: CallLab) -> None:
    since = call(lab, "uas_busy.xml", "uac_fail_486.xml", "1004")
    [record] = newest(lab, since)
    assert (record["disposition"], record["status"]) == ("busy", 486)


def test_no_answer_after_ring_timeout(lab: CallLab) -> None:
    since = call(lab, "uas_ring.xml", "uac_fail_480.xml", "1002")
    [record] = newest(lab, since)
    assert (record["disposition"], record["status"]) == ("no-answer", 480)
    assert 2 <= record["duration"] <= 4


def test_unknown_and_offline(lab: CallLab) -> None:
    since = call(lab, "", "uac_fail_404.xml", "9999")
    since2 = call(lab, "", "uac_fail_480.xml", "1005")
    records = newest(lab, since, 2)
    by_number = {r["dialed_number"]: r for r in records}
    assert by_number["9999"]["status"] == 404 and by_number["1005"]["status"] == 480
    assert since2 > since


def test_reinvite_and_info(lab: CallLab) -> None:
    since = call(lab, "uas_reinvite.xml", "uac_reinvite.xml", "1003")
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["hangup_by"] == "caller"


def test_delayed_offer(lab: CallLab) -> None:
    since = call(lab, "uas_delayed.xml", "uac_delayed.xml", "1004", "-d", "200")
    [record] = newest(lab, since)
    assert record["disposition"] == "answered"


def test_cancel_crossing_200(lab: CallLab) -> None:
    """The callee's 200 crosses our CANCEL: sipbox ACKs and BYEs it (the UAS scenario checks
    both), and the caller gets 487."""
    since = call(lab, "uas_cancel_200.xml", "uac_cancel.xml", "1002")
    [record] = newest(lab, since)
    assert (record["disposition"], record["status"]) == ("cancelled", 487)


def test_digest_on_the_a_leg(lab: CallLab) -> None:
    """From another address the caller is challenged (407) and answers with its password."""
    s = lab.server
    host = other_host(s.host, lab.uac_host, *(h for h, _ in lab.callees.values()))
    since = time.time() - 0.01
    # 1003, not 1002: the previous test's CANCEL/200 crossing leaves 1002's SIPp UAS port with
    # late retransmissions that a new SIPp UAS on the same port may take for its one call.
    uas = lab.uas("1003", "uas_answer.xml")
    time.sleep(0.2)
    import subprocess

    from tests.integration.regtools import SIPP_DIR

    result = subprocess.run(
        ["sipp", f"{s.host}:{s.port}", "-sf", str(SIPP_DIR / "uac_call_auth.xml"), "-s", "1003",
         "-i", host, "-p", "0", "-m", "1", "-au", "1001", "-ap", PASSWORD, "-d", "100",
         "-timeout", "15s", "-timeout_error", "-nostdin", "-trace_err"],
        capture_output=True, text=True, timeout=30, cwd=s.state_dir.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert lab.wait_uas(uas) == 0
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["caller_source"].startswith(host)


def test_two_devices_answer_at_once(lab: CallLab, tmp_path) -> None:
    """1006 is registered twice (two SIPp UAS); both answer at once: one wins, the other is
    ACKed and BYEd (both scenarios end cleanly), one record says answered."""
    s = lab.server
    hosts = []
    for _ in range(2):
        host = other_host(s.host, lab.uac_host)
        hosts.append((host, free_port(host, "udp")))
    # provision 1006 through the API, then register both contacts from Python
    with lab.api() as client:
        r = client.post("/users", json={"number": "1006", "password": PASSWORD})
        assert r.status_code in (200, 201), r.text
    for host, port in hosts:
        ua = DigestUA(s, "1006", PASSWORD, "127.0.0.1")
        ua.host, ua.port = host, port  # the Contact (and Via sent-by) name the SIPp UAS
        try:
            assert ua.register().status == 200
        finally:
            ua.close()
    lab.callees["1006a"], lab.callees["1006b"] = hosts
    since = time.time() - 0.01
    uases = [lab.uas("1006a", "uas_answer_race.xml"), lab.uas("1006b", "uas_answer_race.xml")]
    time.sleep(0.2)
    result = lab.uac("uac_call.xml", "1006", "-d", "300")
    assert result.returncode == 0, result.stderr[-3000:]
    for uas in uases:
        assert lab.wait_uas(uas) == 0, uas.stderr.read()[-2000:] if uas.stderr else ""
    [record] = newest(lab, since)
    assert record["disposition"] == "answered"
