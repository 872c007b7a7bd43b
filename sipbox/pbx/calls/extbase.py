"""Small pieces the B2BUA extensions share: their timers and their own client transactions.

Extensions (`early.py`, `session_timer.py`, `transfer.py`) keep their deadlines in the
B2BUA's one heap, so `CallService` still drives a single timer handle; an `ExtTimer` carries
the action to run (`B2BUA._on_timer` hands unknown kinds to `CallExtensions.on_timer`).
Requests an extension sends itself (PRACK, NOTIFY, refreshes, the transfer's legs) are put in
`B2BUA._tx` as an `Owned` entry, whose callbacks get the responses and the failures
(408 timeout, 503 transport) of that transaction.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable
from typing import Any

from sipbox.sip.message import Message, Response

from .model import Call, Timer

__all__ = ["ExtTimer", "Owned", "delta_seconds", "initial_rseq", "option_tags", "schedule"]


class ExtTimer(Timer):
    """A timer of an extension: `fire(now)` runs when it is due (unless cancelled)."""

    __slots__ = ("fire",)

    def __init__(self, at: float, call: Call, kind: str, fire: Callable[[float], None]) -> None:
        super().__init__(at, call, kind)
        self.fire = fire

    def release(self) -> None:
        super().release()
        self.fire = _noop  # its closure holds the call and its side


def _noop(now: float) -> None:
    pass


def schedule(
    b2bua: Any, at: float, call: Call, kind: str, fire: Callable[[float], None]
) -> ExtTimer:
    """Put an extension's deadline in the B2BUA's heap (the service re-arms after events)."""
    timer = ExtTimer(at, call, kind, fire)
    heapq.heappush(b2bua._timers, timer)
    return timer


class Owned:
    """A client transaction an extension started: where its responses go."""

    __slots__ = ("failed", "respond")

    def __init__(
        self,
        respond: Callable[[Response, object], None] | None = None,
        failed: Callable[[int, object], None] | None = None,
    ) -> None:
        self.respond = respond
        self.failed = failed

    def on_response(self, response: Response, tx: object) -> None:
        if self.respond is not None:
            self.respond(response, tx)

    def on_failed(self, status: int, tx: object) -> None:
        if self.failed is not None:
            self.failed(status, tx)


def option_tags(message: Message, name: str) -> set[str]:
    """Option tags of Supported/Require, lower-case (RFC 3261 §20.37, §20.32)."""
    return {t.lower() for t in message.option_tags(name)}


def delta_seconds(value: str | None) -> tuple[int | None, dict[str, str]]:
    """`Session-Expires`/`Min-SE` style value: delta-seconds and its parameters (RFC 4028 §4)."""
    if not value:
        return None, {}
    head, *params = value.split(";")
    try:
        seconds: int | None = int(head.strip())
    except ValueError:
        seconds = None
    out: dict[str, str] = {}
    for param in params:
        key, _, val = param.partition("=")
        out[key.strip().lower()] = val.strip().lower()
    return seconds, out


def initial_rseq(token: str) -> int:
    """The first RSeq of an early dialog: RFC 3262 §3 wants it random in 1..2**31-1; derived
    from an id of the injected id source, so tests (counter ids) see fixed numbers."""
    return (zlib.crc32(token.encode()) & 0x3FFFFFFF) + 1
