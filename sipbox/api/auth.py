"""Who may use the API: bearer tokens, roles, and the one list of public paths.

Why a middleware rather than a FastAPI dependency: the check then runs for *every* path the
ASGI app serves — routers added later, mounted static files, unknown paths — before the request
body is read, so nothing is public by accident and an anonymous client cannot make the server
parse a large body. Only `PUBLIC_PATHS` (the health probe and the API documentation, which
reveal no data) pass without credentials; that set is the single place to change (issue 7 adds
the web login page here and a session check next to the bearer check).

Tokens are random strings shown once; the store keeps only their SHA-256 (`hash_token`), so a
copied database does not give API access. Valid tokens are cached in memory for a few seconds
(`TokenCache`) so an API call costs no database round trip; revocation therefore takes effect
within `ttl` seconds, or at once through `TokenCache.invalidate`.

Roles: ``admin`` may do anything, ``read-only`` may only read (GET/HEAD) -> otherwise 403.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send

from sipbox.storage import ApiToken, Store, TokenRole

__all__ = [
    "ADMIN_TOKEN_FILE",
    "PUBLIC_PATHS",
    "READ_METHODS",
    "AuthMiddleware",
    "Principal",
    "TokenCache",
    "ensure_admin_token",
    "hash_token",
    "new_token",
]

log = logging.getLogger("sipbox.api")

#: Paths served without credentials. Keep this the only such list (see module docstring).
PUBLIC_PATHS: Final[frozenset[str]] = frozenset(
    {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
)

#: Methods a read-only token may use.
READ_METHODS: Final[frozenset[str]] = frozenset({"GET", "HEAD"})

ADMIN_TOKEN_FILE: Final = "admin-token"
"""File under ``server.state_dir`` holding the first admin token (read by the CLI)."""

_TOKEN_PREFIX: Final = "sbx_"


def hash_token(token: str) -> str:
    """The SHA-256 hex digest the store keys tokens by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token: 256 bits, URL-safe, prefixed so it is recognisable in a leak scan."""
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, available to routes as ``request.state.principal``."""

    token_id: int
    name: str
    role: TokenRole

    @property
    def may_write(self) -> bool:
        """Whether this caller may change anything."""
        return self.role == "admin"


class TokenCache:
    """Valid tokens by digest for `ttl` seconds, so an API call needs no database read.

    Only valid tokens are cached (an attacker's random tokens would otherwise fill it); the
    table is bounded by `max_entries`. ``last_used_at`` is written on each cache fill, i.e. at
    most once per `ttl` per token, not on every call.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = 5.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._valid: dict[str, tuple[Principal, float]] = {}

    async def lookup(self, token: str) -> Principal | None:
        """The principal for `token`, or None when it is unknown or revoked."""
        digest = hash_token(token)
        now = self._clock()
        cached = self._valid.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        record: ApiToken | None = await self._store.find_api_token(digest)
        if record is None:
            self._valid.pop(digest, None)
            return None
        principal = Principal(record.id, record.name, record.role)
        if len(self._valid) >= self._max:
            self._valid = {k: v for k, v in self._valid.items() if v[1] > now}
            if len(self._valid) >= self._max:
                self._valid.clear()
        self._valid[digest] = (principal, now + self._ttl)
        try:
            await self._store.touch_api_token(record.id, self._wall_clock())
        except Exception:  # bookkeeping only: never fail a request over it
            log.warning("could not record the use of API token %d", record.id, exc_info=True)
        return principal

    def invalidate(self) -> None:
        """Forget every cached token (call after revoking one, so it stops working at once)."""
        self._valid.clear()


_AsgiResponder = Callable[[Scope, Receive, Send], Awaitable[None]]
_ErrorFactory = Callable[[int, str, dict[str, str]], _AsgiResponder]


class AuthMiddleware:
    """ASGI middleware: every non-public HTTP request needs a valid bearer token.

    Missing or unknown token -> 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3); a
    read-only token on a writing method -> 403. `error_app` builds the JSON error answer, so
    this module does not depend on the error module's response format.
    """

    def __init__(self, app: ASGIApp, tokens: TokenCache, error_app: _ErrorFactory) -> None:
        self.app = app
        self.tokens = tokens
        self.error_app = error_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            await self._refuse(
                401,
                "missing bearer token (Authorization: Bearer <token>)",
                {"WWW-Authenticate": "Bearer"},
                scope,
                receive,
                send,
            )
            return
        principal = await self.tokens.lookup(token)
        if principal is None:
            await self._refuse(
                401,
                "invalid or revoked API token",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                scope,
                receive,
                send,
            )
            return
        if scope["method"] not in READ_METHODS and not principal.may_write:
            await self._refuse(
                403, f"token {principal.name!r} is read-only", {}, scope, receive, send
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _refuse(
        self,
        status: int,
        message: str,
        headers: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        await self.error_app(status, message, headers)(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive), or None."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            header: str = bytes(value).decode("latin-1")
            scheme, _, credentials = header.strip().partition(" ")
            credentials = credentials.strip()
            if scheme.lower() == "bearer" and credentials:
                return credentials
            return None
    return None


# -------------------------------------------------------------------------------- first start


async def ensure_admin_token(store: Store, state_dir: Path | str) -> str | None:
    """Create the first admin token when the store has no usable one; return it, else None.

    "Usable" means an unrevoked admin token: if every admin token was revoked, the next start
    creates a new one, so the operator can never lock themselves out of their own server. Only
    the SHA-256 is stored; the token is written to ``<state_dir>/admin-token`` with mode 0600
    (for the CLI on the same machine) and returned so the caller prints it once.
    """
    tokens = await store.list_api_tokens()
    if any(t.role == "admin" and not t.revoked for t in tokens):
        return None
    token = new_token()
    await store.create_api_token("admin (created at first start)", hash_token(token), "admin")
    _write_private(Path(state_dir) / ADMIN_TOKEN_FILE, token + "\n")
    return token


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only, atomically (no window at 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by umask; be explicit
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def principal_of(state: Any) -> Principal | None:
    """The caller of a request (``request.state``), or None on public paths."""
    return getattr(state, "principal", None)
