"""Call forwarding and do-not-disturb per user (issue 4), as a resolver and a plan wrapper.

Why a wrapper and not B2BUA code: forwarding is a decision about *which legs to ring next*,
which is exactly what a `TargetPlan` owns. `FollowPlan` runs one plan and, when that plan gives
up (its step carries a `final`), asks a callback whether the call continues elsewhere; if so
it starts the next plan in the same call. The caller keeps its INVITE transaction and sees the
new legs' provisionals as further early dialogs (the forking policy of docs/calls.md), so no
3xx towards the caller and no new call record are needed. Ringing groups use the same wrapper
for their no-answer destination.

`ForwardingResolver` takes the place of `UserResolver` in `Router.resolvers`. Per user, from
``User.settings["forwarding"]`` (set through the API or feature codes):

* unconditional: the user's phones never ring; the call goes to the target at once;
* do not disturb: the user is busy; the busy target if set, else ``486 Do Not Disturb``;
* busy (every device 486/600/603, or the user at ``max_calls``), no answer (the ring timeout
  ran out) and unreachable (offline, or every device failed with 408/480/5xx): when the
  user's own plan gives up, the matching target is rung instead.

The loop guard is `RouteContext.visited` (every number the call passed, the caller first) and
`routing.MAX_HOPS`: a forwarding hop to a number already passed, or beyond five hops, is not
taken; the call then behaves as if that forwarding were not set (unconditional: the user's
phones ring; busy/no answer/unreachable: the caller gets the user's own failure). The target
is also checked with the class-of-service hook for the forwarding user (may *they* send calls
there?) and, through `Router.resolve`, for the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sipbox.storage.interface import User

from .plan import LegSpec, PlanStep, Reject, TargetPlan
from .routing import MAX_HOPS, RouteContext, Router, UserResolver

log = logging.getLogger("sipbox.pbx.calls")

__all__ = [
    "FORWARD_KINDS",
    "NO_FORWARDING",
    "FollowPlan",
    "Forwarding",
    "ForwardingResolver",
    "failure_kind",
    "hop_allowed",
]

#: The conditions a user can forward on, as stored and as the API names them.
FORWARD_KINDS = ("unconditional", "busy", "no_answer", "unreachable")

#: Failures that mean "the user's phones could not be reached" (forward on unreachable).
_UNREACHABLE = frozenset({408, 480, 500, 502, 503, 504})
#: Failures that mean "busy" (forward on busy): busy here / everywhere, declined.
_BUSY = frozenset({486, 600, 603})


@dataclass(frozen=True, slots=True)
class Forwarding:
    """A user's forwarding targets and DND flag (``User.settings["forwarding"]``)."""

    unconditional: str | None = None
    busy: str | None = None
    no_answer: str | None = None
    unreachable: str | None = None
    dnd: bool = False

    @classmethod
    def of(cls, user: User) -> Forwarding:
        """The user's settings; a missing or malformed entry means no forwarding."""
        raw = user.settings.get("forwarding") if user.settings else None
        if not isinstance(raw, Mapping) or not raw:
            return NO_FORWARDING
        return cls.from_mapping(raw)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Forwarding:
        values = {k: raw.get(k) if isinstance(raw.get(k), str) and raw.get(k) else None
                  for k in FORWARD_KINDS}  # fmt: skip
        return cls(**values, dnd=bool(raw.get("dnd", False)))

    @property
    def active(self) -> bool:
        return bool(self.dnd or self.unconditional or self.busy or self.no_answer
                    or self.unreachable)  # fmt: skip

    def target(self, kind: str) -> str | None:
        return getattr(self, kind) if kind in FORWARD_KINDS else None

    def as_dict(self) -> dict[str, Any]:
        """The stored / API form (every key present)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in FORWARD_KINDS}
        out["dnd"] = self.dnd
        return out


NO_FORWARDING = Forwarding()


def failure_kind(reject: Reject) -> str | None:
    """Which forwarding a failure of the user's own plan triggers (None: no forwarding)."""
    if reject.disposition == "no-answer":
        return "no_answer"
    if reject.status in _BUSY:
        return "busy"
    if reject.status in _UNREACHABLE:
        return "unreachable"
    return None


def hop_allowed(target: str, ctx: RouteContext) -> bool:
    """The loop guard for forwarding and group destinations: `ctx.visited` already holds the
    number being left; the target must be new and the hop count (numbers passed after the
    caller) at most `MAX_HOPS`."""
    if target in ctx.visited:
        return False
    hops = len(ctx.visited) - (1 if ctx.caller is not None else 0)
    return hops <= MAX_HOPS


Follow = Callable[[Reject, float], "TargetPlan | Reject | None"]


