"""External lines, the items left after the first slices (issue 5), against scriptable peers:
OPTIONS keep-alive per line, `line test` withdrawing its binding, the line's identity on calls
out (Contact, From overrides, display, Request-URI parameters, PAI/PPI, new Call-ID per
refresh), "register now", class of service on forwarded calls leaving through a line.

One server for the module, T1 = 50 ms so an unanswered OPTIONS/REGISTER times out in 3.2 s
(64*T1). Every peer (tests/integration/peertools.py) is a carrier on its own 127.0.0.x.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sipbox.sip.message import Message, Request
from sipbox.storage import NewUser
from tests.conftest import free_port, require_tool
from tests.integration.calltools import PASSWORD, CallLab, other_host
from tests.integration.peertools import Peer
from tests.integration.regtools import digest_user, provision
from tests.integration.server import make_server

pytestmark = pytest.mark.interop

PEERS = ("ka", "lt", "out", "fw")


class Lab:
    def __init__(self, calls: CallLab, peers: dict[str, Peer]) -> None:
        self.calls = calls
        self.server = calls.server
        self.peers = peers

    def api(self) -> Any:
        return self.calls.api()

    def add_line(self, name: str, **fields: Any) -> int:
        peer = self.peers[name]
        body = {
            "name": name, "domain": f"{name}.example", "proxy": f"{peer.host}:{peer.port}",
            "account": "5550100", "password": "linepw", **fields,
        }  # fmt: skip
        with self.api() as api:
            made = api.post("/lines", json=body)
        assert made.status_code == 201, made.text
        return int(made.json()["id"])

    def status(self, name: str) -> dict:
        with self.api() as api:
            for item in api.get("/lines").json()["lines"]:
                if item["name"] == name:
                    return item["status"]
        raise KeyError(name)


def _wait(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s; last value {value!r}")


def _is(method: str) -> Any:
    return lambda m: isinstance(m, Request) and m.method == method


def _registers(peer: Peer, expires: str | None = None) -> list[Message]:
    with peer._lock:
        return [
            m for m, _ in peer.received
            if isinstance(m, Request) and m.method == "REGISTER"
            and (expires is None or m.headers.get("expires") == expires)
        ]  # fmt: skip


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_tool("sipp")
    tmp = tmp_path_factory.mktemp("more")
    server = make_server(
        tmp,
        extra_config='\n[guard]\nenabled = false\n[lines]\ntest_spacing = "100ms"\n'
        'emergency_route = ["line:fw"]\n',
    )
    server.env = {"SIPBOX_SIP_T1": "50ms"}
    uac_host = other_host(server.host)
    calls = CallLab(server, uac_host)
    callee_host = other_host(server.host, uac_host)
    calls.callees["1002"] = (callee_host, free_port(callee_host, "udp"))
    provision(server, [
        digest_user("1001", server.host, PASSWORD, ip_auth=(f"{uac_host}/32",),
                    display_name="Alice", class_of_service="international"),
        digest_user("1002", server.host, PASSWORD, ip_auth=(f"{callee_host}/32",),
                    static_contact="{}:{}".format(*calls.callees["1002"])),
        # Forwarding to numbers out through line fw (prefix 6): 1003 and 1005 to an
        # international one, 1004 (class none) to an emergency number.
        NewUser("1003", class_of_service="local",
                    settings={"forwarding": {"unconditional": "6004412345"}}),
        NewUser("1004", class_of_service="none",
                    settings={"forwarding": {"unconditional": "112"}}),
        NewUser("1005", class_of_service="international",
                    settings={"forwarding": {"unconditional": "6004412345"}}),
    ])  # fmt: skip
    taken = [server.host, uac_host, callee_host]
    peers: dict[str, Peer] = {}
    for name in PEERS:
        host = other_host(*taken)
        taken.append(host)
        peers[name] = Peer(host)
    server.start()
    try:
        yield Lab(calls, peers)
    finally:
        calls.close()
        for peer in peers.values():
            peer.close()


def test_line_keepalive_unreachable_and_back(lab: Lab) -> None:
    """OPTIONS every `keepalive` s to the registered target; when it stops answering the line
    shows `reachable: false`, the registration is not dropped but re-REGISTERs at once; when
    the target answers again the line is reachable and registered again."""
    peer = lab.peers["ka"]
    lab.add_line("ka", keepalive=0.5)
    _wait(lambda: lab.status("ka")["state"] == "registered")
    options, _ = peer.wait(_is("OPTIONS"), 3)
    assert options.uri_text == "sip:ka.example"  # type: ignore[attr-defined]
    assert "<sip:5550100@ka.example>" in (options.headers.get("from") or "")
    _wait(lambda: lab.status("ka")["reachable"] is True, 3)

    before = len(_registers(peer))
    peer.silent = True
    lost = _wait(lambda: (s := lab.status("ka"))["reachable"] is False and s, 6)
    assert lost["state"] == "registered", lost  # one lost OPTIONS does not drop the binding
    _wait(lambda: len(_registers(peer)) > before, 2)  # ...but re-REGISTERs at once
    _wait(lambda: lab.status("ka")["state"] == "failed", 6)  # that REGISTER timed out too

    peer.silent = False
    back = _wait(lambda: (s := lab.status("ka"))["state"] == "registered" and s, 6)
    assert back["reachable"] is True, back


def test_line_test_withdraws_its_binding(lab: Lab) -> None:
    """An accepted `line test` REGISTER is followed by the same Contact with Expires: 0 when
    the line is not registered itself; a registered line's own binding is left alone."""
    peer = lab.peers["lt"]
    line_id = lab.add_line("lt", register=False)
    with lab.api() as api:
        report = api.post(f"/lines/{line_id}/test", json={}).json()
    assert report["accepted"] and report["accepted"]["released"] is True, report
    assert "withdrawn" in report["summary"]
    bound = _registers(peer, "3600")
    gone = _registers(peer, "0")
    assert len(bound) == 1 and len(gone) == 1, peer.received
    assert gone[0].headers.get("contact") == bound[0].headers.get("contact")
    assert gone[0].call_id == bound[0].call_id

    with lab.api() as api:
        assert api.patch(f"/lines/{line_id}", json={"register": True}).status_code == 200
        _wait(lambda: lab.status("lt")["state"] == "registered")
        report = api.post(f"/lines/{line_id}/test", json={}).json()
    assert report["accepted"] and report["accepted"]["released"] is False, report
    assert len(_registers(peer, "0")) == 1  # no un-REGISTER of the live binding
    assert lab.status("lt")["state"] == "registered"


