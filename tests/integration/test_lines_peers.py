"""Inbound calls from a line, and trunks both ways, against scriptable peers (issue 5).

One server for the module, with a short T1 (50 ms) so an unanswered OPTIONS keep-alive times
out in 3.2 s (64*T1) instead of 32 s. Peers (tests/integration/peertools.py), each on its own
127.0.0.x: the carrier of line ``in`` (answers its REGISTER, then calls the registered
Contact), trunks ``t`` and ``t2``, and a stranger. The callee 1002 is a SIPp UAS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import free_port, require_tool
from tests.integration.calltools import PASSWORD, CallLab, other_host
from tests.integration.peertools import SDP, Peer
from tests.integration.regtools import digest_user, provision
from tests.integration.server import make_server

pytestmark = pytest.mark.interop


class Lab:
    def __init__(self, calls: CallLab, peers: dict[str, Peer]) -> None:
        self.calls = calls
        self.server = calls.server
        self.peers = peers
        self.sip = (calls.server.host, calls.server.port)
        self.line_id = 0

    def status(self, kind: str, name: str) -> dict:
        with self.calls.api() as api:
            for item in api.get(f"/{kind}s").json()[f"{kind}s"]:
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
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s; last value {value!r}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_tool("sipp")
    tmp = tmp_path_factory.mktemp("peers")
    server = make_server(tmp, extra_config="\n[guard]\nenabled = false\n")
    server.env = {"SIPBOX_SIP_T1": "50ms"}
    uac_host = other_host(server.host)
    calls = CallLab(server, uac_host)
    callee_host = other_host(server.host, uac_host)
    calls.callees["1002"] = (callee_host, free_port(callee_host, "udp"))
    provision(server, [
        digest_user("1001", server.host, PASSWORD, ip_auth=(f"{uac_host}/32",)),
        digest_user("1002", server.host, PASSWORD, ip_auth=(f"{callee_host}/32",),
                    static_contact="{}:{}".format(*calls.callees["1002"])),
    ])  # fmt: skip
    taken = [server.host, uac_host, callee_host]
    peers: dict[str, Peer] = {}
    for name in ("carrier", "t", "t2", "stranger"):
        host = other_host(*taken)
        taken.append(host)
        peers[name] = Peer(host)
    server.start()
    lab = Lab(calls, peers)
    try:
        carrier, t, t2 = peers["carrier"], peers["t"], peers["t2"]
        with calls.api() as api:
            made = api.post("/lines", json={
                "name": "in", "domain": "carrier.example",
                "proxy": f"{carrier.host}:{carrier.port}", "account": "5550100",
                "password": "linepw",
            })  # fmt: skip
            assert made.status_code == 201, made.text
            lab.line_id = made.json()["id"]
            for name, peer in (("t", t), ("t2", t2)):
                made = api.post("/trunks", json={
                    "name": name, "addresses": [f"{peer.host}:{peer.port}"], "keepalive": 1,
                })  # fmt: skip
                assert made.status_code == 201, made.text
            for body in ({"source": "in", "did": "5550100", "destination": "1002"},
                         {"source": "t", "did": "5550101", "destination": "1002"}):  # fmt: skip
                made = api.post("/inbound-routes", json=body)
                assert made.status_code == 201, made.text
            made = api.post("/prefixes", json={
                "pattern": "8", "strip": 1, "targets": ["trunk:t", "trunk:t2"],
            })  # fmt: skip
            assert made.status_code == 201, made.text
        yield lab
    finally:
        calls.close()
        for peer in peers.values():
            peer.close()


def _call_in(lab: Lab, peer: Peer, uri: str, to: str) -> str:
    """`peer` calls `uri`; the SIPp UAS 1002 answers; the peer ACKs and hangs up."""
    uas = lab.calls.uas("1002", "uas_answer.xml")
    time.sleep(0.2)
    call_id = peer.request("INVITE", uri, lab.sip, to=to, body=SDP.format(host=peer.host))
    ok = peer.final(call_id)
    assert ok.status == 200, ok
    tag = ok.to.tag
    assert tag
    contact = ok.contacts[0].address
    assert contact is not None
    target = str(contact.uri)
    peer.request("ACK", target, lab.sip, to=to, call_id=call_id, to_tag=tag)
    time.sleep(0.3)
    peer.request("BYE", target, lab.sip, to=to, call_id=call_id, to_tag=tag, cseq=2)
    assert peer.final(call_id).status == 200
    assert lab.calls.wait_uas(uas) == 0, uas.stderr.read() if uas.stderr else ""
    return call_id


def _record(lab: Lab, call_id: str) -> dict:
    def find() -> dict | None:
        with lab.calls.api() as api:
            for record in api.get("/cdr").json()["records"]:
                if record["a_call_id"] == call_id and record["end_time"]:
                    return record
        return None

    return _wait(find, 5)


def _refused(lab: Lab, peer: Peer, uri: str, to: str) -> int:
    call_id = peer.request("INVITE", uri, lab.sip, to=to, body=SDP.format(host=peer.host))
    return peer.final(call_id).status


def test_inbound_call_from_line(lab: Lab) -> None:
    """The carrier calls the line's registered Contact with a DID; the route rings 1002."""
    carrier = lab.peers["carrier"]
    _wait(lambda: lab.status("line", "in")["state"] == "registered")
    user = carrier.contact_user
    assert user and user.startswith("sbx")
    uri = f"sip:{user}@{lab.server.host}:{lab.server.port}"
    call_id = _call_in(lab, carrier, uri, "<sip:5550100@carrier.example>")
    record = _record(lab, call_id)
    assert record["disposition"] == "answered", record
    assert record["line"] == "in" and record["caller_number"] == "+8613800000000", record
    assert record["destination"].startswith("1002"), record


