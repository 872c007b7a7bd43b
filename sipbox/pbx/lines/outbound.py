"""Calls out through lines and trunks: call prefixes, class of service, the B leg's identity
and credentials, and failover between lines.

Theory of operation
===================

`PrefixResolver` is one more resolver of the B2BUA's `Router` (docs/calls.md), placed after
the local ones so an exact local number (user, group) always beats a prefix. It matches the
dialed number against the prefix table (longest pattern first, then the tightest length
range), strips and prepends digits, checks the caller's class of service against the
external number, and answers an `OutboundPlan`: the rule's lines/trunks in order.

`OutboundPlan` (a `TargetPlan`) starts one B leg at a time. A leg that fails *before any 18x*
with a transport error, 408, 500, 502, 503 or 504 moves on to the next line (a carrier in
trouble); anything else - a 4xx, a 6xx ("do not try elsewhere") - is the answer.

Each B leg carries an `Egress` (`LineEgress` / `TrunkEgress`) through `EgressLegSpec`: the
B2BUA asks it to rewrite the INVITE for the carrier (From/To/Request-URI with the line's
identity, PAI/PPI, the preloaded Route from the Service-Route or the proxy, Diversion for
forwarded calls) and hands it every response of the leg: a 401/407 is answered with the line's
credentials (a new INVITE: same Call-ID and From tag, CSeq + 1, RFC 3261 §22.2), and an 18x
marks the leg as ringing (no failover any more).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sipbox.pbx.calls.plan import COMPLETED_ELSEWHERE, LegSpec, PlanStep, Reject, choose_failure
from sipbox.pbx.calls.routing import RouteContext
from sipbox.pbx.location import Target
from sipbox.sip.address import Address
from sipbox.sip.digest import DigestClient, choose_challenge
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.headers import Headers, parse_name_addr
from sipbox.sip.message import Request, Response
from sipbox.storage.interface import User

from .line import LineConfig, TrunkConfig

__all__ = [
    "CLASS_RANK",
    "FAILOVER_STATUSES",
    "EgressLegSpec",
    "LineEgress",
    "OutboundPlan",
    "PrefixResolver",
    "PrefixRule",
    "TrunkEgress",
    "classify",
]

#: Failures that mean "this carrier is in trouble, try the next line" (issue 5).
FAILOVER_STATUSES = frozenset({408, 500, 502, 503, 504})
CLASS_RANK = {"none": 0, "local": 1, "national": 2, "international": 3}


def classify(number: str, national_prefix: str = "0", international_prefix: str = "00") -> str:
    """The class of service an external number needs."""
    if number.startswith("+") or (international_prefix and number.startswith(international_prefix)):
        return "international"
    if national_prefix and number.startswith(national_prefix):
        return "national"
    return "local"


@dataclass(frozen=True, slots=True)
class PrefixRule:
    """One call prefix (see docs/lines.md): `pattern` digits, optional length range of the
    dialed number, strip/prepend, targets ``line:NAME``/``trunk:NAME`` in order, caller-ID
    rewriting and an explicit class of service (else classified from the number)."""

    id: int
    pattern: str
    min_length: int | None = None
    max_length: int | None = None
    strip: int = 0
    prepend: str = ""
    targets: tuple[str, ...] = ()
    caller_id: str | None = None
    caller_prefix: str = ""
    class_of_service: str | None = None
    implicit: bool = False

    def matches(self, number: str) -> bool:
        if not number.startswith(self.pattern):
            return False
        if self.min_length is not None and len(number) < self.min_length:
            return False
        return self.max_length is None or len(number) <= self.max_length

    def external(self, number: str) -> str:
        return self.prepend + number[self.strip :]

    @classmethod
    def from_record(cls, record: Any) -> PrefixRule:
        config = dict(record.config)
        return cls(
            id=record.id,
            pattern=record.pattern,
            min_length=record.min_length,
            max_length=record.max_length,
            strip=int(config.get("strip", 0)),
            prepend=str(config.get("prepend", "")),
            targets=tuple(config.get("targets", ())),
            caller_id=config.get("caller_id") or None,
            caller_prefix=str(config.get("caller_prefix", "")),
            class_of_service=config.get("class_of_service") or None,
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pattern": self.pattern,
            "min_length": self.min_length,
            "max_length": self.max_length,
            "strip": self.strip,
            "prepend": self.prepend,
            "targets": list(self.targets),
            "caller_id": self.caller_id,
            "caller_prefix": self.caller_prefix,
            "class_of_service": self.class_of_service,
            "implicit": self.implicit,
        }


def best_rule(rules: Sequence[PrefixRule], number: str) -> PrefixRule | None:
    """Longest pattern first; among equal patterns the one with a length range."""
    best: PrefixRule | None = None
    for rule in rules:
        if not rule.matches(number):
            continue
        if best is None or _rank(rule) > _rank(best):
            best = rule
    return best


def _rank(rule: PrefixRule) -> tuple[int, int]:
    return len(rule.pattern), int(rule.min_length is not None or rule.max_length is not None)


# -- egress: the B leg's view of the line -------------------------------------------------------


class LineEgress:
    """One B leg through a line: its identity and credentials, and whether it rang."""

    __slots__ = (
        "_answered",
        "_digest",
        "caller_id",
        "contact_user",
        "diverted",
        "line",
        "name",
        "ringing",
        "routes",
        "tries",
    )

    def __init__(
        self,
        line: LineConfig,
        *,
        routes: Sequence[str],
        caller_id: str | None,
        diverted: bool,
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self.line = line
        self.name = line.name
        #: The Contact user the line registered (its identity towards the carrier); the
        #: B2BUA uses it for every Contact it sends on this leg's dialog.
        self.contact_user = line.contact_user or None
        self.routes = tuple(routes)
        self.caller_id = caller_id
        self.diverted = diverted
        self.ringing = False
        self.tries = 0
        self._answered: set[tuple[str, str]] = set()
        self._digest = DigestClient(line.auth_username(), line.password, random_bytes)

    def prepare(self, call: Any, spec: LegSpec, headers: Headers) -> None:
        """Give the INVITE the line's identity (the B2BUA built it for a local callee)."""
        line = self.line
        user, host = line.from_identity()
        caller: User = call.caller
        if self.diverted or line.present_caller:
            user = caller.number
        if self.caller_id:
            user = self.caller_id
        display = line.display or (caller.display_name if line.present_caller else "")
        _set_from(headers, user, host, display)
        headers.set("To", f"<{spec.target.request_uri}>")
        headers.remove("P-Asserted-Identity")
        own = f"<sip:{line.from_identity()[0]}@{host}>"
        identity = f"<sip:{user}@{host}>"
        if line.identity_header == "pai":
            headers.add("P-Asserted-Identity", identity)
        elif line.identity_header == "ppi":
            headers.add("P-Preferred-Identity", identity)
        if self.diverted:
            # RFC 5806: the carrier accepts a From that is not ours because we say we
            # diverted the call (our own number is the diverting party).
            headers.add("Diversion", f"{own};reason=unconditional;counter=1")
        for route in self.routes:
            headers.add("Route", route)
        if self.contact_user:
            # The registered Contact, not the caller's extension: the carrier's in-dialog
            # requests and IMS checks (P-CSCF: Contact must be a registered one) match it.
            contact = headers.get("contact")
            if contact:
                headers.set("Contact", contact_with_user(contact, self.contact_user))

    def on_response(self, invite: Request, response: Response) -> Request | None:
        """An 18x marks the leg ringing; a 401/407 gets a new INVITE with credentials (once
        per nonce: a second challenge for a nonce we answered means wrong credentials)."""
        status = response.status
        if 100 < status < 200:
            self.ringing = True
            return None
        if status not in (401, 407) or not self.line.password or self.tries >= 3:
            return None
        header = "www-authenticate" if status == 401 else "proxy-authenticate"
        challenge = choose_challenge(response.headers.get_all(header), self.line.realm)
        if challenge is None:
            return None
        key = (challenge.realm, challenge.nonce)
        if key in self._answered and not challenge.stale:
            return None
        self._answered.add(key)
        self.tries += 1
        try:
            value = self._digest.authorize(challenge, "INVITE", invite.uri_text, invite.body)
        except RemoteProtocolError:
            return None
        name = "Authorization" if status == 401 else "Proxy-Authorization"
        return retry_with(invite, name, value)


