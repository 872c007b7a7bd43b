"""Two baresip softphones (headless) register and call each other through sipbox (issue 4):
1002 answers automatically, 1001 dials it with a `-e` command and quits after a few seconds
(which hangs up); the call record says `answered` with a duration."""

from __future__ import annotations

import subprocess
import time
import wave

import httpx
import pytest

from tests.conftest import loopback_host, require_tool
from tests.integration.regtools import digest_user, provision, stored_bindings
from tests.integration.server import make_server
from tests.integration.test_baresip import MODULES

pytestmark = pytest.mark.interop


def phone_config(directory, host: str, account: str) -> None:
    """No sound device: a WAV file of silence as the microphone, a file as the speaker."""
    directory.mkdir(parents=True, exist_ok=True)
    with wave.open(str(directory / "silence.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000 * 10)
    (directory / "config").write_text(
        f"""
poll_method epoll
module_path {MODULES}
sip_listen {host}:0
audio_player aufile,{directory / "heard.wav"}
audio_source aufile,{directory / "silence.wav"}
audio_alert aufile,/dev/null
module_tmp uuid.so
module_tmp account.so
module g711.so
module aufile.so
module_app menu.so
"""
    )
    (directory / "accounts").write_text(account + "\n")
    (directory / "contacts").write_text("")


def test_two_baresip_phones_call_each_other(tmp_path) -> None:
    require_tool("baresip")
    server = make_server(tmp_path, extra_config="\n[guard]\nenabled = false\n")
    realm = server.host
    provision(server, [digest_user(n, realm, "pw-" + n) for n in ("1001", "1002")])
    server.start()
    target = f"{server.host}:{server.port};transport=udp"
    callee_dir, caller_dir = tmp_path / "b1002", tmp_path / "b1001"
    phone_config(callee_dir, loopback_host(),
                 f"<sip:1002@{target}>;auth_pass=pw-1002;regint=60;answermode=auto")  # fmt: skip
    phone_config(caller_dir, loopback_host(), f"<sip:1001@{target}>;auth_pass=pw-1001;regint=0")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        callee = subprocess.Popen(
            ["baresip", "-f", str(callee_dir), "-t", "15"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(callee)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if [b for b in stored_bindings(server) if b.user_number == "1002"]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("1002 did not register")
        since = time.time() - 0.01
        dial = f"/dial sip:1002@{server.host}:{server.port}"  # -e runs it like typed input
        caller = subprocess.Popen(
            ["baresip", "-f", str(caller_dir), "-t", "5", "-e", dial],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(caller)
        try:
            caller_out = caller.communicate(timeout=12)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            caller.terminate()
            caller_out = caller.communicate(timeout=5)[0].decode(errors="replace")
            raise AssertionError(caller_out[-4000:]) from None
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        record = None
        deadline = time.monotonic() + 8
        with httpx.Client(base_url=server.api_url, headers=headers, timeout=5) as client:
            while record is None and time.monotonic() < deadline:
                records = client.get("/cdr", params={"since": since}).json()["records"]
                done = [r for r in records if r["end_time"] is not None]
                record = done[0] if done else None
                time.sleep(0.2)
        assert record is not None, caller_out[-3000:] + server.log_text()[-3000:]
        assert record["disposition"] == "answered", (record, caller_out[-3000:])
        assert record["caller_number"] == "1001" and record["dialed_number"] == "1002"
        assert record["duration"] >= 1 and record["hangup_by"] == "caller"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        server.stop()
    assert "Traceback" not in server.log_text()
