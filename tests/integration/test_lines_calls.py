"""Calls through external lines against SIPp carriers on loopback (issue 5, outbound).

One server for the module: the caller 1001 (IP-authorized SIPp UAC) dials ``9`` + number; the
prefix ``9`` (strip 1) goes out through line ``a`` then line ``b``, each a static carrier
account (no registration) at its own SIPp "carrier". Checked: the carrier's 407 is answered
with the line's credentials and the call completes; a 503 from the first carrier fails over to
the second; a 603 does not (6xx means "do not try elsewhere"); the CDR names the line.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, require_tool
from tests.integration.calltools import CallLab, other_host, start_lab
from tests.integration.regtools import SIPP_DIR

pytestmark = pytest.mark.interop


def carrier(
    lab: CallLab, address: tuple[str, int], scenario: str, *extra: str
) -> subprocess.Popen[str]:
    """A SIPp carrier for one call at `address`."""
    host, port = address
    proc = subprocess.Popen(
        ["sipp", "-sf", str(SIPP_DIR / scenario), "-i", host, "-p", str(port), "-m", "1",
         "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err", "-trace_msg", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=lab.server.state_dir.parent,
    )  # fmt: skip
    lab.procs.append(proc)
    return proc


def records_since(lab: CallLab, since: float, count: int = 1) -> list[dict]:
    deadline = time.monotonic() + 5
    done: list[dict] = []
    while time.monotonic() < deadline:
        with lab.api() as client:
            records = client.get("/cdr", params={"since": since}).json()["records"]
        done = [r for r in records if r["end_time"] is not None]
        if len(done) >= count:
            return done
        time.sleep(0.1)
    raise AssertionError(f"no records since {since}: {done}")


class Carriers:
    def __init__(self, lab: CallLab) -> None:
        self.lab = lab
        taken = [lab.server.host, lab.uac_host, *(h for h, _ in lab.callees.values())]
        host_a = other_host(*taken)
        host_b = other_host(*taken, host_a)
        self.a = (host_a, free_port(host_a, "udp"))
        self.b = (host_b, free_port(host_b, "udp"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CallLab, Carriers]]:
    require_tool("sipp")
    lab = start_lab(tmp_path_factory.mktemp("linecalls"), callees=("1002",))
    carriers = Carriers(lab)
    try:
        with lab.api() as api:
            for name, (host, port) in (("a", carriers.a), ("b", carriers.b)):
                made = api.post("/lines", json={
                    "name": name, "domain": "carrier.example", "proxy": f"{host}:{port}",
                    "account": f"line{name}", "password": "linepw", "register": False,
                })  # fmt: skip
                assert made.status_code == 201, made.text
            made = api.post("/prefixes", json={
                "pattern": "9", "strip": 1, "targets": ["line:a", "line:b"],
            })  # fmt: skip
            assert made.status_code == 201, made.text
        yield lab, carriers
    finally:
        lab.close()


def _messages(path: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in path.glob("carrier_*messages.log"))


def test_407_answered_and_failover_on_503(lab: tuple[CallLab, Carriers]) -> None:
    """Line a answers 503 -> line b (407, then answered); the CDR names line b."""
    call_lab, carriers = lab
    since = time.time() - 0.01
    first = carrier(call_lab, carriers.a, "carrier_503.xml")
    second = carrier(call_lab, carriers.b, "carrier_call_407.xml")
    time.sleep(0.3)
    result = call_lab.uac("uac_call.xml", "95551234", "-d", "300")
    log = call_lab.server.log_text()[-3000:]
    assert result.returncode == 0, result.stderr[-2000:] + log
    assert call_lab.wait_uas(first) == 0, first.stderr.read() if first.stderr else ""
    assert call_lab.wait_uas(second) == 0, second.stderr.read() if second.stderr else ""
    (record,) = records_since(call_lab, since)
    assert record["disposition"] == "answered", record
    assert record["line"] == "b", record
    assert record["dialed_number"] == "95551234"
    text = _messages(call_lab.server.state_dir.parent)
    assert "INVITE sip:5551234@carrier.example SIP/2.0" in text
    assert 'Proxy-Authorization: Digest username="lineb"' in text
    assert "From: <sip:lineb@carrier.example>" in text


def test_no_failover_on_603(lab: tuple[CallLab, Carriers]) -> None:
    """A 6xx from line a is the answer: line b never sees the call."""
    call_lab, carriers = lab
    since = time.time() - 0.01
    first = carrier(call_lab, carriers.a, "carrier_603.xml")
    time.sleep(0.3)
    result = call_lab.uac("uac_fail_603.xml", "95550000")
    assert result.returncode == 0, result.stderr[-2000:] + call_lab.server.log_text()[-3000:]
    assert call_lab.wait_uas(first) == 0
    (record,) = records_since(call_lab, since)
    assert record["status"] == 603 and record["line"] == "a", record