class TrunkEgress:
    """One B leg through a trunk: trusted both ways, so no credentials."""

    __slots__ = ("caller_id", "domain", "name", "ringing", "trunk")

    def __init__(self, trunk: TrunkConfig, *, domain: str, caller_id: str | None) -> None:
        self.trunk = trunk
        self.name = trunk.name
        self.domain = trunk.from_domain or domain
        self.caller_id = caller_id
        self.ringing = False

    def prepare(self, call: Any, spec: LegSpec, headers: Headers) -> None:
        caller: User = call.caller
        user = self.caller_id or caller.number
        _set_from(headers, user, self.domain, caller.display_name or "")
        headers.set("To", f"<{spec.target.request_uri}>")
        headers.set("P-Asserted-Identity", f"<sip:{user}@{self.domain}>")

    def on_response(self, invite: Request, response: Response) -> Request | None:
        if 100 < response.status < 200:
            self.ringing = True
        return None


def contact_with_user(contact: str, user: str) -> str:
    """`<sip:1001@host:port;...>` -> `<sip:USER@host:port;...>` (our own Contact, so the
    simple form the B2BUA writes)."""
    start = contact.find(":", contact.find("<") + 1)
    at = contact.find("@", start)
    if start < 0 or at < 0:
        return contact
    return contact[: start + 1] + user + contact[at:]


