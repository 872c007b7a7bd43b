"""The CDR writer: call records go to the store in the background, never on the SIP path.

The B2BUA hands over immutable `Cdr` snapshots (`submit`, non-blocking); one task drains them
in batches (`Store.save_cdrs`, one transaction per batch). Records are keyed by id, so when a
call's open record and its completed record are both still queued only the completed one is
written — under load a short call costs one row write, not two. On start, records left open by
a crash are closed as `interrupted` (`Store.close_interrupted_cdrs`) before any call begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sipbox.storage.interface import Store
from sipbox.storage.records import Cdr

log = logging.getLogger("sipbox.pbx.cdr")

__all__ = ["CdrWriter"]


class CdrWriter:
    """Write-behind queue of call records."""

    __slots__ = ("_pending", "_task", "_wake", "batch_size", "failures", "store", "written")

    def __init__(self, store: Store, *, batch_size: int = 500) -> None:
        self.store = store
        self.batch_size = batch_size
        self._pending: dict[str, Cdr] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failures = 0

    def submit(self, record: Cdr) -> None:
        """Queue a record (the newest version of a call's record replaces an older one)."""
        self._pending.pop(record.id, None)
        self._pending[record.id] = record
        if self._wake is not None:
            self._wake.set()

    async def recover(self, now: float | None = None) -> int:
        """Close records left open by a crash (before the first call)."""
        closed = await self.store.close_interrupted_cdrs(time.time() if now is None else now)
        if closed:
            log.warning("closed %d call record(s) left open by an interrupted run", closed)
        return closed

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cdr-writer")

    async def stop(self) -> None:
        """Stop the task and write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        while self._pending:
            await self._write_batch()

    async def _write_batch(self) -> None:
        pending = self._pending
        if len(pending) <= self.batch_size:
            batch = list(pending.values())
            pending.clear()
        else:
            keys = list(pending)[: self.batch_size]
            batch = [pending.pop(k) for k in keys]
        try:
            await self.store.save_cdrs(batch)
            self.written += len(batch)
        except Exception:
            self.failures += 1
            log.exception("could not write %d call record(s); retrying", len(batch))
            for record in batch:
                pending.setdefault(record.id, record)
            await asyncio.sleep(1.0)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            # A short pause lets a burst of calls share one transaction.
            await asyncio.sleep(0.05)
            while self._pending:
                await self._write_batch()
