"""``/metrics``: Prometheus text exposition, read from the live server at scrape time.

Why a custom collector instead of counters updated on the SIP path: the endpoint, the guard,
the registrar and the B2BUA already keep plain integer counters and tables; reading them when
Prometheus scrapes (every 15-60 s) costs the SIP path nothing. Each app has its own
`CollectorRegistry` (no global registry: two apps in one test process must not collide).

Values that need the database (users, calls by disposition) are fetched by the route before
rendering, and the same query times the store: ``sipbox_store_probe_seconds`` is a histogram of
those probes, so a slow or overloaded database shows up in the scraped data.

Protected like the rest of the API (a read-only token is enough), or public with
``[api] metrics_public = true``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sipbox import __version__
from sipbox.api.deps import Services, ServicesDep
from sipbox.api.routes.cdr import Disposition
from sipbox.api.routes.common import AUTH_ERRORS
from sipbox.storage import CdrFilter

__all__ = ["PATH", "MetricsState", "router"]

PATH: Final = "/metrics"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["status"], responses=AUTH_ERRORS)

#: Endpoint counters (`sipbox.sip.endpoint.EndpointStats`) exported as ``sipbox_sip_<name>``.
_ENDPOINT_COUNTERS: Final[Mapping[str, str]] = {
    "received": "Datagrams/frames received by the SIP endpoint",
    "sent": "SIP messages sent, retransmissions included",
    "retransmissions": "Requests, responses and ACKs sent again",
    "discarded": "Received messages discarded (unparseable, unattributable)",
    "absorbed": "Retransmissions from peers absorbed by a transaction",
    "stateless_responses": "Error responses sent without a transaction",
    "stateless_answers": "Requests answered by the PBX without a transaction (OPTIONS pings)",
    "overloaded": "Requests refused with 503 because of the transaction cap",
    "timeouts": "Client and server transaction timeouts",
}


@dataclass(slots=True)
class _Snapshot:
    """What the route read from the database just before rendering."""

    users: int | None = None
    calls_by_disposition: dict[str, int] = field(default_factory=dict)


class _ServerCollector(Collector):
    """Reads the running server's parts when `collect` runs (see module docstring)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.snapshot = _Snapshot()

    def collect(self) -> Iterator[Metric]:
        services = self.services
        context = services.context
        info = GaugeMetricFamily(
            "sipbox_info", "Version and SIP domain", labels=["version", "domain"]
        )
        info.add_metric([__version__, context.domain], 1)
        yield info
        yield _gauge(
            "sipbox_uptime_seconds", "Seconds since start", time.time() - context.started_at
        )
        if self.snapshot.users is not None:
            yield _gauge("sipbox_users", "Configured users", self.snapshot.users)
        registrar = services.registrar
        if registrar is not None:
            yield _gauge("sipbox_registrations", "Live registrations (bindings)", registrar.count())
            directory = services.directory
            if directory is not None:
                reachable = sum(1 for u in directory.all() if registrar.reachable(u.number))
                yield _gauge("sipbox_reachable_users", "Users calls can reach now", reachable)
        yield from _endpoint_metrics(getattr(context, "endpoint", None))
        yield from _dispatcher_metrics(getattr(context, "dispatcher", None))
        yield from _security_metrics(getattr(context, "security", None))
        yield from self._call_metrics(getattr(context, "calls", None))
        yield from _line_metrics(getattr(context, "lines", None))
        yield _gauge("sipbox_web_sessions", "Logged-in web admin sessions", len(services.sessions))

    def _call_metrics(self, calls: Any) -> Iterator[Metric]:
        b2bua = getattr(calls, "b2bua", None)
        if b2bua is None:
            return
        yield _gauge("sipbox_calls_active", "Calls in progress", len(b2bua.calls))
        by = self.snapshot.calls_by_disposition
        if by:
            family = CounterMetricFamily(
                "sipbox_calls",
                "Finished calls since start, by disposition (from call records)",
                labels=["disposition"],
            )
            for disposition, count in sorted(by.items()):
                family.add_metric([disposition], count)
            yield family
        stats = getattr(b2bua, "stats", None)
        if isinstance(stats, Mapping):
            family = CounterMetricFamily(
                "sipbox_b2bua_events", "B2BUA events (calls, answered, ...)", labels=["event"]
            )
            for name, value in sorted(stats.items()):
                family.add_metric([str(name)], value)
            yield family
        setup = getattr(b2bua, "setup_times", None)
        if setup is not None:
            histogram = HistogramMetricFamily(
                "sipbox_call_setup_seconds",
                "Time from the caller's INVITE to the first 18x or 2xx of a device rung",
                buckets=setup.cumulative(),
                sum_value=setup.total,
            )
            yield histogram


