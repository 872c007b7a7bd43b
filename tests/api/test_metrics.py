"""``/metrics``: parsed by prometheus-client's own parser; protected unless made public.

In-process against the fake server here; tests/integration/test_observability.py checks that
the counters move with real SIP traffic and that JSON log lines parse.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from sipbox.api import create_api
from tests.api.fakes import FakeServer


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_parse_and_show_live_values(
    client: httpx.AsyncClient,
    registrar,
    server: FakeServer,  # type: ignore[no-untyped-def]
) -> None:
    await client.post("/users", json={"number": "1001", "password": "x"})
    await client.post("/users", json={"number": "1002", "password": "x"})
    await server.users.refresh_many(["1001", "1002"])  # type: ignore[union-attr]
    registrar.add("1001", "sip:1001@192.0.2.1")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    assert values[("sipbox_users", ())] == 2
    assert values[("sipbox_registrations", ())] == 1
    assert values[("sipbox_reachable_users", ())] == 1
    assert values[("sipbox_info", (("domain", "pbx.test"), ("version", _version())))] == 1
    assert values[("sipbox_store_probe_seconds_count", ())] == 1
    registrar.add("1002", "sip:1002@192.0.2.2")
    again = samples((await client.get("/metrics")).text)
    assert again[("sipbox_registrations", ())] == 2
    assert again[("sipbox_store_probe_seconds_count", ())] == 2  # one probe per scrape


def _version() -> str:
    from sipbox import __version__

    return __version__


async def test_metrics_need_a_token_unless_public(
    anon: httpx.AsyncClient, reader: httpx.AsyncClient, server: FakeServer
) -> None:
    assert (await anon.get("/metrics")).status_code == 401
    assert (await reader.get("/metrics")).status_code == 200  # read-only is enough
    public: FastAPI = create_api(server, metrics_public=True)
    transport = httpx.ASGITransport(app=public)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as open_client:
        assert (await open_client.get("/metrics")).status_code == 200
        assert (await open_client.get("/users")).status_code == 401  # only /metrics
        document = (await open_client.get("/openapi.json")).json()
        assert document["paths"]["/metrics"]["get"]["security"] == []


def test_counters_move_with_traffic_and_json_logs_parse(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real server: OPTIONS pings move the SIP counters; log lines are JSON objects."""
    import json

    from tests.integration.server import make_server
    from tests.integration.siptools import final_response, options_request, udp_exchange

    server = make_server(tmp_path)
    server.env["SIPBOX_SERVER_LOG_FORMAT"] = "json"
    server.start()
    try:
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        with httpx.Client(base_url=server.api_url, headers=headers, timeout=10) as http:
            before = samples(http.get("/metrics").text)
            for i in range(3):
                answer = udp_exchange(
                    server.host,
                    server.port,
                    options_request(server.host, server.port, branch=f"z9hG4bKm{i}"),
                )
                final = final_response(answer)
                assert final is not None and final.status == 200
            after = samples(http.get("/metrics").text)
            status = http.get("/status").json()
        received = ("sipbox_sip_received_total", ())
        assert after[received] - before.get(received, 0) >= 3
        options = ("sipbox_sip_requests_received_total", (("method", "OPTIONS"),))
        assert after[options] - before.get(options, 0) == 3
        ok = ("sipbox_sip_responses_sent_total", (("status", "200"),))
        assert after[ok] - before.get(ok, 0) >= 3
        wire_in = (
            "sipbox_sip_messages_total",
            (("code", "OPTIONS"), ("direction", "in"), ("kind", "request")),
        )
        wire_out = (
            "sipbox_sip_messages_total",
            (("code", "200"), ("direction", "out"), ("kind", "response")),
        )
        assert after[wire_in] - before.get(wire_in, 0) == 3
        assert after[wire_out] - before.get(wire_out, 0) >= 3
        assert after[("sipbox_bans_active", ())] == 0
        assert after[("sipbox_calls_active", ())] == 0
        assert ("sipbox_sip_transactions_live", ()) in after
        # /status (what `sipbox status` and the dashboard show) has the same counters.
        assert status["sip_counters"]["received"] >= after[received]
        assert status["counts"]["calls"] == 0 and status["counts"]["bans"] == 0
    finally:
        server.stop()
    lines = [line for line in server.log_text().splitlines() if line.startswith("{")]
    assert lines, server.log_text()
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(e["message"] == "ready" for e in entries)
