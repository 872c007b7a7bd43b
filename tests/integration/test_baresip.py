"""baresip (a real softphone, headless) registers with user and password (issue 3)."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import require_tool
from tests.integration.regtools import digest_user, provision, stored_bindings
from tests.integration.server import make_server

pytestmark = pytest.mark.interop

MODULES = "/usr/lib/baresip/modules"


def write_baresip_config(directory, sip_host: str) -> None:
    """A minimal config: no audio device, no UI, account module only (CI-style)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config").write_text(
        f"""
poll_method epoll
module_path {MODULES}
sip_listen {sip_host}:0
audio_player aufile,/dev/null
audio_source aufile,/dev/null
audio_alert aufile,/dev/null
module_tmp uuid.so
module_tmp account.so
module g711.so
module aufile.so
module_app menu.so
"""
    )
    # baresip uses the file verbatim, so no trailing newline
    (directory / "uuid").write_text("6f3ae0a8-3f36-4b83-a3c4-38c5d0c6e7a1")
    (directory / "contacts").write_text("")


def test_baresip_registers_with_password(tmp_path) -> None:
    require_tool("baresip")
    server = make_server(tmp_path)
    realm = server.host
    provision(server, [digest_user("1001", realm, "s3cret!")])
    conf = tmp_path / "baresip"
    write_baresip_config(conf, "127.0.0.1")
    (conf / "accounts").write_text(
        f"<sip:1001@{server.host}:{server.port};transport=udp>;auth_pass=s3cret!;regint=60\n"
    )
    server.start()
    phone = subprocess.Popen(
        ["baresip", "-f", str(conf), "-t", "6"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # While baresip lives, the server holds its binding (written behind to the store
        # within ~0.2 s, which is where a subprocess test can see it).
        seen = []
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = [b for b in stored_bindings(server) if b.user_number == "1001"]
        assert seen, "no binding for 1001 while baresip was running"
        assert "baresip" in (seen[0].user_agent or "")
        assert seen[0].instance_id == "<urn:uuid:6f3ae0a8-3f36-4b83-a3c4-38c5d0c6e7a1>"
        deadline = time.monotonic() + 10
        while phone.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if phone.poll() is None:
            phone.terminate()
        output = phone.communicate(timeout=5)[0]
    finally:
        if phone.poll() is None:
            phone.kill()
        server.stop()
    text = output.decode(errors="replace")
    assert "200 OK" in text or "registered" in text.lower(), text[-3000:]
    assert "Traceback" not in server.log_text()
    # baresip unregisters on exit (REGISTER with expires=0): the binding is gone again.
    assert [b for b in stored_bindings(server) if b.user_number == "1001"] == []
