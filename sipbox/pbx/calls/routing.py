"""The dial plan: dialed number -> a target plan, or a rejection (issue 4).

`Router.resolve` asks its resolvers in order; the first that knows the number answers. The core
has one resolver, `UserResolver` (a local user: every live contact, forked in parallel). Later
issues add resolvers without touching the B2BUA: ringing/hunting groups (a `TargetPlan` per
strategy), external lines and trunks (prefix resolvers), forwarding/DND (a resolver wrapping
`UserResolver`). `RouteContext` carries what a resolver may need to decide: the authenticated
caller (class of service), the numbers this call already passed (loop guard for 3xx and
forwarding), and how many hops it took.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sipbox.pbx.location import Target
from sipbox.storage.interface import User

from .plan import ForkPlan, LegSpec, Reject, TargetPlan

__all__ = ["MAX_HOPS", "Resolver", "RouteContext", "Router", "UserResolver"]

#: A call never follows more than this many redirections/forwardings (issue 4).
MAX_HOPS = 5


@dataclass(frozen=True, slots=True)
class RouteContext:
    """Who calls, and where this call has already been."""

    caller: User | None
    visited: tuple[str, ...] = ()

    def hop(self, number: str) -> RouteContext:
        return RouteContext(self.caller, (*self.visited, number))


class Resolver(Protocol):
    """One source of destinations: answers for numbers it knows, None for the others."""

    def resolve(self, number: str, ctx: RouteContext) -> TargetPlan | Reject | None: ...


class UserResolver:
    """A local user: ring every live contact (or the IP-authorized static contact) at once for
    the user's ring timeout; offline -> 480, at `max_calls` -> 486."""

    __slots__ = ("active_calls", "default_ring_timeout", "directory", "targets")

    def __init__(
        self,
        directory: object,
        targets: Callable[[str], list[Target]],
        active_calls: Callable[[str], int],
        default_ring_timeout: float = 30.0,
    ) -> None:
        self.directory = directory
        self.targets = targets
        self.active_calls = active_calls
        self.default_ring_timeout = default_ring_timeout

    def user(self, number: str) -> User | None:
        get = getattr(self.directory, "get", None)
        user = get(number) if get is not None else None
        return user if isinstance(user, User) else None

    def resolve(self, number: str, ctx: RouteContext) -> TargetPlan | Reject | None:
        user = self.user(number)
        if user is None:
            return None
        if not user.enabled:
            return Reject(480)
        if user.max_calls is not None and self.active_calls(number) >= user.max_calls:
            return Reject(486)
        specs = self.leg_specs(number, start_key=1)
        if not specs:
            return Reject(480)
        timeout = float(user.ring_timeout) if user.ring_timeout else self.default_ring_timeout
        return ForkPlan(specs, timeout, number)

    def leg_specs(self, number: str, start_key: int) -> list[LegSpec]:
        """One leg per target of `number` (also used to follow a 3xx to a local user)."""
        return [
            LegSpec(start_key + i, target, number, f"{number} {target.request_uri}")
            for i, target in enumerate(self.targets(number))
        ]


class Router:
    """Resolvers in order; unknown numbers get 404. `permitted` is the class-of-service hook
    (may this caller reach this number?), consulted for the dialed number and for every 3xx
    or forwarding target."""

    __slots__ = ("permitted", "resolvers", "users")

    def __init__(
        self,
        users: UserResolver,
        resolvers: list[Resolver] | None = None,
        permitted: Callable[[User | None, str], bool] | None = None,
    ) -> None:
        self.users = users
        self.resolvers: list[Resolver] = resolvers if resolvers is not None else [users]
        self.permitted = permitted or (lambda caller, number: True)

    def resolve(self, number: str, ctx: RouteContext) -> TargetPlan | Reject:
        if not self.permitted(ctx.caller, number):
            return Reject(403, "Not Allowed")
        for resolver in self.resolvers:
            result = resolver.resolve(number, ctx)
            if result is not None:
                return result
        return Reject(404)

    def redirect_specs(
        self, numbers: list[str], ctx: RouteContext, new_key: Callable[[], int]
    ) -> list[LegSpec]:
        """Legs for the local users a 3xx pointed at, with the loop guard (no number twice,
        at most `MAX_HOPS` hops) and the class-of-service check."""
        out: list[LegSpec] = []
        for number in numbers:
            if number in ctx.visited or len(ctx.visited) >= MAX_HOPS:
                continue
            if not self.permitted(ctx.caller, number) or self.users.user(number) is None:
                continue
            for target in self.users.targets(number):
                out.append(LegSpec(new_key(), target, number, f"{number} {target.request_uri}"))
        return out