def _hang_up_from_carrier(peer: Peer, sip: tuple[str, int]) -> None:
    """`on_invite` of a carrier that answers, then hangs up itself: its BYE goes to the
    Contact of our INVITE (the line's registered Contact), as a carrier's would."""

    def on_invite(invite: Request, addr: tuple[str, int]) -> None:
        if invite.to.tag:
            return
        peer.answer(invite, addr)

        def bye() -> None:
            time.sleep(0.6)
            contact = (invite.headers.get("contact") or "").split("<", 1)[-1].split(">", 1)[0]
            h = invite.headers
            peer.send(
                f"BYE {contact} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {peer.host}:{peer.port};branch=z9hG4bKbye{time.time_ns()}\r\n"
                f"From: {h.get('to')};tag=peer1\r\nTo: {h.get('from')}\r\n"
                f"Call-ID: {invite.call_id}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n",
                sip,
            )

        threading.Thread(target=bye, daemon=True).start()

    peer.on_invite = on_invite


def test_line_identity_on_the_wire(lab: Lab) -> None:
    """A call out through a line carries the line's registered Contact user at our address
    (the carrier's BYE to it reaches the caller), the From overrides and display name, the
    Request-URI parameters, P-Asserted-Identity; refreshes use a new Call-ID each."""
    peer = lab.peers["out"]
    peer.register_expires = 2  # refresh after 1 s
    lab.add_line(
        "out", from_user="+8675500000001", from_domain="ims.out.example", display="ACME",
        uri_params="user=phone", new_call_id=True, identity_header="pai",
    )  # fmt: skip
    _wait(lambda: len(_registers(peer, "3600")) >= 2, 5)
    peer.register_expires = 60
    first, second = _registers(peer, "3600")[:2]
    assert first.call_id != second.call_id
    with lab.api() as api:
        made = api.post("/prefixes", json={"pattern": "7", "strip": 1, "targets": ["line:out"]})
        assert made.status_code == 201, made.text
    _hang_up_from_carrier(peer, (lab.server.host, lab.server.port))

    result = lab.calls.uac("uac_wait_bye.xml", "75551234")
    assert result.returncode == 0, result.stderr[-2000:] + lab.server.log_text()[-3000:]
    invite, _ = peer.wait(lambda m: _is("INVITE")(m) and not m.to.tag)
    h = invite.headers
    assert invite.uri_text == "sip:5551234@out.example;user=phone"  # type: ignore[attr-defined]
    assert "<sip:5551234@out.example;user=phone>" in (h.get("to") or "")
    assert (h.get("from") or "").startswith('"ACME" <sip:+8675500000001@ims.out.example>')
    assert h.get("p-asserted-identity") == "<sip:+8675500000001@ims.out.example>"
    assert h.get("p-preferred-identity") is None
    contact = h.get("contact") or ""
    assert contact.startswith(f"<sip:{peer.contact_user}@{lab.server.host}:{lab.server.port}")
    peer.wait(lambda m: getattr(m, "status", 0) == 200 and m.cseq.method == "BYE")


