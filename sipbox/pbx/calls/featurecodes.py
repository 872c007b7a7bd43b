"""Feature codes dialed from a phone: set or clear the caller's forwarding and DND (issue 4).

Defaults follow miniSipServer so users coming from it keep their habits (all configurable in
``[features]``):

=====================  =========================  =====================
what                   set                        clear
=====================  =========================  =====================
forward on busy        ``*90*<number>#``          ``*90#``
forward unreachable    ``*91*<number>#``          ``*91#``
forward on no answer   ``*92*<number>#``          ``*92#``
forward unconditional  ``*93*<number>#``          ``*93#``
do not disturb         ``*78#`` (on)              ``*79#`` (off)
=====================  =========================  =====================

The trailing ``#`` is optional (many phones use it as the "send" key and strip it; in a SIP
URI it arrives escaped as ``%23``). There is no media server yet to play a confirmation
tone, so the call is answered with a final non-2xx whose reason phrase says what changed,
e.g. ``480 Forwarding on busy set to 1002`` — phones show the reason phrase of a failed call.
480 is the default (``[features] answer_status``) because every phone shows it as a plain
failed call (486 would play a busy tone and 403 reads as an error). Refusals use their own
codes: ``403`` (the target is not allowed for this user), ``404`` (unknown target), ``484``
(a code without a usable number).

The change is live at once (the in-memory directory gets the new user record) and written
to the store in the background through `persist`, so the SIP path never waits for the database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sipbox.storage.interface import User

from .forwarding import Forwarding
from .plan import Reject, TargetPlan
from .routing import RouteContext, Router

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["FeatureCodeResolver", "FeatureCodes"]

_TARGET_RE = re.compile(r"^\+?[0-9A-Za-z][0-9A-Za-z._~!-]{0,63}$")

_TEXT = {
    "busy": "on busy",
    "unreachable": "when unreachable",
    "no_answer": "on no answer",
    "unconditional": "unconditional",
}


@dataclass(frozen=True, slots=True)
class FeatureCodes:
    """The codes (``[features]``) and the status the confirmation is answered with."""

    forward_busy: str = "*90"
    forward_unreachable: str = "*91"
    forward_no_answer: str = "*92"
    forward_unconditional: str = "*93"
    dnd_on: str = "*78"
    dnd_off: str = "*79"
    answer_status: int = 480

    def forward_codes(self) -> list[tuple[str, str]]:
        """(code, kind), longest code first so that no code shadows a longer one."""
        pairs = [
            (self.forward_busy, "busy"),
            (self.forward_unreachable, "unreachable"),
            (self.forward_no_answer, "no_answer"),
            (self.forward_unconditional, "unconditional"),
        ]
        return sorted(((c, k) for c, k in pairs if c), key=lambda p: -len(p[0]))


class FeatureCodeResolver:
    """First in `Router.resolvers`: a dialed feature code changes the caller's settings and
    answers with a `Reject` saying what changed; other numbers pass (None)."""

    __slots__ = ("_prefixes", "codes", "directory", "forward_codes", "persist", "router")

    def __init__(
        self,
        codes: FeatureCodes,
        directory: Any,
        persist: Callable[[str, dict[str, Any]], None],
        router: Router | None = None,
    ) -> None:
        self.codes = codes
        self.directory = directory
        self.persist = persist
        self.router = router
        self.forward_codes = codes.forward_codes()
        self._prefixes = tuple({c[:1] for c, _ in self.forward_codes} |
                               {c[:1] for c in (codes.dnd_on, codes.dnd_off) if c})  # fmt: skip

    def resolve(self, number: str, ctx: RouteContext) -> TargetPlan | Reject | None:
        if not number.startswith(self._prefixes):
            return None  # the hot path: one startswith for ordinary numbers
        dialed = number[:-1] if number.endswith("#") else number
        codes = self.codes
        user = ctx.caller
        if dialed in (codes.dnd_on, codes.dnd_off) and dialed:
            if user is None:
                return Reject(403, "Feature Codes Need A User")
            on = dialed == codes.dnd_on
            self._store(user, {"dnd": on})
            return self._done(f"Do not disturb {'on' if on else 'off'}")
        for code, kind in self.forward_codes:
            if dialed == code:
                if user is None:
                    return Reject(403, "Feature Codes Need A User")
                self._store(user, {kind: None})
                return self._done(f"Forwarding {_TEXT[kind]} cancelled")
            if dialed.startswith(code + "*"):
                if user is None:
                    return Reject(403, "Feature Codes Need A User")
                return self._set(user, kind, dialed[len(code) + 1 :])
        return None

    def _set(self, user: User, kind: str, target: str) -> Reject:
        if not _TARGET_RE.match(target):
            return Reject(484, "Forwarding Target Missing")
        if target == user.number:
            return Reject(403, "Cannot Forward To Yourself")
        router = self.router
        if router is not None:
            if not router.permitted(user, target):
                return Reject(403, f"Forwarding To {target} Not Allowed")
            found = router.resolve(target, RouteContext(user, (user.number,)))
            if isinstance(found, Reject) and found.status == 404:
                return Reject(404, f"Forwarding Target {target} Unknown")
        self._store(user, {kind: target})
        return self._done(f"Forwarding {_TEXT[kind]} set to {target}")

    def _store(self, user: User, change: dict[str, Any]) -> None:
        """Live at once in memory, written to the store in the background."""
        current = Forwarding.of(user).as_dict()
        current.update(change)
        settings = {**(user.settings or {}), "forwarding": current}
        put = getattr(self.directory, "put", None)
        if put is not None:
            put(replace(user, settings=settings))
        self.persist(user.number, change)
        log.info("feature code: user %s forwarding %s", user.number, change)

    def _done(self, text: str) -> Reject:
        return Reject(self.codes.answer_status, text, "failed")
