"""Call set-up time, kept as fixed histogram buckets for ``/metrics`` (issue 7).

Why buckets here and not a prometheus-client `Histogram`: the PBX layer does not import web or
metrics libraries, and observing must stay a few integer additions on the SIP path. The API's
collector turns these counts into a Prometheus histogram at scrape time.

Set-up time is the time from the caller's INVITE to the first 18x or 2xx of any device rung
(what a caller perceives as "dialling delay"; includes our routing and the callee's network).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

__all__ = ["SETUP_BUCKETS", "SetupTimes"]

#: Upper bounds in seconds (Prometheus ``le``); +Inf is implicit.
SETUP_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


class SetupTimes:
    """Counts of set-up times per bucket (not cumulative), their sum and number."""

    __slots__ = ("buckets", "count", "counts", "total")

    def __init__(self, buckets: tuple[float, ...] = SETUP_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one call's set-up time (negative clock steps count as 0)."""
        seconds = max(0.0, seconds)
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, cumulative count)]`` including ``+Inf``, as Prometheus expects."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out
