"""Ringing and hunting groups (issue 4): the in-memory group cache, the plan, the resolver.

A group has a number, ordered members (users, IP-authorized ones included), a strategy and
timeouts. `GroupPlan` is a pure `TargetPlan` (time passed in, nothing sent):

* ``ring-all``: every eligible member's every contact at once; the first answer wins. The
  group rings for its `ring_timeout` (default ``[calls] ring_timeout``); a member with its own
  timeout stops ringing earlier.
* ``sequential``: members in order, each for its own timeout (else the group's), one at a time.
* ``circular``: like sequential, starting after the member that answered last (remembered in
  memory per group; after a restart it starts at the first member).

A member is *skipped* when it is the caller (a member calling its own group), disabled, in DND,
at its ``max_calls``, already in a call (unless the group's ``skip_busy`` setting is false) or
offline (no contact). A 486/603 from one device ends only that leg; a member whose every leg
failed ends only that member's branch; the group gives up only when every member failed or the
time ran out. Losing legs get ``Reason: SIP;cause=200;text="Call completed elsewhere"`` (RFC
3326) only when another member really answered and the group's ``completed_elsewhere`` is on;
a member whose turn ended (sequential timeout) or a caller hanging up gives a plain CANCEL.

When the group gives up (time out, every member failed, nobody available) the call goes to the
group's no-answer destination (a user or group, through the router and the loop guard: a
`FollowPlan`), or the caller gets the failure (480 when nobody answered, 486 when everybody was
busy).

`GroupDirectory` keeps every group in memory (no database round trip per call); the API
refreshes one group after each change, like `UserDirectory`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal

from sipbox.pbx.location import Target
from sipbox.storage.interface import Group, Store, User

from .forwarding import FollowPlan, Forwarding, hop_allowed
from .plan import COMPLETED_ELSEWHERE, LegSpec, PlanStep, Reject, TargetPlan, choose_failure
from .routing import RouteContext, Router, UserResolver

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["GroupDirectory", "GroupPlan", "GroupResolver", "Member", "member_order"]

Skip = Literal["caller", "disabled", "dnd", "busy", "offline"]


class GroupDirectory:
    """Every group by number, in memory; `refresh(number)` after a change in the store.

    Also holds the circular strategy's "member that answered last" per group, which lives only
    here (it changes on every answered call; writing it to the database per call is not worth
    it)."""

    __slots__ = ("_groups", "_store", "last_answered")

    def __init__(self, store: Store | None = None) -> None:
        self._store = store
        self._groups: dict[str, Group] = {}
        self.last_answered: dict[str, str] = {}

    async def load(self) -> None:
        if self._store is None:
            raise RuntimeError("GroupDirectory.load needs a store")
        self._groups = {g.number: g for g in await self._store.list_groups()}
        log.info("loaded %d groups", len(self._groups))

    async def refresh(self, number: str) -> None:
        """Re-read one group after it changed in the store (dropped when gone)."""
        if self._store is None:
            raise RuntimeError("GroupDirectory.refresh needs a store")
        group = await self._store.get_group_by_number(number)
        if group is None:
            self.forget(number)
        else:
            self.put(group)

    def put(self, group: Group) -> None:
        old = self._groups.get(group.number)
        self._groups[group.number] = group
        if old is not None and {m.number for m in old.members} != {m.number for m in group.members}:
            last = self.last_answered.get(group.number)
            if last is not None and last not in {m.number for m in group.members}:
                del self.last_answered[group.number]

    def replace_all(self, groups: Iterable[Group]) -> None:
        self._groups = {g.number: g for g in groups}

    def forget(self, number: str) -> None:
        self._groups.pop(number, None)
        self.last_answered.pop(number, None)

    def get(self, number: str) -> Group | None:
        return self._groups.get(number)

    def all(self) -> list[Group]:
        return [self._groups[n] for n in sorted(self._groups)]

    def __len__(self) -> int:
        return len(self._groups)


def member_order(group: Group, last: str | None) -> list[tuple[str, int | None]]:
    """The order members are tried in: as listed, or for ``circular`` starting after `last`."""
    members = [(m.number, m.timeout) for m in group.members]
    if group.strategy == "circular" and last is not None:
        for i, (number, _) in enumerate(members):
            if number == last:
                return members[i + 1 :] + members[: i + 1]
    return members


class Member:
    """One member's branch in a call: its legs still ringing, their failures, its deadline."""

    __slots__ = ("deadline", "failures", "number", "pending", "started", "timeout")

    def __init__(self, number: str, timeout: float) -> None:
        self.number = number
        self.timeout = timeout
        self.pending: set[int] = set()
        self.failures: list[int] = []
        self.deadline: float | None = None
        self.started = False