class FollowPlan:
    """Run `first`; when it gives up, continue with what `follow(reject, now)` returns: a plan
    (its legs start in the same call), a different `Reject`, or None (keep the failure).

    Keys: each stage's plan numbers its legs itself (a `ForkPlan` from `UserResolver` starts at
    1), so this plan hands the B2BUA its own keys and translates in both directions. Events
    for legs of an earlier stage (their late 487s) are ignored: that stage already gave up.
    `follow` is asked once; chains longer than one hop are nested FollowPlans (the next stage
    comes from `Router.resolve`, which wraps again), so each hop passes the loop guard.
    """

    __slots__ = ("_back", "_follow", "_keys", "_map", "_plans", "label")

    def __init__(self, first: TargetPlan, follow: Follow | None, label: str) -> None:
        self._plans: list[TargetPlan] = [first]
        self._back: list[dict[int, int]] = [{}]  # per stage: inner key -> our key
        self._map: dict[int, tuple[int, int]] = {}  # our key -> (stage, inner key)
        self._keys = 0
        self._follow = follow
        self.label = label

    @property
    def stage(self) -> int:
        return len(self._plans) - 1

    def new_key(self) -> int:
        self._keys += 1
        return self._keys

    def start(self, now: float) -> PlanStep:
        return self._out(0, self._plans[0].start(now), now)

    def leg_failed(self, key: int, status: int, now: float) -> PlanStep:
        found = self._map.get(key)
        if found is None or found[0] != self.stage:
            return PlanStep()
        return self._out(found[0], self._plans[found[0]].leg_failed(found[1], status, now), now)

    def redirected(self, key: int, specs: list[LegSpec], now: float) -> PlanStep:
        found = self._map.get(key)
        if found is None or found[0] != self.stage:
            return PlanStep()
        stage, inner = found
        plan = self._plans[stage]
        inner_specs = []
        for spec in specs:
            inner_key = plan.new_key()
            self._back[stage][inner_key] = spec.key
            self._map[spec.key] = (stage, inner_key)
            inner_specs.append(LegSpec(inner_key, spec.target, spec.number, spec.label))
        return self._out(stage, plan.redirected(inner, inner_specs, now), now)

    def answered(self, key: int, now: float) -> PlanStep:
        found = self._map.get(key)
        if found is None:
            return PlanStep()
        return self._out(found[0], self._plans[found[0]].answered(found[1], now), now, final=False)

    def caller_gone(self, now: float) -> PlanStep:
        return self._out(self.stage, self._plans[-1].caller_gone(now), now, final=False)

    def next_deadline(self) -> float | None:
        return self._plans[-1].next_deadline()

    def on_timer(self, now: float) -> PlanStep:
        return self._out(self.stage, self._plans[-1].on_timer(now), now)

    def _out(self, stage: int, step: PlanStep, now: float, *, final: bool = True) -> PlanStep:
        """`step` of stage `stage` in our keys; a final failure may start the next stage."""
        back = self._back[stage]
        out = PlanStep(
            cancel=[back[k] for k in step.cancel if k in back],
            cancel_reason=step.cancel_reason,
        )
        for spec in step.start:
            key = back.get(spec.key)
            if key is None:
                key = self.new_key()
                back[spec.key] = key
                self._map[key] = (stage, spec.key)
            out.start.append(LegSpec(key, spec.target, spec.number, spec.label))
        if step.final is None or not final:
            return out
        follow, self._follow = self._follow, None
        nxt = follow(step.final, now) if follow is not None and stage == self.stage else None
        if nxt is None:
            out.final = step.final
        elif isinstance(nxt, Reject):
            out.final = nxt
        else:
            self._plans.append(nxt)
            self._back.append({})
            more = self._out(self.stage, nxt.start(now), now)
            out.start.extend(more.start)
            out.cancel.extend(more.cancel)
            out.final = more.final
        return out


class ForwardingResolver:
    """`UserResolver` plus each user's forwarding and DND (replaces it in `Router.resolvers`).

    `router` is set after the router is built (the resolver resolves forward targets through
    it, so a target may be a user, a group or, later, an external number).
    """

    __slots__ = ("router", "users")

    def __init__(self, users: UserResolver, router: Router | None = None) -> None:
        self.users = users
        self.router = router

    def resolve(self, number: str, ctx: RouteContext) -> TargetPlan | Reject | None:
        user = self.users.user(number)
        if user is None:
            return None
        fwd = Forwarding.of(user)
        if not fwd.active or not user.enabled:
            return self.users.resolve(number, ctx)
        if fwd.unconditional:
            taken = self.forward(user, fwd.unconditional, ctx)
            if taken is not None:
                return taken
        if fwd.dnd:
            if fwd.busy:
                taken = self.forward(user, fwd.busy, ctx)
                if taken is not None:
                    return taken
            return Reject(486, "Do Not Disturb", "busy")
        own = self.users.resolve(number, ctx)
        if isinstance(own, Reject):
            kind = failure_kind(own)
            target = fwd.target(kind) if kind else None
            taken = self.forward(user, target, ctx) if target else None
            return own if taken is None else taken
        if own is None or not (fwd.busy or fwd.no_answer or fwd.unreachable):
            return own

        def follow(reject: Reject, now: float) -> TargetPlan | Reject | None:
            kind = failure_kind(reject)
            target = fwd.target(kind) if kind else None
            return self.forward(user, target, ctx) if target else None

        return FollowPlan(own, follow, number)

    def forward(self, user: User, target: str, ctx: RouteContext) -> TargetPlan | Reject | None:
        """Resolve `user`'s forwarding to `target`, or None when the loop guard or the
        forwarding user's class of service refuses the hop."""
        router = self.router
        if router is None:
            return None
        hop = ctx.hop(user.number) if user.number not in ctx.visited else ctx
        if not hop_allowed(target, hop):
            log.info("forwarding %s -> %s not taken: loop/hop limit (%s)",
                     user.number, target, ">".join(hop.visited))  # fmt: skip
            return None
        if not router.permitted(user, target):
            log.info("forwarding %s -> %s not permitted for %s", user.number, target, user.number)
            return None
        return router.resolve(target, hop)
