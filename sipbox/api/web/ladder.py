"""Geometry of a call's ladder diagram (the SVG on the call page), from its SIP trace.

Why computed in Python and drawn by the template: the page must work without a build step or
a charting library, and an administrator reads the ladder as a picture while a test (and a
maintainer) can check the arrows as plain data. Columns: the caller, sipbox, then one column
per device rung (each B leg, in the order they were started). Each message is one arrow from
its sender's column to its receiver's, labelled with the method or the status, with the time
since the call started on the left; clicking an arrow jumps to the raw message below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sipbox.api.routes.calls import CallTraceOut

__all__ = ["Arrow", "Column", "Ladder", "build_ladder"]

LEFT: Final = 90  # room for the time labels
COLUMN_GAP: Final = 230
TOP: Final = 60
ROW: Final = 30


@dataclass(frozen=True, slots=True)
class Column:
    """A vertical line: who, and where it was reached."""

    x: int
    title: str
    address: str


@dataclass(frozen=True, slots=True)
class Arrow:
    """One message: from x1 to x2 at height y."""

    index: int
    y: int
    x1: int
    x2: int
    label: str
    time: str
    kind: str  # request | provisional | success | failure (CSS class: the colour)


@dataclass(frozen=True, slots=True)
class Ladder:
    """Everything the template draws."""

    width: int
    height: int
    columns: list[Column]
    arrows: list[Arrow]


def _kind(summary: str) -> str:
    head = summary[:1]
    if not head.isdigit():
        return "request"
    if head == "1":
        return "provisional"
    if head == "2":
        return "success"
    return "failure"


def build_ladder(trace: CallTraceOut) -> Ladder:
    """Columns and arrows for `trace` (see the module docstring for the layout)."""
    caller_address = next((m.peer for m in trace.messages if m.leg == "caller"), "")
    columns = [Column(LEFT, "Caller", caller_address), Column(LEFT + COLUMN_GAP, "sipbox", "")]
    callee_x: dict[str, int] = {}
    for message in trace.messages:
        if message.leg == "callee" and message.call_id not in callee_x:
            x = LEFT + COLUMN_GAP * (2 + len(callee_x))
            callee_x[message.call_id] = x
            columns.append(Column(x, f"Callee {message.party}", message.peer))
    sipbox_x = columns[1].x
    arrows: list[Arrow] = []
    for row, message in enumerate(trace.messages):
        far = columns[0].x if message.leg == "caller" else callee_x[message.call_id]
        x1, x2 = (far, sipbox_x) if message.direction == "in" else (sipbox_x, far)
        arrows.append(
            Arrow(
                index=message.index,
                y=TOP + ROW * row,
                x1=x1,
                x2=x2,
                label=message.summary,
                time=f"+{message.offset:.3f} s",
                kind=_kind(message.summary),
            )
        )
    width = columns[-1].x + COLUMN_GAP // 2 + 20
    height = TOP + ROW * max(1, len(arrows)) + 10
    return Ladder(width, height, columns, arrows)
