"""Per-call SIP trace (issue 7): a real call through sipbox (SIPp caller and callee) leaves
both legs' messages in `/calls/{id}/trace`, in wire order, and the call page draws them."""

from __future__ import annotations

import pytest

from tests.conftest import require_tool
from tests.integration.calltools import CallLab, start_lab

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> CallLab:
    require_tool("sipp")
    lab = start_lab(tmp_path_factory.mktemp("trace"))
    lab.server.env["SIPBOX_SERVER_TRACE_CALLS"] = "2"  # keep two calls: the third drops the first
    lab.server.restart()
    yield lab
    lab.close()


def _call(lab: CallLab) -> dict:
    uas = lab.uas("1002", "uas_answer.xml")
    result = lab.uac("uac_call.xml", "1002", "-d", "200")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lab.wait_uas(uas) == 0
    return lab.cdrs(expect=1)[0]


def test_trace_has_both_legs_in_order(lab: CallLab) -> None:
    record = _call(lab)
    with lab.api() as client:
        answer = client.get(f"/calls/{record['id']}/trace")
        assert answer.status_code == 200, answer.text
        trace = answer.json()
        # The same trace by either leg's SIP Call-ID.
        assert client.get(f"/calls/{record['a_call_id']}/trace").json()["id"] == record["id"]
        page = client.get(f"/ui/calls/{record['id']}")
    assert set(trace["legs"].values()) == {"caller", "1002"}
    flow = [(m["leg"], m["direction"], m["summary"]) for m in trace["messages"]]
    a_leg = [(d, s) for leg, d, s in flow if leg == "caller"]
    b_leg = [(d, s) for leg, d, s in flow if leg == "callee"]
    assert a_leg[0] == ("in", "INVITE")
    assert ("out", "100 Trying (INVITE)") in a_leg
    assert ("out", "200 OK (INVITE)") in a_leg and ("in", "ACK") in a_leg
    assert ("in", "BYE") in a_leg and ("out", "200 OK (BYE)") in a_leg
    assert b_leg[0] == ("out", "INVITE")
    assert ("in", "200 OK (INVITE)") in b_leg and ("out", "ACK") in b_leg
    assert ("out", "BYE") in b_leg
    # wire order: the callee's INVITE leaves after the caller's INVITE arrived, etc.
    assert flow.index(("caller", "in", "INVITE")) < flow.index(("callee", "out", "INVITE"))
    assert flow.index(("callee", "in", "200 OK (INVITE)")) < flow.index(
        ("caller", "out", "200 OK (INVITE)")
    )
    first = trace["messages"][0]
    assert first["text"].startswith("INVITE sip:1002@") and first["peer"].startswith("udp:")
    assert page.status_code == 200 and 'id="ladder"' in page.text and "Callee 1002" in page.text


def test_only_the_last_calls_are_kept(lab: CallLab) -> None:
    ids = [_call(lab)["id"]]
    for _ in range(2):
        before = {r["id"] for r in lab.cdrs(expect=1)}
        _call(lab)
        ids.append(next(r["id"] for r in lab.cdrs(expect=len(before) + 1) if r["id"] not in before))
    with lab.api() as client:
        assert client.get(f"/calls/{ids[0]}/trace").status_code == 404
        assert client.get(f"/calls/{ids[-1]}/trace").status_code == 200


def test_setup_time_histogram_counts_calls(lab: CallLab) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with lab.api() as client:
        before = client.get("/metrics").text
        _call(lab)
        after = client.get("/metrics").text

    def count(text: str) -> float:
        for family in text_string_to_metric_families(text):
            if family.name == "sipbox_call_setup_seconds":
                return next(s.value for s in family.samples if s.name.endswith("_count"))
        raise AssertionError("no sipbox_call_setup_seconds")

    assert count(after) == count(before) + 1