#: What the plan needs to know about a member when its turn comes: the contacts to ring, or
#: why it is skipped.
MemberTargets = Callable[[str], "list[Target] | Skip"]


class GroupPlan:
    """The plan of one call to a group (see the module docstring)."""

    __slots__ = (
        "_by_key",
        "_deadline",
        "_keys",
        "_next",
        "_skipped",
        "completed_elsewhere",
        "label",
        "members",
        "on_answer",
        "ring_all",
        "ring_timeout",
        "targets",
        "timed_out",
    )

    def __init__(
        self,
        label: str,
        members: list[tuple[str, float]],
        targets: MemberTargets,
        *,
        ring_all: bool,
        ring_timeout: float,
        completed_elsewhere: bool = True,
        on_answer: Callable[[str], None] | None = None,
    ) -> None:
        self.label = label
        self.members = [Member(number, timeout) for number, timeout in members]
        self.targets = targets
        self.ring_all = ring_all
        self.ring_timeout = ring_timeout
        self.completed_elsewhere = completed_elsewhere
        self.on_answer = on_answer
        self._by_key: dict[int, Member] = {}
        self._keys = 0
        self._next = 0  # sequential: index of the next member to try
        self._deadline: float | None = None  # ring-all: the group's own timeout
        self._skipped: list[Skip] = []
        self.timed_out = False

    def new_key(self) -> int:
        self._keys += 1
        return self._keys

    # -- the protocol ------------------------------------------------------------------------
    def start(self, now: float) -> PlanStep:
        step = PlanStep()
        if self.ring_all:
            self._deadline = now + self.ring_timeout
            for member in self.members:
                self._ring(member, now, step)
            if not self._live():
                self._deadline = None
                step.final = self._give_up()
            return step
        self._ring_next(now, step)
        return step

    def leg_failed(self, key: int, status: int, now: float) -> PlanStep:
        member = self._by_key.get(key)
        if member is None or key not in member.pending:
            return PlanStep()
        member.pending.discard(key)
        member.failures.append(status)
        step = PlanStep()
        if not member.pending:
            member.deadline = None
            self._after_member(now, step)
        return step

    def redirected(self, key: int, specs: list[LegSpec], now: float) -> PlanStep:
        member = self._by_key.get(key)
        if member is None or key not in member.pending:
            return PlanStep()
        if not specs:
            return self.leg_failed(key, 480, now)
        member.pending.discard(key)
        for spec in specs:
            member.pending.add(spec.key)
            self._by_key[spec.key] = member
        return PlanStep(start=list(specs))

    def answered(self, key: int, now: float) -> PlanStep:
        winner = self._by_key.get(key)
        others = sorted(k for m in self.members for k in m.pending if k != key)
        self._clear()
        if winner is not None and self.on_answer is not None:
            self.on_answer(winner.number)
        reason = COMPLETED_ELSEWHERE if others and self.completed_elsewhere else None
        return PlanStep(cancel=others, cancel_reason=reason)

    def caller_gone(self, now: float) -> PlanStep:
        pending = sorted(k for m in self.members for k in m.pending)
        self._clear()
        return PlanStep(cancel=pending)

    def next_deadline(self) -> float | None:
        deadlines = [m.deadline for m in self.members if m.deadline is not None]
        if self._deadline is not None:
            deadlines.append(self._deadline)
        return min(deadlines) if deadlines else None

    def on_timer(self, now: float) -> PlanStep:
        step = PlanStep()
        if self._deadline is not None and now >= self._deadline:
            # The group's time is up (ring-all): stop every member, plain CANCEL.
            self.timed_out = True
            step.cancel = sorted(k for m in self.members for k in m.pending)
            self._clear()
            step.final = Reject(480, "No Answer", "no-answer")
            return step
        for member in self.members:
            if member.deadline is not None and now >= member.deadline:
                # This member's turn is over: not "completed elsewhere", a plain CANCEL.
                self.timed_out = True
                step.cancel.extend(sorted(member.pending))
                member.pending.clear()
                member.deadline = None
                member.failures.append(408)
                self._after_member(now, step)
        return step

    # -- internals ---------------------------------------------------------------------------
    def _ring(self, member: Member, now: float, step: PlanStep) -> bool:
        """Start `member`'s legs into `step`; False when it is skipped."""
        member.started = True
        found = self.targets(member.number)
        if isinstance(found, str):
            self._skipped.append(found)
            return False
        for target in found:
            key = self.new_key()
            member.pending.add(key)
            self._by_key[key] = member
            label = f"{member.number} {target.request_uri}"
            step.start.append(LegSpec(key, target, member.number, label))
        if not self.ring_all or member.timeout < self.ring_timeout:
            member.deadline = now + member.timeout
        return True

    def _ring_next(self, now: float, step: PlanStep) -> None:
        while self._next < len(self.members):
            member = self.members[self._next]
            self._next += 1
            if self._ring(member, now, step):
                return
        step.final = self._give_up()

    def _after_member(self, now: float, step: PlanStep) -> None:
        """A member's branch ended: ring the next one (hunting) or give up when none is left."""
        if self.ring_all:
            if not self._live():
                self._deadline = None
                step.final = self._give_up()
        else:
            self._ring_next(now, step)

    def _live(self) -> bool:
        return any(m.pending for m in self.members)

    def _clear(self) -> None:
        for member in self.members:
            member.pending.clear()
            member.deadline = None
        self._deadline = None
        self._next = len(self.members)

    def _give_up(self) -> Reject:
        """Nobody answered: 480 no-answer if someone rang until the time ran out; the members'
        failures otherwise (486 if busy); nobody could be rung: 486 if they were all busy."""
        self._clear()
        if self.timed_out:
            return Reject(480, "No Answer", "no-answer")
        failures = [s for m in self.members for s in m.failures]
        if failures:
            return choose_failure(failures)
        if self._skipped and all(s in ("busy", "dnd") for s in self._skipped):
            return Reject(486, "All Members Busy")
        return Reject(480, "No Member Available")


