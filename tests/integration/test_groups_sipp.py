"""Ringing groups and forwarding through sipbox with SIPp phones (issue 4).

Group members: 1012 and 1013 registered (REGISTER with digest, their Contact naming a SIPp
UAS) and 1004 IP-authorized with a static contact (another SIPp UAS). The caller is SIPp UAC
1001. One server serves the module; each test sets up the group/forwarding it needs through
the API and reads its own call records.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import free_port, require_tool
from tests.integration.calltools import PASSWORD, CallLab, other_host, start_lab
from tests.integration.regtools import DigestUA
from tests.integration.test_calls_sipp import newest

pytestmark = pytest.mark.interop

MEMBERS = ("1012", "1013", "1004")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> CallLab:
    require_tool("sipp")
    tmp = tmp_path_factory.mktemp("groups")
    lab = start_lab(tmp, callees=("1004",), extra_config='\n[calls]\nring_timeout = "2s"\n')
    s = lab.server
    with lab.api() as client:
        for number in ("1012", "1013"):
            r = client.post("/users", json={"number": number, "password": PASSWORD})
            assert r.status_code == 201, r.text
    for number in ("1012", "1013"):
        host = other_host(s.host, lab.uac_host, *(h for h, _ in lab.callees.values()))
        port = free_port(host, "udp")
        ua = DigestUA(s, number, PASSWORD, "127.0.0.1")
        ua.host, ua.port = host, port  # the Contact names the SIPp UAS that plays the phone
        try:
            assert ua.register().status == 200
        finally:
            ua.close()
        lab.callees[number] = (host, port)
    yield lab
    lab.close()


def api(lab: CallLab, method: str, path: str, json: object | None = None) -> dict:
    with lab.api() as client:
        r = client.request(method, path, json=json)
    assert r.status_code < 300, r.text
    return r.json() if r.content else {}


def group(lab: CallLab, number: str, members: list, **kw: object) -> None:
    with lab.api() as client:
        client.delete(f"/groups/{number}")
    api(lab, "POST", "/groups", {"number": number, "members": members, **kw})


def forward(lab: CallLab, number: str, **kw: object) -> None:
    api(lab, "PATCH", f"/users/{number}", {"forwarding": None})
    if kw:
        api(lab, "PATCH", f"/users/{number}", {"forwarding": kw})


def run(lab: CallLab, uases: dict[str, str], uac: str, dialed: str, *extra: str) -> float:
    """Start the UAS scenarios, run the UAC, check every scenario passed."""
    since = time.time() - 0.01
    procs = {n: lab.uas(n, scenario) for n, scenario in uases.items()}
    time.sleep(0.3)
    result = lab.uac(uac, dialed, *extra)
    problems = []
    if result.returncode != 0:
        problems.append(f"UAC {uac}: {result.stderr[-1500:]}")
    for number, proc in procs.items():
        if lab.wait_uas(proc) != 0:
            err = proc.stderr.read() if proc.stderr else ""
            problems.append(f"UAS {number} ({uases[number]}): rc={proc.returncode} {err[-1500:]}")
    assert not problems, "\n".join(problems) + "\n" + lab.server.log_text()[-2000:]
    return since


def test_ring_all_answer_gives_completed_elsewhere(lab: CallLab) -> None:
    """All three ring at once; 1013 answers; 1012 and 1004 get CANCEL with the "completed
    elsewhere" Reason (the UAS scenarios check the header)."""
    group(lab, "600", list(MEMBERS))
    since = run(
        lab,
        {"1012": "uas_ring_completed_elsewhere.xml", "1013": "uas_answer_late.xml",
         "1004": "uas_ring_completed_elsewhere.xml"},
        "uac_call.xml", "600", "-d", "300",
    )  # fmt: skip
    [record] = newest(lab, since)
    assert record["disposition"] == "answered" and record["dialed_number"] == "600"
    assert record["destination"].startswith("1013 ")