def test_line_contact_user_from_elsewhere_is_not_trusted(lab: Lab) -> None:
    """A stranger naming the line's Contact user, or the carrier naming another user, is
    treated like anyone else: challenged, never routed."""
    user = lab.peers["carrier"].contact_user
    uri = f"sip:{user}@{lab.server.host}:{lab.server.port}"
    status = _refused(lab, lab.peers["stranger"], uri, "<sip:5550100@carrier.example>")
    assert status == 407
    other = f"sip:sbx000000000000@{lab.server.host}:{lab.server.port}"
    assert _refused(lab, lab.peers["carrier"], other, "<sip:5550100@carrier.example>") == 407


def test_trunk_inbound_by_address(lab: Lab) -> None:
    """A trunk calls in without credentials (DID in the Request-URI); a stranger using the
    same DID and the trunk's name in From is challenged."""
    t = lab.peers["t"]
    uri = f"sip:5550101@{lab.server.host}:{lab.server.port}"
    call_id = _call_in(lab, t, uri, "<sip:5550101@trunk.example>")
    record = _record(lab, call_id)
    assert record["line"] == "t" and record["disposition"] == "answered", record
    assert _refused(lab, lab.peers["stranger"], uri, f"<sip:5550101@{t.host}>") == 407


def test_trunk_outbound_and_keepalive_failover(lab: Lab) -> None:
    """8 + number leaves through trunk t (no auth); when t stops answering OPTIONS it is
    marked down and the next call skips it (t2); answering again brings it back up."""
    t, t2 = lab.peers["t"], lab.peers["t2"]
    for peer in (t, t2):
        peer.on_invite = peer.answer
    assert _wait(lambda: t.count("OPTIONS") >= 1, 5)
    assert lab.status("trunk", "t")["state"] == "up"
    since = time.time() - 0.01
    result = lab.calls.uac("uac_call.xml", "85559999", "-d", "200")
    assert result.returncode == 0, result.stderr[-2000:] + lab.server.log_text()[-3000:]
    invite, _ = t.wait(lambda m: getattr(m, "method", "") == "INVITE")
    assert invite.uri_text.startswith("sip:5559999@")  # type: ignore[attr-defined]
    assert invite.headers.get("proxy-authorization") is None

    t.answer_options = False
    _wait(lambda: lab.status("trunk", "t")["state"] == "down", 10)
    result = lab.calls.uac("uac_call.xml", "85558888", "-d", "200")
    assert result.returncode == 0, result.stderr[-2000:] + lab.server.log_text()[-3000:]
    t2.wait(lambda m: getattr(m, "method", "") == "INVITE")
    with lab.calls.api() as api:
        records = api.get("/cdr", params={"since": since}).json()["records"]
    lines = sorted((r["dialed_number"], r["line"]) for r in records)
    assert lines == [("85558888", "t2"), ("85559999", "t")], records
    t.answer_options = True
    _wait(lambda: lab.status("trunk", "t")["state"] == "up", 5)