class GroupResolver:
    """Group numbers -> `GroupPlan` (wrapped in a `FollowPlan` for the no-answer destination).

    `router` is set after the router exists (the destination is resolved through it)."""

    __slots__ = ("default_ring_timeout", "groups", "router", "users")

    def __init__(
        self,
        groups: GroupDirectory,
        users: UserResolver,
        default_ring_timeout: float = 30.0,
        router: Router | None = None,
    ) -> None:
        self.groups = groups
        self.users = users
        self.default_ring_timeout = default_ring_timeout
        self.router = router

    def resolve(self, number: str, ctx: RouteContext) -> TargetPlan | Reject | None:
        group = self.groups.get(number)
        if group is None:
            return None
        group_timeout = float(group.ring_timeout or self.default_ring_timeout)
        caller = ctx.caller.number if ctx.caller is not None else None
        skip_busy = bool((group.settings or {}).get("skip_busy", True))
        order = member_order(group, self.groups.last_answered.get(number))
        members = [(m, float(t) if t else group_timeout) for m, t in order]

        def targets(member: str) -> list[Target] | Skip:
            return self.member_targets(member, caller, skip_busy)

        def answered(member: str) -> None:
            self.groups.last_answered[number] = member

        plan = GroupPlan(
            number,
            members,
            targets,
            ring_all=group.strategy == "ring-all",
            ring_timeout=group_timeout,
            completed_elsewhere=group.completed_elsewhere,
            on_answer=answered,
        )
        destination = group.no_answer_destination
        if not destination:
            return plan

        def follow(reject: Reject, now: float) -> TargetPlan | Reject | None:
            hop = ctx.hop(number)
            if self.router is None or not hop_allowed(destination, hop):
                return None
            return self.router.resolve(destination, hop)

        return FollowPlan(plan, follow, number)

    def member_targets(
        self, number: str, caller: str | None, skip_busy: bool
    ) -> list[Target] | Skip:
        """The contacts to ring for a member now, or why it is skipped."""
        if number == caller:
            return "caller"
        user: User | None = self.users.user(number)
        if user is None or not user.enabled:
            return "disabled"
        if Forwarding.of(user).dnd:
            return "dnd"
        active = self.users.active_calls(number)
        if (user.max_calls is not None and active >= user.max_calls) or (skip_busy and active):
            return "busy"
        found = self.users.targets(number)
        return list(found) if found else "offline"
