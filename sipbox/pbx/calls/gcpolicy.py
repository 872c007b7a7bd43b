"""The garbage-collector policy of a server process (issue 4, "Concurrency").

Why: CPython's cyclic collector scans, in a full (generation 2) pass, every tracked object
that is not frozen. A held call is ~150 tracked objects (requests, dialogs, transactions), so
with 10,000 calls held a full pass took 1.9 s, and with calls at 100-300/s (whose transactions
live 32 s after the answer, RFC 6026) full passes of 70-470 ms came every few seconds: the
event loop stalls that made p99 INVITE->200 jump to 300-450 ms (bench/calls_inproc.py and
gc.callbacks, docs/PERFORMANCE.md "Calls").

Per-call objects die by reference counting (no cycles: `Timer.release`, measured with
`bench/calls_inproc.py --cycles`), so scanning them again and again finds nothing. The policy:

* every `freeze_every` seconds (2 s): a young pass (`gc.collect(1)`, a few ms: collects the
  young cycles, e.g. exception tracebacks) then `gc.freeze()` (O(1)): whatever survived is
  moved to the permanent generation and never scanned again. The automatic full passes then
  only see what was promoted in the last 2 s: a few ms instead of hundreds. Frozen objects
  are still freed by reference counting as soon as they are unreferenced (a call that ends).
* what freezing costs: a reference cycle that becomes garbage after it was frozen is not
  collected. So every `reclaim_every` seconds (6 h) one full pass over everything
  (`gc.unfreeze(); gc.collect(); gc.freeze()`) reclaims those; it is the one long pause
  (proportional to the live state) and its duration and yield are logged.

`stats` counts passes and pause times per generation (gc.callbacks) for /metrics and benches.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger("sipbox.pbx.gc")

__all__ = ["GcPolicy"]


class GcPolicy:
    """Freeze survivors often, reclaim frozen cycles rarely, measure every pause."""

    __slots__ = (
        "_began",
        "_handle",
        "_last_reclaim",
        "_loop",
        "freeze_every",
        "reclaim_every",
        "stats",
    )

    def __init__(self, *, freeze_every: float = 2.0, reclaim_every: float = 6 * 3600.0) -> None:
        self.freeze_every = freeze_every
        self.reclaim_every = reclaim_every
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._began = 0.0
        self._last_reclaim = 0.0
        # passes and pause seconds (total, max) per generation; reclaim passes apart
        self.stats: dict[str, Any] = {
            "passes": [0, 0, 0],
            "pause_total": [0.0, 0.0, 0.0],
            "pause_max": [0.0, 0.0, 0.0],
            "reclaims": 0,
            "reclaimed": 0,
            "reclaim_pause_max": 0.0,
        }

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None:
            return
        self._loop = loop
        self._last_reclaim = time.monotonic()
        gc.callbacks.append(self._on_gc)
        if self.freeze_every > 0:
            self._handle = loop.call_later(self.freeze_every, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._loop = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = time.perf_counter() - self._began
        gen = info["generation"]
        stats = self.stats
        stats["passes"][gen] += 1
        stats["pause_total"][gen] += pause
        if pause > stats["pause_max"][gen]:
            stats["pause_max"][gen] = pause

    def _tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = time.monotonic()
        if self.reclaim_every > 0 and now - self._last_reclaim >= self.reclaim_every:
            self._last_reclaim = now
            self.reclaim()
        else:
            gc.collect(1)
            gc.freeze()
        self._handle = loop.call_later(self.freeze_every, self._tick)

    def reclaim(self) -> int:
        """One full pass over everything, frozen objects included (the rare long pause)."""
        start = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        pause = time.perf_counter() - start
        stats = self.stats
        stats["reclaims"] += 1
        stats["reclaimed"] += found
        stats["reclaim_pause_max"] = max(stats["reclaim_pause_max"], pause)
        log.info("gc reclaim pass: %d unreachable objects, %.0f ms", found, pause * 1000)
        return found
