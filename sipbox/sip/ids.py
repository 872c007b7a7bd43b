"""Identifiers the SIP core puts on the wire: Via branches, tags, Call-IDs (RFC 3261 §8.1.1).

The core never draws randomness itself: every id comes from an `IdSource`, a callable that
returns a fresh opaque token each time it is called. The application builds one from `secrets`
(`random_id_source`); tests pass `counter_id_source` so every branch and tag is predictable.
A branch must be unique in space and time and start with the magic cookie `z9hG4bK`
(§8.1.1.7); tags need at least 32 bits of randomness (§19.3); Call-IDs must be globally unique
(§8.1.1.4). Sixteen hex digits from `secrets.token_hex` (64 bits) cover all three.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

__all__ = [
    "MAGIC_COOKIE",
    "IdSource",
    "counter_id_source",
    "make_branch",
    "make_call_id",
    "make_tag",
    "random_id_source",
]

IdSource = Callable[[], str]

# §8.1.1.7: branches created by RFC 3261 elements start with this cookie.
MAGIC_COOKIE = "z9hG4bK"


def random_id_source(nbytes: int = 8) -> IdSource:
    """The production source: `nbytes` random bytes as hex (token characters only)."""

    def source() -> str:
        return secrets.token_hex(nbytes)

    return source


def counter_id_source(prefix: str = "id") -> IdSource:
    """A deterministic source for tests: `id1`, `id2`, ..."""
    state = [0]

    def source() -> str:
        state[0] += 1
        return f"{prefix}{state[0]}"

    return source


def make_branch(source: IdSource) -> str:
    """A Via branch with the RFC 3261 magic cookie."""
    return MAGIC_COOKIE + source()


def make_tag(source: IdSource) -> str:
    """A From/To tag (§19.3)."""
    return source()


def make_call_id(source: IdSource, host: str | None = None) -> str:
    """A Call-ID, `token@host` when a host is given (§8.1.1.4)."""
    token = source()
    return f"{token}@{host}" if host else token
