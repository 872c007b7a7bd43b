"""OPTIONS keep-alive of one external line (its `keepalive` interval, seconds; 0 = off).

Why: a carrier's SBC that silently went away is otherwise only noticed at the next
registration refresh (up to half an hour later), and NAT bindings towards it expire in between.
So every `keepalive` seconds (jittered by +-10 % so many lines on one SBC do not send in step)
an OPTIONS goes to the line's *current* target (the one its registration uses). Any answer at
all - even 404/405 - means a live SIP stack: *reachable*. A timeout or transport error means
*unreachable*: shown in `/lines` and handed to the registration machine, which re-REGISTERs
(to the next target when there is one) instead of tearing the binding down on one lost OPTIONS;
its own failover/backoff rules then apply. When the target answers again after an outage the
line is *reachable* again and, if its registration had failed meanwhile, registers at once.

Pure like the registration machine: time is passed in, requests come out.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sipbox.sip.address import Address
from sipbox.sip.headers import Headers
from sipbox.sip.message import Request

from .line import LineConfig

__all__ = ["LineKeepalive"]

#: +-10 %: enough to spread lines sharing an SBC, small enough to keep the NAT binding.
JITTER = 0.1


class LineKeepalive:
    """Keep-alive state of one line; drive it with `poll(now)` at `next_deadline()`."""

    __slots__ = (
        "_due",
        "_ids",
        "_rng",
        "in_flight",
        "last_answer",
        "last_failure",
        "line",
        "reachable",
        "target",
    )

    def __init__(
        self, line: LineConfig, ids: Callable[[], str], rng: random.Random | None = None
    ) -> None:
        self.line = line
        self._ids = ids
        self._rng = rng or random.Random()
        self._due: float | None = None
        self.in_flight = False
        self.reachable: bool | None = None  # unknown until the first OPTIONS is answered
        self.last_answer: float | None = None
        self.last_failure: float | None = None
        self.target: Address | None = None

    def interval(self) -> float:
        base = float(self.line.keepalive)
        return base * (1.0 + self._rng.uniform(-JITTER, JITTER))

    def start(self, now: float) -> None:
        """First OPTIONS after a (jittered) interval: the REGISTER itself proves the path."""
        self._due = now + self.interval() if self.line.keepalive > 0 else None

    def stop(self) -> None:
        self._due = None

    def next_deadline(self) -> float | None:
        return self._due

    def poll(self, now: float, target: Address | None) -> Request | None:
        """The OPTIONS due at `now` towards `target` (None: nothing due, one still in
        flight, or no target known yet)."""
        if self._due is None or now < self._due:
            return None
        self._due = now + self.interval()
        if self.in_flight or target is None:
            return None
        line = self.line
        headers = Headers()
        headers.add("From", f"<sip:{line.account}@{line.domain}>;tag={self._ids()}")
        headers.add("To", f"<sip:{line.domain}>")
        headers.add("Call-ID", f"{self._ids()}@sipbox")
        headers.add("CSeq", "1 OPTIONS")
        headers.add("Max-Forwards", "70")
        self.in_flight = True
        self.target = target
        return Request("OPTIONS", f"sip:{line.domain}", headers)

    def on_result(self, alive: bool, now: float) -> str | None:
        """Record the outcome; returns ``"lost"`` or ``"resumed"`` on a change, else None."""
        self.in_flight = False
        was = self.reachable
        self.reachable = alive
        if alive:
            self.last_answer = now
            return "resumed" if was is False else None
        self.last_failure = now
        return "lost" if was is not False else None