def _set_from(headers: Headers, user: str, host: str, display: str) -> None:
    tag = None
    current = headers.get("from")
    if current:
        try:
            tag = parse_name_addr(current).tag
        except RemoteProtocolError:
            tag = None
    shown = f'"{display}" ' if display else ""
    headers.set("From", f"{shown}<sip:{user}@{host}>" + (f";tag={tag}" if tag else ""))


def retry_with(request: Request, header: str, value: str) -> Request:
    """The same request again with credentials: same Call-ID, tags and Route, CSeq + 1, no Via
    (the endpoint adds a new branch; §8.1.3.5, §22.2)."""
    headers = request.headers.copy()
    headers.remove("Via")
    headers.remove(header)
    cseq = request.cseq
    headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
    headers.add(header, value)
    return Request(request.method, request.uri_text, headers, request.body)


@dataclass(frozen=True, slots=True)
class EgressLegSpec(LegSpec):
    """A `LegSpec` that leaves sipbox through a line or trunk (`egress`)."""

    egress: Any = None


# -- the plan -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Candidate:
    """A line or trunk the plan may use, ready to become a B leg."""

    name: str
    make: Callable[[int], EgressLegSpec]


class OutboundPlan:
    """Lines/trunks in order; the next one only on a carrier failure before any 18x."""

    __slots__ = (
        "_candidates",
        "_current",
        "_deadline",
        "_keys",
        "_last_status",
        "_pending",
        "label",
        "ring_timeout",
        "tried",
    )

    def __init__(self, candidates: Sequence[Candidate], ring_timeout: float, label: str) -> None:
        self._candidates = list(candidates)
        self.ring_timeout = ring_timeout
        self.label = label
        self._keys = 0
        self._pending: dict[int, EgressLegSpec] = {}
        self._current = 0
        self._deadline: float | None = None
        self._last_status: int | None = None
        self.tried: list[str] = []

    def new_key(self) -> int:
        self._keys += 1
        return self._keys

    def _next(self) -> PlanStep:
        if self._current >= len(self._candidates):
            self._deadline = None
            status = self._last_status or 503
            return PlanStep(final=choose_failure([status]))
        candidate = self._candidates[self._current]
        self._current += 1
        spec = candidate.make(self.new_key())
        self._pending[spec.key] = spec
        self.tried.append(candidate.name)
        return PlanStep(start=[spec])

    def start(self, now: float) -> PlanStep:
        self._deadline = now + self.ring_timeout
        return self._next()

    def leg_failed(self, key: int, status: int, now: float) -> PlanStep:
        spec = self._pending.pop(key, None)
        if spec is None:
            return PlanStep()
        self._last_status = status
        ringing = bool(getattr(spec.egress, "ringing", False))
        if status in FAILOVER_STATUSES and not ringing and not self._pending:
            return self._next() if self._current < len(self._candidates) else self._give_up(status)
        if self._pending:
            return PlanStep()
        return self._give_up(status)

    def _give_up(self, status: int) -> PlanStep:
        self._deadline = None
        self._current = len(self._candidates)
        if status in FAILOVER_STATUSES:
            return PlanStep(final=Reject(503 if status != 408 else 408, None))
        return PlanStep(final=choose_failure([status]))

    def redirected(self, key: int, specs: list[LegSpec], now: float) -> PlanStep:
        if not specs:
            return self.leg_failed(key, 480, now)
        self._pending.pop(key, None)
        for spec in specs:
            self._pending[spec.key] = spec  # type: ignore[assignment]
        return PlanStep(start=specs)

    def answered(self, key: int, now: float) -> PlanStep:
        others = sorted(set(self._pending) - {key})
        self._pending.clear()
        self._deadline = None
        return PlanStep(cancel=others, cancel_reason=COMPLETED_ELSEWHERE if others else None)

    def caller_gone(self, now: float) -> PlanStep:
        others = sorted(self._pending)
        self._pending.clear()
        self._deadline = None
        return PlanStep(cancel=others)

    def next_deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float) -> PlanStep:
        if self._deadline is None or now < self._deadline:
            return PlanStep()
        self._deadline = None
        pending = sorted(self._pending)
        self._pending.clear()
        return PlanStep(cancel=pending, final=Reject(480, "No Answer", "no-answer"))


