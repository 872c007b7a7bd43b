"""Deadline structures for the transaction layer: an exact heap and a bucketed wheel.

Two kinds of deadlines exist (RFC 3261 §17, Table 4):

* Retransmission and timeout timers of *live* transactions (A, B, E, F, G, H, M, L and the
  INVITE guard). They must fire at exact times (tests assert `T1, 3*T1, 7*T1...`), are few
  (one pending deadline per live transaction) and change often. They live in `DeadlineHeap`,
  a binary heap with lazy deletion: an entry is valid only while its owner's `scheduled`
  attribute still holds the entry's deadline, so rescheduling is one push and cancelling is free.

* Linger timers of *completed* transactions kept only to absorb retransmissions (J, K, D, I).
  At high request rates these are hundreds of thousands of entries whose expiry need not be
  exact. They live in `Wheel`: entries are grouped in buckets of `resolution` seconds (a dict
  per bucket), a bucket expires as a whole, and only the first entry of a bucket pushes the
  bucket's index on a small heap. Look-up by key is one dict probe on a miss (the common case
  for a new request) and two on a hit. An entry expires at its deadline rounded *up* to the
  bucket boundary, so it never disappears early.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Generic, Protocol, TypeVar

__all__ = ["DeadlineHeap", "Scheduled", "Wheel"]

K = TypeVar("K")
V = TypeVar("V")


class Scheduled(Protocol):
    """What the heap needs from its items: the deadline they currently want (or None)."""

    scheduled: float | None


S = TypeVar("S", bound=Scheduled)


class DeadlineHeap(Generic[S]):
    """Min-heap of `(deadline, seq, item)` with lazy invalidation via `item.scheduled`."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, S]] = []
        self._seq = itertools.count()

    def schedule(self, item: S, deadline: float | None) -> None:
        """Make `deadline` the item's only valid deadline (None cancels)."""
        if item.scheduled == deadline:
            return
        item.scheduled = deadline
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._seq), item))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, item = heap[0]
            if item.scheduled == deadline:
                return deadline
            heapq.heappop(heap)  # stale: rescheduled or cancelled since the push
        return None

    def pop_due(self, now: float) -> S | None:
        """Remove and return one item whose deadline has passed, or None."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, item = heapq.heappop(heap)
            if item.scheduled == deadline:
                item.scheduled = None
                return item
        return None

    def __len__(self) -> int:
        """Heap entries, stale ones included (a memory figure, not a count of timers)."""
        return len(self._heap)


class Wheel(Generic[K, V]):
    """Expiring key -> value store with batch expiry per time bucket."""

    __slots__ = ("_buckets", "_index", "_order", "resolution")

    def __init__(self, resolution: float = 0.125) -> None:
        if resolution <= 0:
            raise ValueError("resolution must be positive")
        self.resolution = resolution
        self._buckets: dict[int, dict[K, V]] = {}
        self._index: dict[K, int] = {}
        self._order: list[int] = []  # heap of bucket indexes present in _buckets

    def add(self, key: K, value: V, expires_at: float) -> None:
        """Store `value` under `key` until `expires_at` (replacing any earlier entry)."""
        old = self._index.get(key)
        if old is not None:
            del self._buckets[old][key]
        slot = math.ceil(expires_at / self.resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = {}
            heapq.heappush(self._order, slot)
        bucket[key] = value
        self._index[key] = slot

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """`(found, value)`: values may themselves be None, hence the flag."""
        slot = self._index.get(key)
        if slot is None:
            return False, None
        return True, self._buckets[slot][key]

    def discard(self, key: K) -> None:
        slot = self._index.pop(key, None)
        if slot is not None:
            del self._buckets[slot][key]

    def next_deadline(self) -> float | None:
        order = self._order
        while order:
            slot = order[0]
            if self._buckets.get(slot):
                return slot * self.resolution
            heapq.heappop(order)  # emptied by discards
            self._buckets.pop(slot, None)
        return None

    def expire(self, now: float) -> list[tuple[K, V]]:
        """Remove every entry whose bucket boundary is `<= now`; return them."""
        out: list[tuple[K, V]] = []
        order = self._order
        resolution = self.resolution
        index = self._index
        # Same product as next_deadline() returns, so firing "at" that deadline always works.
        while order and order[0] * resolution <= now:
            slot = heapq.heappop(order)
            bucket = self._buckets.pop(slot, None)
            if bucket:
                for key in bucket:
                    del index[key]
                out.extend(bucket.items())
        return out

    def evict_oldest(self) -> tuple[K, V] | None:
        """Remove and return the entry that would expire first (None when empty): how a
        bounded store makes room instead of refusing new work."""
        order = self._order
        while order:
            slot = order[0]
            bucket = self._buckets.get(slot)
            if bucket:
                key = next(iter(bucket))
                value = bucket.pop(key)
                del self._index[key]
                return key, value
            heapq.heappop(order)
            self._buckets.pop(slot, None)
        return None

    def __len__(self) -> int:
        return len(self._index)
