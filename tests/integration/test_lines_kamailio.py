"""A line against Kamailio as the carrier's registrar and proxy (issue 5).

Kamailio (Debian package ``kamailio``) runs in the foreground with a config written here:
digest authentication with a plain-text password (``pv_www_authenticate`` /
``pv_proxy_authenticate``, no database), ``registrar`` + ``usrloc`` in memory, and calls to
5551234 relayed (record-routed) to a SIPp UAS standing for the PSTN. The line must register
(401 answered for the right username) and the call out of the SIPp caller (``9`` + number)
must be authenticated (407), relayed, answered and hung up through Kamailio's Record-Route.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, require_tool
from tests.integration.calltools import CallLab, other_host, start_lab

pytestmark = pytest.mark.interop

MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

CONFIG = """#!KAMAILIO
# A carrier for sipbox's line tests: registrar + digest auth, nothing stored.
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:{host}:{port}
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "{password}", "0")) {{ www_challenge("$td", "0"); exit; }}
        if ($au != "{account}") {{ sl_send_reply("403", "Wrong User"); exit; }}
        xlog("L_NOTICE", "REGISTERED $tu contact $ct\\n");
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (is_method("INVITE")) {{
        if (!pv_proxy_authenticate("$fd", "{password}", "0")) {{
            proxy_challenge("$fd", "0");
            exit;
        }}
        if ($au != "{account}") {{ sl_send_reply("403", "Wrong User"); exit; }}
        consume_credentials();
        xlog("L_NOTICE", "CALL $fu -> $ru\\n");
        record_route();
        if ($rU == "5551234") {{
            $du = "sip:{pstn}";
            t_relay();
            exit;
        }}
        sl_send_reply("404", "No Such Number");
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""


@pytest.fixture
def kamailio_lab(tmp_path: Path) -> Iterator[tuple[CallLab, subprocess.Popen[str], Path]]:
    require_tool("sipp")
    kamailio = require_tool("kamailio")
    lab = start_lab(tmp_path, callees=("1002",))
    host = other_host(lab.server.host, lab.uac_host, *(h for h, _ in lab.callees.values()))
    port = free_port(host, "udp")
    pstn_host = other_host(host, lab.server.host, lab.uac_host)
    pstn = (pstn_host, free_port(pstn_host, "udp"))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CONFIG.format(
        host=host, port=port, modules=MODULES, password="kampw", account="5550200",
        pstn=f"{pstn[0]}:{pstn[1]}",
    ))  # fmt: skip
    run_dir = tmp_path / "kamailio-run"
    run_dir.mkdir()
    log = (tmp_path / "kamailio.log").open("w")
    proc = subprocess.Popen(
        [kamailio, "-f", str(cfg), "-DD", "-E", "-Y", str(run_dir), "-P", str(run_dir / "k.pid"),
         "-w", str(run_dir), "-m", "64", "-M", "8"],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lab.callees["pstn"] = pstn
    try:
        time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "kamailio.log").read_text()
        with lab.api() as api:
            made = api.post("/lines", json={
                "name": "kam", "domain": "carrier.example", "proxy": f"{host}:{port}",
                "account": "5550200", "password": "kampw", "expires": 120,
            })  # fmt: skip
            assert made.status_code == 201, made.text
        yield lab, proc, tmp_path / "kamailio.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        lab.close()


def test_line_registers_and_calls_out_through_kamailio(
    kamailio_lab: tuple[CallLab, subprocess.Popen[str], Path],
) -> None:
    lab, _proc, log_path = kamailio_lab
    deadline = time.monotonic() + 10
    status: dict = {}
    with lab.api() as api:
        while time.monotonic() < deadline:
            status = api.get("/lines").json()["lines"][0]["status"]
            if status["state"] == "registered":
                break
            time.sleep(0.1)
    assert status["state"] == "registered", (status, log_path.read_text()[-3000:])
    assert status["registered_until"] > time.time() + 60
    assert "REGISTERED sip:5550200@carrier.example contact <sip:sbx" in log_path.read_text()

    since = time.time() - 0.01
    pstn = lab.uas("pstn", "uas_answer_rr.xml", "-trace_msg")
    time.sleep(0.2)
    result = lab.uac("uac_call.xml", "95551234", "-d", "300")
    detail = log_path.read_text()[-3000:] + lab.server.log_text()[-3000:]
    assert result.returncode == 0, result.stderr[-2000:] + detail
    assert lab.wait_uas(pstn) == 0, (pstn.stderr.read() if pstn.stderr else "") + detail
    assert "CALL sip:5550200@carrier.example -> sip:5551234@carrier.example" in log_path.read_text()
    with lab.api() as api:
        deadline = time.monotonic() + 5
        records: list = []
        while time.monotonic() < deadline:
            records = [r for r in api.get("/cdr", params={"since": since}).json()["records"]
                       if r["end_time"]]  # fmt: skip
            if records:
                break
            time.sleep(0.1)
    assert records and records[0]["disposition"] == "answered", records
    assert records[0]["line"] == "kam" and records[0]["hangup_by"] == "caller"