def _line_metrics(lines: Any) -> Iterator[Metric]:
    """Registration state of each external line and up/down of each trunk, read now."""
    if lines is None:
        return
    registered = GaugeMetricFamily(
        "sipbox_line_registered", "1 when the external line is registered now", labels=["line"]
    )
    state = GaugeMetricFamily(
        "sipbox_line_state",
        "External line registration state (1 for the current state)",
        labels=["line", "state"],
    )
    for name in sorted(getattr(lines, "lines", {})):
        current = str(lines.line_status(name).get("state", "unknown"))
        registered.add_metric([name], 1 if current == "registered" else 0)
        state.add_metric([name, current], 1)
    yield registered
    yield state
    trunks = GaugeMetricFamily(
        "sipbox_trunk_up", "1 when the trunk answers OPTIONS", labels=["trunk"]
    )
    for name in sorted(getattr(lines, "trunks", {})):
        trunks.add_metric([name], 1 if lines.trunk_status(name).get("state") == "up" else 0)
    yield trunks


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _endpoint_metrics(endpoint: Any) -> Iterator[Metric]:
    stats = getattr(endpoint, "stats", None)
    if stats is None:
        return
    for name, doc in _ENDPOINT_COUNTERS.items():
        value = getattr(stats, name, None)
        if isinstance(value, int):
            yield CounterMetricFamily(f"sipbox_sip_{name}", doc, value=value)
    wire = getattr(stats, "wire", None)
    if isinstance(wire, Mapping):
        family = CounterMetricFamily(
            "sipbox_sip_messages",
            "SIP messages on the wire by direction (in/out), kind (request/response) and "
            "method or status code, retransmissions included",
            labels=["direction", "kind", "code"],
        )
        for (direction, kind, code), value in sorted(list(wire.items())):
            family.add_metric([direction, kind, code], value)
        yield family
    for attr, doc in (
        ("transactions_live", "SIP transactions not yet terminated"),
        ("transactions_compact", "Completed transactions kept to absorb retransmissions"),
    ):
        value = getattr(endpoint, attr, None)
        if isinstance(value, int):
            yield _gauge(f"sipbox_sip_{attr}", doc, value)


def _dispatcher_metrics(dispatcher: Any) -> Iterator[Metric]:
    """Requests by method (those that passed the guard's screen) and the responses the PBX
    generated by status, from the dispatcher's counts; other counts as ``sipbox_pbx_events``."""
    requests = getattr(dispatcher, "requests", None)
    if isinstance(requests, Mapping):
        family = CounterMetricFamily(
            "sipbox_sip_requests_received",
            "SIP requests received (after the anti-scanning screen), by method",
            labels=["method"],
        )
        for method, value in sorted(list(requests.items())):
            family.add_metric([str(method)], value)
        yield family
    counters = getattr(dispatcher, "counters", None)
    if not isinstance(counters, Mapping):
        return
    responses = CounterMetricFamily(
        "sipbox_sip_responses_sent",
        "SIP responses generated by the PBX (not relayed ones), by status code",
        labels=["status"],
    )
    events = CounterMetricFamily(
        "sipbox_pbx_events", "Other PBX dispatcher counts (screened requests...)", labels=["event"]
    )
    for name, value in sorted(list(counters.items())):
        key = str(name)
        if key.startswith("responses."):
            responses.add_metric([key.removeprefix("responses.")], value)
        else:
            events.add_metric([key], value)
    yield responses
    yield events


def _security_metrics(security: Any) -> Iterator[Metric]:
    if security is None:
        return
    bans = list(security.active_bans())
    yield _gauge("sipbox_bans_active", "Sources banned now", len(bans))
    yield _gauge(
        "sipbox_guard_banned_hits",
        "Datagrams/connections dropped from the sources banned now",
        sum(int(getattr(b, "hit_count", 0)) for b in bans),
    )
    stats = getattr(security, "stats", None)
    if isinstance(stats, Mapping):
        family = CounterMetricFamily(
            "sipbox_guard_events", "Anti-scanning events by kind", labels=["kind"]
        )
        for name, value in sorted(stats.items()):
            family.add_metric([str(name)], value)
        yield family
    guard = getattr(security, "guard", None)
    tables = guard.stats() if guard is not None and hasattr(guard, "stats") else None
    if isinstance(tables, Mapping):
        family = GaugeMetricFamily(
            "sipbox_guard_table_entries", "Entries in the guard's tables", labels=["table"]
        )
        for name, value in sorted(tables.items()):
            family.add_metric([str(name)], value)
        yield family


@dataclass(slots=True)
class MetricsState:
    """One app's registry: the live collector plus the store-latency histogram."""

    registry: CollectorRegistry
    collector: _ServerCollector
    store_probe: Histogram


def _state(request: Request, services: Services) -> MetricsState:
    state: MetricsState | None = getattr(request.app.state, "metrics", None)
    if state is None:
        registry = CollectorRegistry(auto_describe=False)
        collector = _ServerCollector(services)
        registry.register(collector)
        probe = Histogram(
            "sipbox_store_probe_seconds",
            "Duration of a small database query made at each scrape",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        state = MetricsState(registry, collector, probe)
        request.app.state.metrics = state
    return state


async def _snapshot(services: Services, state: MetricsState) -> _Snapshot:
    store = services.store
    started = time.perf_counter()
    users = await store.count_users()
    state.store_probe.observe(time.perf_counter() - started)
    snapshot = _Snapshot(users=users)
    calls = getattr(services.context, "calls", None)
    if calls is not None and hasattr(store, "count_cdrs"):
        since = services.context.started_at
        for disposition in get_args(Disposition):
            count = await store.count_cdrs(CdrFilter(since=since, disposition=disposition))
            snapshot.calls_by_disposition[disposition] = count
    return snapshot


@router.get(
    PATH,
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_metrics(request: Request, services: ServicesDep) -> Response:
    """Text exposition format 0.0.4; see docs/web.md for the list of metrics."""
    state = _state(request, services)
    snapshot = await _snapshot(services, state)
    state.collector.snapshot = snapshot  # no await between here and rendering: consistent
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE)


def metric_names(text: str) -> Iterable[str]:
    """Names of the metric families in an exposition (for tests and the docs)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [family.name for family in text_string_to_metric_families(text)]