# -- the resolver ---------------------------------------------------------------------------------


@dataclass
class OutboundPolicy:
    """Toll-fraud and routing settings (from ``[lines]``)."""

    emergency_numbers: frozenset[str] = frozenset()
    emergency_route: tuple[str, ...] = ()
    national_prefix: str = "0"
    international_prefix: str = "00"
    max_outbound_per_user: int = 0
    ring_timeout: float = 120.0
    extra: dict[str, Any] = field(default_factory=dict)


class PrefixResolver:
    """Dialed number -> `OutboundPlan` through the prefix table (see the module doc).

    `candidates(targets, external, ctx, rule)` is given by the line service: it knows the
    live state of lines (limits, registration) and trunks (up/down)."""

    def __init__(
        self,
        rules: Callable[[], Sequence[PrefixRule]],
        candidates: Callable[
            [Sequence[str], str, RouteContext, PrefixRule | None], list[Candidate]
        ],
        policy: OutboundPolicy,
        *,
        is_local: Callable[[str], bool],
        outbound_calls: Callable[[str], int],
    ) -> None:
        self.rules = rules
        self.candidates = candidates
        self.policy = policy
        self.is_local = is_local
        self.outbound_calls = outbound_calls

    def route_for(self, number: str) -> tuple[PrefixRule | None, str, str] | None:
        """(rule, external number, class needed); None when no prefix matches. Emergency
        numbers have no rule and need class ``none``."""
        if number in self.policy.emergency_numbers:
            return None, number, "none"
        rule = best_rule(self.rules(), number)
        if rule is None:
            return None
        external = rule.external(number)
        needed = rule.class_of_service or classify(
            external, self.policy.national_prefix, self.policy.international_prefix
        )
        return rule, external, needed

    def permitted(self, caller: User | None, number: str) -> bool:
        """The `Router.permitted` hook: may `caller` reach `number`? Local numbers always;
        external ones when the caller's class of service covers the number's class."""
        if self.is_local(number):
            return True
        found = self.route_for(number)
        if found is None:
            return True
        _, _, needed = found
        have = caller.class_of_service if caller is not None else "none"
        return CLASS_RANK.get(have, 0) >= CLASS_RANK[needed] and (
            needed == "none" or CLASS_RANK.get(have, 0) > 0
        )

    def resolve(self, number: str, ctx: RouteContext) -> OutboundPlan | Reject | None:
        found = self.route_for(number)
        if found is None:
            return None
        rule, external, _needed = found
        emergency = rule is None
        if not emergency and not self.permitted(ctx.caller, number):
            return Reject(403, "Not Allowed")
        caller = ctx.caller
        limit = self.policy.max_outbound_per_user
        if caller is not None and not emergency:
            own = caller.settings.get("max_outbound_calls") if caller.settings else None
            if isinstance(own, int) and own >= 0:
                limit = own
            if limit and self.outbound_calls(caller.number) >= limit:
                return Reject(486, "Too Many Calls")
        targets = self.policy.emergency_route if emergency else (rule.targets if rule else ())
        candidates = self.candidates(targets, external, ctx, rule)
        if not candidates:
            return Reject(503, "No Line Available")
        return OutboundPlan(candidates, self.policy.ring_timeout, external)


def line_target(line: LineConfig, number: str, destination: Address) -> Target:
    params = f";{line.uri_params.lstrip(';')}" if line.uri_params else ""
    return Target(f"sip:{number}@{line.domain}{params}", destination)


def trunk_target(trunk: TrunkConfig, number: str, destination: Address) -> Target:
    params = f";{trunk.uri_params.lstrip(';')}" if trunk.uri_params else ""
    host = trunk.domain or destination.hostport()
    return Target(f"sip:{number}@{host}{params}", destination)