def test_ring_all_caller_hangs_up_gives_plain_cancel(lab: CallLab) -> None:
    group(lab, "600", list(MEMBERS))
    since = run(
        lab, {n: "uas_ring_plain_cancel.xml" for n in MEMBERS}, "uac_cancel_group.xml", "600"
    )
    [record] = newest(lab, since)
    assert (record["disposition"], record["status"]) == ("cancelled", 487)


def test_sequential_order(lab: CallLab) -> None:
    """1012 rings for its 1 s turn (then a plain CANCEL), 1013 answers; 1004 is never rung."""
    group(lab, "601", [{"number": "1012", "timeout": 1}, "1013", "1004"], strategy="sequential")
    since = run(
        lab, {"1012": "uas_ring_plain_cancel.xml", "1013": "uas_answer.xml"},
        "uac_call.xml", "601", "-d", "200",
    )  # fmt: skip
    [record] = newest(lab, since)
    assert record["destination"].startswith("1013 ")
    assert 0.9 <= record["answer_time"] - record["start_time"] < 1.9


def test_circular_starts_after_the_last_answer(lab: CallLab) -> None:
    """Call 1: 1012 answers. Call 2 starts with 1013 (after 1012) and it answers at once."""
    group(lab, "602", list(MEMBERS), strategy="circular", ring_timeout=2)
    first = run(lab, {"1012": "uas_answer.xml"}, "uac_call.xml", "602", "-d", "100")
    second = run(lab, {"1013": "uas_answer.xml"}, "uac_call.xml", "602", "-d", "100")
    one = next(r for r in newest(lab, first, 2) if r["start_time"] < second)
    [two] = newest(lab, second)
    assert one["destination"].startswith("1012 ") and two["destination"].startswith("1013 ")
    assert two["answer_time"] - two["start_time"] < 1.0  # 1013 was first, 1012 not rung
    assert api(lab, "GET", "/groups/602")["last_answered"] == "1013"


def test_forwarding_on_busy(lab: CallLab) -> None:
    forward(lab, "1013", busy="1004")
    try:
        since = run(lab, {"1013": "uas_busy.xml", "1004": "uas_answer.xml"},
                    "uac_call.xml", "1013", "-d", "200")  # fmt: skip
    finally:
        forward(lab, "1013")
    [record] = newest(lab, since)
    assert record["dialed_number"] == "1013" and record["destination"].startswith("1004 ")


def test_forwarding_on_no_answer(lab: CallLab) -> None:
    """1012 rings for the 2 s ring timeout, gets a plain CANCEL, then 1004 answers."""
    forward(lab, "1012", no_answer="1004")
    try:
        since = run(lab, {"1012": "uas_ring_plain_cancel.xml", "1004": "uas_answer.xml"},
                    "uac_call.xml", "1012", "-d", "200")  # fmt: skip
    finally:
        forward(lab, "1012")
    [record] = newest(lab, since)
    assert record["destination"].startswith("1004 ")
    assert 1.9 <= record["answer_time"] - record["start_time"] < 3.5


def test_forwarding_loop_guard(lab: CallLab) -> None:
    """1012 -> 1013 -> 1012 (unconditional both ways): the hop back is not taken; 1013's
    phone rings and answers."""
    forward(lab, "1012", unconditional="1013")
    forward(lab, "1013", unconditional="1012")
    try:
        since = run(lab, {"1013": "uas_answer.xml"}, "uac_call.xml", "1012", "-d", "100")
    finally:
        forward(lab, "1012")
        forward(lab, "1013")
    [record] = newest(lab, since)
    assert record["destination"].startswith("1013 ")


def test_feature_code_from_the_phone(lab: CallLab) -> None:
    """1001 dials *90*1004# (the # escaped as %23): 480 whose reason says what changed."""
    since = time.time() - 0.01  # only this call's record (an earlier test's may be < 5 s old)
    result = lab.uac("uac_fail_480.xml", "*90*1004%23")
    assert result.returncode == 0, result.stderr[-2000:]
    fwd = api(lab, "GET", "/users/1001")["forwarding"]
    assert fwd["busy"] == "1004"
    records = newest(lab, since)
    assert any(r["reason"] == "Forwarding on busy set to 1004" for r in records)
    forward(lab, "1001")
