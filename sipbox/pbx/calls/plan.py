"""Target plans: which B legs a call starts, cancels and gives up on, decided apart from SIP.

The B2BUA (`b2bua.py`) owns the SIP machinery of every leg; a *plan* owns the choice of legs,
as a pure object with time passed in (like the rest of sipbox). The B2BUA tells the plan what
happened (started, a leg failed or was redirected, one answered, the caller gave up, a timer
fired) and applies the `PlanStep` it answers: legs to start, legs to cancel (with the Reason to
put in the CANCEL) and, when nothing is left to try, the final failure for the caller.

This is where ringing groups (ring-all / sequential / circular), forwarding on busy / no answer
/ unreachable and DND plug in: each is a `TargetPlan`, or a plan wrapping another (forwarding
wraps the user's plan and, on its failure, starts the forward target's plan), and the B2BUA
does not change. `ForkPlan` below is the core one: every contact of one user at once
(parallel forking, RFC 3261 §16.7 semantics for choosing the final answer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sipbox.pbx.location import Target

__all__ = [
    "COMPLETED_ELSEWHERE",
    "ForkPlan",
    "LegSpec",
    "PlanStep",
    "Reject",
    "TargetPlan",
    "choose_failure",
]

#: RFC 3326 Reason for the CANCEL of legs that lost to an answer elsewhere: phones then do not
#: log a missed call (RFC 3326 §2, cause 200).
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'


@dataclass(frozen=True, slots=True)
class Reject:
    """A final failure for the caller: status, reason phrase, and the CDR disposition when it
    is not the obvious one for the status (a ring timeout is 480 but `no-answer`)."""

    status: int
    reason: str | None = None
    disposition: str | None = None


@dataclass(frozen=True, slots=True)
class LegSpec:
    """One B leg to start: a plan-unique `key`, where to send it, and for whom (`number` is
    the user rung, `label` what the CDR calls the destination)."""

    key: int
    target: Target
    number: str
    label: str = ""


@dataclass(slots=True)
class PlanStep:
    """What the B2BUA must do now."""

    start: list[LegSpec] = field(default_factory=list)
    cancel: list[int] = field(default_factory=list)
    cancel_reason: str | None = None
    final: Reject | None = None


class TargetPlan(Protocol):
    """The plan of one call. Every method returns the step to apply (possibly empty)."""

    label: str

    def start(self, now: float) -> PlanStep: ...

    def leg_failed(self, key: int, status: int, now: float) -> PlanStep: ...

    def redirected(self, key: int, specs: list[LegSpec], now: float) -> PlanStep: ...

    def answered(self, key: int, now: float) -> PlanStep: ...

    def caller_gone(self, now: float) -> PlanStep: ...

    def next_deadline(self) -> float | None: ...

    def on_timer(self, now: float) -> PlanStep: ...

    def new_key(self) -> int: ...


def choose_failure(statuses: Iterable[int]) -> Reject:
    """The final status when every leg failed (RFC 3261 §16.7 step 6, simplified the way phones
    expect): a 6xx wins (603 declined, 600 busy everywhere); then busy (486) if any device was
    busy; timeouts and unreachable devices give 480; otherwise the lowest other failure."""
    seen = list(statuses)
    if not seen:
        return Reject(480)
    for status in seen:
        if status >= 600:
            return Reject(status)
    if 486 in seen:
        return Reject(486)
    others = [s for s in seen if s not in (408, 480, 487, 503) and not 300 <= s < 400]
    if not others:
        return Reject(480)
    return Reject(min(others))


class ForkPlan:
    """Ring every target at once until one answers, all fail, or `ring_timeout` runs out."""

    __slots__ = ("_deadline", "_failures", "_keys", "_pending", "label", "ring_timeout", "specs")

    def __init__(self, specs: Iterable[LegSpec], ring_timeout: float, label: str) -> None:
        self.specs = list(specs)
        self._keys = max((s.key for s in self.specs), default=0)
        self.ring_timeout = ring_timeout
        self.label = label
        self._pending: set[int] = set()
        self._failures: list[int] = []
        self._deadline: float | None = None

    def new_key(self) -> int:
        self._keys += 1
        return self._keys

    def start(self, now: float) -> PlanStep:
        if not self.specs:
            return PlanStep(final=Reject(480))
        self._deadline = now + self.ring_timeout
        self._pending = {s.key for s in self.specs}
        return PlanStep(start=list(self.specs))

    def leg_failed(self, key: int, status: int, now: float) -> PlanStep:
        if key not in self._pending:
            return PlanStep()
        self._pending.discard(key)
        self._failures.append(status)
        if self._pending:
            return PlanStep()
        self._deadline = None
        return PlanStep(final=choose_failure(self._failures))

    def redirected(self, key: int, specs: list[LegSpec], now: float) -> PlanStep:
        if not specs:
            return self.leg_failed(key, 480, now)
        self._pending.discard(key)
        self._pending.update(s.key for s in specs)
        return PlanStep(start=specs)

    def answered(self, key: int, now: float) -> PlanStep:
        others = sorted(self._pending - {key})
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