def test_register_now_and_at_start_up(lab: Lab) -> None:
    """A line in backoff after a 403 registers at once with `POST /lines/{id}/register`
    (`sipbox line register`), not after its 60 s backoff; a disabled line answers 409. After
    a restart every enabled line sends its REGISTER at once."""
    from tests.test_cli import LiveApi, run

    peer = lab.peers["ka"]
    with lab.api() as api:
        line = next(x for x in api.get("/lines").json()["lines"] if x["name"] == "ka")
        peer.register_status = 403
        api.patch(f"/lines/{line['id']}", json={"expires": 1800})  # edited: re-registers
        failed = _wait(lambda: (s := lab.status("ka"))["state"] == "failed" and s)
        assert failed["last_status"] == 403 and failed["next_attempt"] > time.time() + 30
        peer.register_status = 200
        answer = api.post(f"/lines/{line['id']}/register")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"]["state"] in ("registering", "registered")
        _wait(lambda: lab.status("ka")["state"] == "registered", 3)
        assert lab.status("ka")["failures"] == 0

        s = lab.server
        live = LiveApi(url=s.api_url, token=s.admin_token(), config=s.config_path)
        before = len(_registers(peer))
        done = run(live, "line", "register", "ka")
        assert done.exit_code == 0 and "line ka:" in done.stdout, done.output
        _wait(lambda: len(_registers(peer)) > before, 3)

        api.patch(f"/lines/{line['id']}", json={"enabled": False})
        assert api.post(f"/lines/{line['id']}/register").status_code == 409
        api.patch(f"/lines/{line['id']}", json={"enabled": True})

    lab.server.stop()
    counts = {name: len(_registers(lab.peers[name], "0")) for name in ("lt", "out")}
    assert all(counts.values()), counts  # un-REGISTERed at shutdown
    seen = {name: len(_registers(lab.peers[name])) for name in ("ka", "lt", "out")}
    started = time.monotonic()
    lab.server.start()
    for name, count in seen.items():
        _wait(lambda name=name, count=count: len(_registers(lab.peers[name])) > count, 5)
    assert time.monotonic() - started < 8
    for name in seen:
        _wait(lambda name=name: lab.status(name)["state"] == "registered", 3)


def test_class_of_service_on_forwarding_through_a_line(lab: Lab) -> None:
    """The forwarding user's class must cover the number leaving through a line: 1003
    (`local`) cannot forward to an international number (its forwarding is not taken; it
    is offline: 480), 1005 (`international`) can (Diversion names the line's number); an
    emergency number always routes, even forwarded by 1004 of class `none` (emergency_route)."""
    peer = lab.peers["fw"]
    lab.add_line("fw")
    _wait(lambda: lab.status("fw")["state"] == "registered")
    with lab.api() as api:
        made = api.post("/prefixes", json={"pattern": "6", "strip": 1, "targets": ["line:fw"]})
        assert made.status_code == 201, made.text
    _hang_up_from_carrier(peer, (lab.server.host, lab.server.port))
    log = lab.server.log_text

    refused = lab.calls.uac("uac_fail_480.xml", "1003")
    assert refused.returncode == 0, refused.stderr[-2000:] + log()[-3000:]
    assert peer.count("INVITE") == 0

    allowed = lab.calls.uac("uac_wait_bye.xml", "1005")
    assert allowed.returncode == 0, allowed.stderr[-2000:] + log()[-3000:]
    invite, _ = peer.wait(lambda m: _is("INVITE")(m) and not m.to.tag)
    assert invite.uri_text == "sip:004412345@fw.example"  # type: ignore[attr-defined]
    assert (invite.headers.get("diversion") or "").startswith("<sip:5550100@fw.example>")

    emergency = lab.calls.uac("uac_wait_bye.xml", "1004")
    assert emergency.returncode == 0, emergency.stderr[-2000:] + log()[-3000:]
    invite, _ = peer.wait(lambda m: _is("INVITE")(m) and not m.to.tag)
    assert invite.uri_text == "sip:112@fw.example"  # type: ignore[attr-defined]
