"""Call prefixes, class of service, emergency numbers and line failover
(`pbx/lines/outbound.py`), pure: fake candidates, a fake clock, no B2BUA."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sipbox.pbx.calls.plan import Reject
from sipbox.pbx.calls.routing import RouteContext
from sipbox.pbx.lines.outbound import (
    Candidate,
    EgressLegSpec,
    OutboundPlan,
    OutboundPolicy,
    PrefixResolver,
    PrefixRule,
    best_rule,
    classify,
)
from sipbox.pbx.location import Target
from sipbox.sip.address import Address

T0 = 500.0


def rule(pattern: str, **kw: Any) -> PrefixRule:
    return PrefixRule(id=len(pattern), pattern=pattern, **kw)


def candidate(name: str) -> Candidate:
    def make(key: int) -> EgressLegSpec:
        egress = SimpleNamespace(name=name, ringing=False)
        target = Target(f"sip:n@{name}", Address("udp", "192.0.2.1", 5060))
        return EgressLegSpec(key, target, "n", name, egress)

    return Candidate(name, make)


def user(cos: str, **settings: Any) -> Any:
    return SimpleNamespace(class_of_service=cos, number="1001", settings=settings)


def resolver(
    rules: list[PrefixRule], *, names: tuple[str, ...] = ("line:a", "line:b"), busy: int = 0,
    **policy: Any,
) -> tuple[PrefixResolver, list[tuple[Any, ...]]]:  # fmt: skip
    asked: list[tuple[Any, ...]] = []

    def candidates(targets: Any, external: str, ctx: RouteContext, r: Any) -> list[Candidate]:
        asked.append((tuple(targets), external, r))
        return [candidate(n) for n in names]

    return PrefixResolver(
        lambda: rules, candidates, OutboundPolicy(**policy),
        is_local=lambda n: n == "1002", outbound_calls=lambda n: busy,
    ), asked  # fmt: skip


# -- prefixes -------------------------------------------------------------------------------------


def test_longest_pattern_wins_then_length_range() -> None:
    rules = [rule("9"), rule("90"), rule("900", max_length=8), rule("900")]
    assert best_rule(rules, "9001234").pattern == "900"  # type: ignore[union-attr]
    assert best_rule(rules, "9001234").max_length == 8  # type: ignore[union-attr]
    assert best_rule(rules, "900123456").max_length is None  # type: ignore[union-attr]
    assert best_rule(rules, "9123").pattern == "9"  # type: ignore[union-attr]
    assert best_rule(rules, "8123") is None
    assert best_rule([rule("9", min_length=4)], "912") is None


def test_strip_and_prepend() -> None:
    assert rule("9", strip=1).external("95551234") == "5551234"
    assert rule("0", strip=1, prepend="+86").external("0755123") == "+86755123"


@pytest.mark.parametrize(("number", "cls"), [
    ("+4930123", "international"), ("0049301", "international"), ("0755123", "national"),
    ("5551234", "local"),
])  # fmt: skip
def test_classify(number: str, cls: str) -> None:
    assert classify(number) == cls


# -- class of service, emergency, limits ----------------------------------------------------------


def test_class_of_service_covers_the_number() -> None:
    r, _ = resolver([rule("9", strip=1)])
    assert r.permitted(user("local"), "95551234")
    assert not r.permitted(user("local"), "90755123")  # national
    assert r.permitted(user("national"), "90755123")
    assert not r.permitted(user("national"), "9004930")
    assert r.permitted(user("international"), "9004930")
    assert not r.permitted(user("none"), "95551234")
    assert r.permitted(user("none"), "1002")  # a local number always
    found = r.resolve("90755123", RouteContext(user("local"), ("1001",)))  # type: ignore[arg-type]
    assert isinstance(found, Reject) and found.status == 403


def test_explicit_class_on_the_rule() -> None:
    r, _ = resolver([rule("8", strip=1, class_of_service="international")])
    assert not r.permitted(user("national"), "8123")


def test_emergency_numbers_route_for_anyone_without_a_prefix() -> None:
    r, asked = resolver([rule("9", strip=1)], emergency_numbers=frozenset({"112"}),
                        emergency_route=("line:b",))  # fmt: skip
    plan = r.resolve("112", RouteContext(user("none"), ("1001",)))  # type: ignore[arg-type]
    assert isinstance(plan, OutboundPlan)
    assert asked == [(("line:b",), "112", None)]
    busy, _ = resolver([], emergency_numbers=frozenset({"112"}), busy=5, max_outbound_per_user=1)
    assert isinstance(busy.resolve("112", RouteContext(user("none"))), OutboundPlan)  # type: ignore[arg-type]


def test_no_prefix_is_not_ours_and_no_line_is_503() -> None:
    r, _ = resolver([rule("9", strip=1)], names=())
    assert r.resolve("5551234", RouteContext(user("local"))) is None  # type: ignore[arg-type]
    found = r.resolve("95551234", RouteContext(user("local")))  # type: ignore[arg-type]
    assert isinstance(found, Reject) and found.status == 503


def test_per_user_outbound_limit() -> None:
    r, _ = resolver([rule("9", strip=1)], busy=2, max_outbound_per_user=2)
    found = r.resolve("95551234", RouteContext(user("local")))  # type: ignore[arg-type]
    assert isinstance(found, Reject) and found.status == 486
    own, _ = resolver([rule("9", strip=1)], busy=2, max_outbound_per_user=2)
    ctx = RouteContext(user("local", max_outbound_calls=5))  # type: ignore[arg-type]
    assert isinstance(own.resolve("95551234", ctx), OutboundPlan)


# -- failover -------------------------------------------------------------------------------------


def plan(*names: str, ring_timeout: float = 120.0) -> OutboundPlan:
    return OutboundPlan([candidate(n) for n in names], ring_timeout, "5551234")


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_failover_on_carrier_trouble(status: int) -> None:
    p = plan("a", "b")
    step = p.start(T0)
    assert [s.label for s in step.start] == ["a"]
    step = p.leg_failed(step.start[0].key, status, T0 + 1)
    assert [s.label for s in step.start] == ["b"] and step.final is None
    assert p.tried == ["a", "b"]


@pytest.mark.parametrize("status", [404, 486, 403, 600, 603, 604])
def test_no_failover_on_an_answer(status: int) -> None:
    p = plan("a", "b")
    step = p.leg_failed(p.start(T0).start[0].key, status, T0)
    assert not step.start and step.final is not None and p.tried == ["a"]
    assert step.final.status == status


def test_no_failover_after_ringing() -> None:
    p = plan("a", "b")
    spec = p.start(T0).start[0]
    spec.egress.ringing = True  # an 18x came
    step = p.leg_failed(spec.key, 503, T0 + 5)
    assert not step.start and step.final is not None and step.final.status == 503


def test_last_line_failing_gives_503_or_408() -> None:
    p = plan("a")
    step = p.leg_failed(p.start(T0).start[0].key, 502, T0)
    assert step.final == Reject(503, None)
    p = plan("a")
    step = p.leg_failed(p.start(T0).start[0].key, 408, T0)
    assert step.final is not None and step.final.status == 408


def test_ring_timeout_exact_deadline() -> None:
    p = plan("a", "b", ring_timeout=30.0)
    key = p.start(T0).start[0].key
    assert p.next_deadline() == T0 + 30
    assert p.on_timer(T0 + 29.999).final is None
    step = p.on_timer(T0 + 30)
    assert step.cancel == [key] and step.final is not None and step.final.status == 480
    assert p.next_deadline() is None


def test_answer_clears_the_deadline() -> None:
    p = plan("a")
    key = p.start(T0).start[0].key
    step = p.answered(key, T0 + 3)
    assert step.cancel == [] and p.next_deadline() is None


# -- the B leg's identity (LineEgress.prepare) ----------------------------------------------------


def _prepared(diverted: bool = False, **fields: Any) -> Any:
    from sipbox.pbx.lines.line import LineConfig
    from sipbox.pbx.lines.outbound import LineEgress, line_target
    from sipbox.sip.headers import Headers

    line = LineConfig(name="l", domain="c.example", account="555", contact_user="sbxabc", **fields)
    egress = LineEgress(line, routes=(), caller_id=None, diverted=diverted, random_bytes=bytes)
    target = line_target(line, "5551234", Address("udp", "192.0.2.1", 5060))
    headers = Headers()
    headers.add("From", '"Alice" <sip:1001@pbx>;tag=t1')
    headers.add("Contact", "<sip:1001@10.0.0.1:5060;transport=tcp>")
    headers.add("P-Asserted-Identity", '"Alice" <sip:1001@pbx>')
    call = SimpleNamespace(caller=SimpleNamespace(number="1001", display_name="Alice"))
    egress.prepare(call, EgressLegSpec(1, target, "5551234", "x", egress), headers)
    return headers


def test_line_identity_contact_ppi_and_diversion() -> None:
    """The registered Contact user replaces the caller's extension (host/params kept); PPI
    per line; a forwarded call keeps the caller in From and says so with Diversion."""
    h = _prepared(identity_header="ppi", from_user="+86555", display="ACME")
    assert h.get("contact") == "<sip:sbxabc@10.0.0.1:5060;transport=tcp>"
    assert h.get("from") == '"ACME" <sip:+86555@c.example>;tag=t1'
    assert h.get("p-preferred-identity") == "<sip:+86555@c.example>"
    assert h.get("p-asserted-identity") is None
    h = _prepared(diverted=True)
    assert h.get("from") == "<sip:1001@c.example>;tag=t1"
    assert h.get("diversion") == "<sip:555@c.example>;reason=unconditional;counter=1"
