"""Who may use the API: bearer tokens, roles, and the one list of public paths.

Why a middleware rather than a FastAPI dependency: the check then runs for *every* path the
ASGI app serves — routers added later, mounted static files, unknown paths — before the request
body is read, so nothing is public by accident and an anonymous client cannot make the server
parse a large body. Only `PUBLIC_PATHS` and `PUBLIC_PREFIXES` (the health probe, the API
documentation, the login page and the static files of the pages, none of which reveal data) pass
without credentials; `is_public` is the single place that decides it.

The web admin (issue 7) authenticates with a session cookie instead of a token: the same
middleware accepts it, as an ``admin`` principal, and demands the session's CSRF token in the
``X-CSRF-Token`` header on every request that is not a read, so a page from another site cannot
make the browser change anything. An anonymous browser asking for a page is redirected to
``/login`` instead of receiving a JSON 401.

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
from typing import Any, Final, Literal
from urllib.parse import quote

from starlette.requests import cookie_parser
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sipbox.api.web.sessions import CSRF_HEADER, SESSION_COOKIE, Session, SessionStore
from sipbox.storage import ApiToken, Store, TokenRole

__all__ = [
    "ADMIN_TOKEN_FILE",
    "PUBLIC_PATHS",
    "PUBLIC_PREFIXES",
    "READ_METHODS",
    "AuthMiddleware",
    "Principal",
    "TokenCache",
    "ensure_admin_token",
    "hash_token",
    "is_page",
    "is_public",
    "new_token",
]

log = logging.getLogger("sipbox.api")

#: Paths served without credentials. Keep this the only such list (see module docstring).
PUBLIC_PATHS: Final[frozenset[str]] = frozenset(
    {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/login"}
)

#: Path prefixes served without credentials: the pages' script and style sheet.
PUBLIC_PREFIXES: Final[tuple[str, ...]] = ("/static/",)


def is_public(path: str, extra: frozenset[str] = frozenset()) -> bool:
    """Whether `path` is served without credentials (`extra`: e.g. ``/metrics`` when the
    configuration makes it public)."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or path in extra


def is_page(path: str) -> bool:
    """Whether `path` is a web admin page (an anonymous browser is sent to the login page)."""
    return path in ("/", "/ui") or path.startswith("/ui/")

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
    via: Literal["token", "session"] = "token"
    session: Session | None = None

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
    """ASGI middleware: every non-public HTTP request needs a bearer token or a web session.

    Missing or unknown token -> 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3); a
    read-only token on a writing method -> 403; a session without the right CSRF header on a
    writing method -> 403. `error_app` builds the JSON error answer, so this module does not
    depend on the error module's response format.
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenCache,
        error_app: _ErrorFactory,
        sessions: SessionStore | None = None,
        extra_public: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.error_app = error_app
        self.sessions = sessions
        self.extra_public = extra_public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"], self.extra_public):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            await self._session(scope, receive, send)
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

    async def _session(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No bearer token: accept a live web session (with CSRF on writes), else refuse."""
        session: Session | None = None
        cookie = _cookie(scope, SESSION_COOKIE)
        if cookie is not None and self.sessions is not None:
            session = self.sessions.lookup(cookie)
        if session is None:
            path: str = scope["path"]
            if scope["method"] in READ_METHODS and is_page(path):
                query = scope.get("query_string", b"").decode("latin-1")
                target = path + (f"?{query}" if query else "")
                location = "/login?next=" + quote(target, safe="/")
                await RedirectResponse(location, status_code=303)(scope, receive, send)
                return
            await self._refuse(
                401,
                "missing bearer token (Authorization: Bearer <token>) or web session",
                {"WWW-Authenticate": "Bearer"},
                scope,
                receive,
                send,
            )
            return
        if scope["method"] not in READ_METHODS and not session.csrf_matches(_header(scope)):
            await self._refuse(
                403,
                "missing or wrong CSRF token (send the page's token as X-CSRF-Token)",
                {},
                scope,
                receive,
                send,
            )
            return
        principal = Principal(0, session.username, "admin", via="session", session=session)
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


def _cookie(scope: Scope, name: str) -> str | None:
    """The value of cookie `name` in the request, or None."""
    for header, value in scope.get("headers", ()):
        if header == b"cookie":
            found = cookie_parser(bytes(value).decode("latin-1")).get(name)
            if found:
                return found
    return None


def _header(scope: Scope, name: str = CSRF_HEADER) -> str | None:
    """The first value of request header `name` (lowercase), or None."""
    wanted = name.encode("latin-1")
    for header, value in scope.get("headers", ()):
        if header == wanted:
            return bytes(value).decode("latin-1").strip()
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
