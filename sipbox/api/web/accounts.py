"""Web admin passwords: argon2id hashes, and the first account created when none exists.

Why argon2 and not the SIP HA1 scheme: an HA1 is a password equivalent for digest (whoever
reads it can authenticate as the user), while an argon2id hash is salted and slow on purpose, so
a copied database does not open the admin pages. Hashing costs ~50 ms and 64 MiB, so it runs in
a worker thread (`verify_password`) and never stalls the event loop that carries SIP.

`ensure_web_admin` runs at every start: when the table is empty (a new installation, or one
that ran before this feature existed) it creates ``admin`` with a random password and returns it
so the caller prints it once. ``sipbox admin passwd`` changes it later.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sipbox.storage import Store

__all__ = ["DEFAULT_ADMIN", "ensure_web_admin", "hash_password", "new_password", "verify_password"]

DEFAULT_ADMIN: Final = "admin"
"""Name of the account created when none exists."""

_HASHER: Final = PasswordHasher()  # argon2id, RFC 9106 "low memory" profile (t=3, 64 MiB, p=4)

_DUMMY_HASH: Final = _HASHER.hash("sipbox: a password nobody has")
"""Verified against when the user name is unknown, so a wrong name and a wrong password take
the same time (no user-name probing by timing)."""


def new_password() -> str:
    """A random password an administrator can type: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    """The argon2id PHC string stored for `password` (blocking: ~50 ms)."""
    return _HASHER.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        _HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return password_hash is not None


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; None as the hash (unknown user) costs the same and fails.

    Runs in a thread: argon2 is deliberately slow and would otherwise block SIP traffic.
    """
    return await asyncio.to_thread(_verify, password_hash, password)


async def ensure_web_admin(store: Store) -> str | None:
    """Create ``admin`` with a random password when no web admin exists; return the password.

    Returns None when an account exists already (the common case), so the password is printed
    exactly once: at the start that created it.
    """
    if await store.list_web_admins():
        return None
    password = new_password()
    await store.create_web_admin(DEFAULT_ADMIN, await asyncio.to_thread(hash_password, password))
    return password
