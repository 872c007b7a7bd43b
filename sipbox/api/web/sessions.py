"""Web sessions (cookie -> administrator + CSRF token) and the per-address login lock-out.

Sessions live in memory, keyed by the SHA-256 of the cookie value (as API tokens are in the
store), so the table never holds a usable cookie. Why memory: a session is checked on every
page and API call from the browser, and a restart logging administrators out is harmless. Each
session has its own random CSRF token; the page carries it in a ``<meta>`` tag and the page
script sends it as ``X-CSRF-Token`` with every request that changes something. A forged
cross-site form cannot read it (and SameSite=Strict keeps the cookie off cross-site requests
anyway: two independent defences).

Lock-out is per *source address*, never per account: 5 failed logins from one address within
5 minutes lock that address out for 15 minutes, while the administrator can still log in from
anywhere else. Locking the account would let anyone on the network lock the only admin out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "LoginLimiter", "Session", "SessionStore"]

SESSION_COOKIE: Final = "sipbox_session"
CSRF_HEADER: Final = "x-csrf-token"

Clock = Callable[[], float]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in administrator."""

    username: str
    csrf_token: str
    created_at: float
    expires_at: float

    def csrf_matches(self, presented: str | None) -> bool:
        """Constant-time comparison with the token the request presented."""
        return presented is not None and hmac.compare_digest(presented, self.csrf_token)


class SessionStore:
    """Live sessions by cookie digest, each ending `lifetime` seconds after login.

    Bounded (`max_sessions`): when full, expired sessions are swept and then the oldest go, so
    a script logging in in a loop cannot grow memory without limit.
    """

    def __init__(
        self, *, lifetime: float = 12 * 3600, max_sessions: int = 1000, clock: Clock = time.time
    ) -> None:
        self.lifetime = lifetime
        self._max = max_sessions
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, username: str) -> tuple[str, Session]:
        """Start a session; returns (cookie value, session). The cookie is shown only here."""
        now = self._clock()
        if len(self._sessions) >= self._max:
            self._sweep(now)
            while len(self._sessions) >= self._max:
                del self._sessions[next(iter(self._sessions))]  # oldest first (insertion order)
        cookie = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(32), now, now + self.lifetime)
        self._sessions[_digest(cookie)] = session
        return cookie, session

    def lookup(self, cookie: str) -> Session | None:
        """The live session for a cookie value, or None (unknown, ended or expired)."""
        key = _digest(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[key]
            return None
        return session

    def end(self, cookie: str) -> bool:
        """Log out: forget the session; True if it existed."""
        return self._sessions.pop(_digest(cookie), None) is not None

    def end_user(self, username: str, keep: Session | None = None) -> int:
        """End every session of one administrator (after a password change or deletion),
        except `keep` (the session making the change); how many ended."""
        keys = [k for k, s in self._sessions.items() if s.username == username and s is not keep]
        for key in keys:
            del self._sessions[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._sessions)

    def _sweep(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]


@dataclass(slots=True)
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginLimiter:
    """Failed logins per source address; `max_failures` within `window` lock it for `lockout`.

    `locked_for(source)` is asked *before* the password is checked (a locked address gets no
    verdict, so guessing stops), `failed` after a wrong password, `succeeded` after a right one
    (which clears that address's count). The table is bounded by `max_sources`.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 300.0,
        lockout: float = 900.0,
        max_sources: int = 10_000,
        clock: Clock = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._max = max_sources
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def locked_for(self, source: str) -> float:
        """Seconds the address stays locked out (0 when it may try)."""
        record = self._records.get(source)
        if record is None:
            return 0.0
        return max(0.0, record.locked_until - self._clock())

    def failed(self, source: str) -> bool:
        """Count a failure; True when this one locked the address."""
        now = self._clock()
        record = self._records.get(source)
        if record is None:
            if len(self._records) >= self._max:
                self._sweep(now)
            record = self._records[source] = _Record()
        failures = record.failures
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.max_failures:
            failures.clear()
            record.locked_until = now + self.lockout
            return True
        return False

    def succeeded(self, source: str) -> None:
        """A correct password from `source`: forget its failures."""
        record = self._records.get(source)
        if record is not None and record.locked_until <= self._clock():
            del self._records[source]

    def _sweep(self, now: float) -> None:
        stale = [
            k
            for k, r in self._records.items()
            if r.locked_until <= now and (not r.failures or r.failures[-1] <= now - self.window)
        ]
        for key in stale:
            del self._records[key]
        while len(self._records) >= self._max:
            del self._records[next(iter(self._records))]
