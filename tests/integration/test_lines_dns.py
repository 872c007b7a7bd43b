"""RFC 3263 for a line without a proxy (issue 5), against a DNS server the test runs.

`carrier.test` has a NAPTR (SIP+D2U) -> `_sip._udp.carrier.test` SRV -> two SBCs by priority,
each an A record on its own 127.0.0.x. The first answers REGISTER with 503: the line fails
over to the second at once, registers there, and refreshes there (sticky).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from sipbox.pbx.lines.dns import resolve_sip_targets
from sipbox.sip.address import Address
from tests.conftest import loopback_host
from tests.integration.calltools import other_host
from tests.integration.dnstools import NAPTR, SRV, A, DnsServer, a, naptr, srv
from tests.integration.peertools import Peer
from tests.integration.server import make_server


def _wait(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s; last value {value!r}")


def test_naptr_srv_a_failover_and_sticky_target(tmp_path: Path) -> None:
    sbc1 = Peer(loopback_host())
    sbc2 = Peer(other_host(sbc1.host))
    sbc1.register_status = 503
    sbc2.register_expires = 4
    records = {
        ("carrier.test", NAPTR): [naptr(10, 10, "s", "SIP+D2U", "_sip._udp.carrier.test")],
        ("_sip._udp.carrier.test", SRV): [
            srv(20, 0, sbc2.port, "sbc2.carrier.test"),
            srv(10, 0, sbc1.port, "sbc1.carrier.test"),
        ],
        ("sbc1.carrier.test", A): [a(sbc1.host)],
        ("sbc2.carrier.test", A): [a(sbc2.host)],
    }
    dns = DnsServer(other_host(sbc1.host, sbc2.host), records)
    server = make_server(
        tmp_path,
        extra_config=f'\n[guard]\nenabled = false\n[dns]\nservers = ["{dns.address}"]\n',
    )
    server.start()
    try:
        api = httpx.Client(base_url=server.api_url, timeout=10,
                           headers={"Authorization": f"Bearer {server.admin_token()}"})  # fmt: skip
        made = api.post("/lines", json={"name": "dns", "domain": "carrier.test",
                                        "account": "5550100", "password": "pw"})  # fmt: skip
        assert made.status_code == 201, made.text
        line_id = made.json()["id"]
        status = _wait(lambda: (s := api.get(f"/lines/{line_id}").json()["status"])["state"]
                       == "registered" and s)  # fmt: skip
        assert status["target"] == f"udp:{sbc2.host}:{sbc2.port}", status
        assert ("carrier.test", NAPTR) in dns.queries and ("sbc2.carrier.test", A) in dns.queries
        assert sbc1.count("REGISTER") == 1  # tried first (priority 10), answered 503
        # The refresh (granted 4 s -> at 2 s) goes to the target that accepted.
        _wait(lambda: sbc2.count("REGISTER") >= 2, 6)
        assert sbc1.count("REGISTER") == 1
    finally:
        server.stop()
        for closing in (sbc1, sbc2, dns):
            closing.close()


def test_resolver_srv_without_naptr_and_a_fallback() -> None:
    """No NAPTR: the transport's SRV name; no SRV either: the domain's A on port 5060."""
    host = loopback_host()
    records = {
        ("srv.test", A): [a("192.0.2.9")],  # the name exists, no NAPTR for it
        ("_sip._udp.srv.test", SRV): [srv(10, 5, 5080, "x.srv.test")],
        ("x.srv.test", A): [a("192.0.2.1"), a("192.0.2.2")],
        ("plain.test", A): [a("192.0.2.3")],
    }
    with DnsServer(host, records) as dns:
        servers = (dns.address,)
        found = asyncio.run(resolve_sip_targets("srv.test", "udp", servers=servers, timeout=1))
        assert found == [Address("udp", "192.0.2.1", 5080), Address("udp", "192.0.2.2", 5080)]
        plain = asyncio.run(resolve_sip_targets("plain.test", "udp", servers=servers, timeout=1))
        assert plain == [Address("udp", "192.0.2.3", 5060)]
        none = asyncio.run(resolve_sip_targets("nx.test", "udp", servers=servers, timeout=1))
        assert none == []
