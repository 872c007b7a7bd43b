"""SIPp with [authentication]: 1,000 users register with digest, a wrong password gets 403,
unregister works, and bindings survive a restart (issue 3, "How it is tested")."""

from __future__ import annotations

import pytest

from tests.conftest import require_tool
from tests.integration.regtools import (
    DigestUA,
    digest_user,
    injection,
    provision,
    run_sipp,
    stored_bindings,
)
from tests.integration.server import make_server

pytestmark = pytest.mark.interop

USERS = 1000


def _check(proc, what: str) -> None:
    assert proc.returncode == 0, f"{what}: sipp exit {proc.returncode}\n{proc.stderr[-3000:]}"


def test_thousand_users_register_wrong_password_unregister_restart(tmp_path) -> None:
    require_tool("sipp")
    server = make_server(tmp_path, extra_config="\n[guard]\nenabled = false\n")
    realm = server.host
    numbers = [str(100000 + i) for i in range(USERS)]
    provision(server, [digest_user(n, realm, f"pw{n}") for n in numbers])
    csv = tmp_path / "users.csv"
    csv.write_text(injection((n, f"pw{n}") for n in numbers))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(injection((n, "nope") for n in numbers[:3]))
    server.start()
    try:
        proc = run_sipp(
            server, "register_auth.xml", csv=csv, calls=USERS, rate=500,
            extra=["-set", "expires", "3600"],
        )  # fmt: skip
        _check(proc, "register 1000 users")
        proc = run_sipp(server, "register_wrong.xml", csv=wrong, calls=3, rate=10)
        _check(proc, "wrong password -> 403")

        # Unregister the first 10 users (Expires: 0 through the same digest scenario).
        first10 = tmp_path / "first10.csv"
        first10.write_text(injection((n, f"pw{n}") for n in numbers[:10]))
        proc = run_sipp(
            server, "register_auth.xml", csv=first10, calls=10, rate=50,
            extra=["-set", "expires", "0"],
        )  # fmt: skip
        _check(proc, "unregister")

        server.stop()  # flushes the write-behind queue
        bindings = stored_bindings(server)
        assert len(bindings) == USERS - 10
        assert {b.user_number for b in bindings} == set(numbers[10:])

        # After a restart the binding is still there: a query REGISTER (no Contact) lists it.
        server.start()
        ua = DigestUA(server, numbers[500], f"pw{numbers[500]}", "127.0.0.1")
        try:
            ok = ua.register(expires=None, contact=False)
        finally:
            ua.close()
        assert ok.status == 200
        assert f"sip:{numbers[500]}@127.0.0.1" in (ok.headers.get("Contact") or "")
    finally:
        server.stop()
        log = server.log_text()
        assert "Traceback" not in log, log[-4000:]
