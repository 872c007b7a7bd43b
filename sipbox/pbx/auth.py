"""Who is this request from? A digest-authenticated user, an IP-authorized user, or nobody.

Theory of operation
-------------------
`Authenticator.authenticate(ctx, proxy=...)` either returns the user a request comes from, or
answers the request itself (401/407 challenge, 403, 400) and says so (`AuthResult.answered`).
Registrar and calls share it: REGISTER is challenged with 401 + WWW-Authenticate (RFC 3261
§22.2 for a registrar/UAS), other requests with 407 + Proxy-Authenticate (§22.3, the PBX acts as
a proxy/B2BUA for them).

*Identity claimed.* The From user for ordinary requests; the To user for REGISTER (the AOR
being registered, §10.3 step 3 — third-party registration may have a different From, but the
authenticated user must own the To address).

*IP address authorization* (issue 3). A request is accepted without a challenge when its
source address is in the ``ip_auth`` list of the user it claims, or when it claims no known
user and exactly one IP-authorized user matches the address (a trunk-like device that puts
anything in From). A request claiming an IP-authorized user from another address gets the
normal digest challenge when that user has a password, and 403 otherwise (a guard failure).

*Digest* (RFC 7616/8760 via `sipbox.sip.digest`). Nonces are stateless HMACs with the secret
in ``state_dir/nonce-secret`` so they survive restarts. The username may be ``user`` or
``user@realm`` (the latter verified against the ``ha1b`` hashes, see `users.password_fields`).

*No enumeration* (issue 6). The challenge is built before looking the user up, so known and
unknown users get byte-for-byte the same headers. A response for an unknown (or disabled, or
password-less) user is verified against a dummy HA1 through the very same code path, so the
hash work and the 403 are the same as for a wrong password.

*Guard.* Final failures (wrong password, unknown user after a challenge, forged nonce, IP user
claimed from the wrong address) are reported with `record_auth_failure`; the first challenge and
stale nonces are not failures (issue 6). Challenges for REGISTER to unknown users are reported
with `record_unknown_target` (svwar's enumeration pattern). A blocked (address, user) pair gets
403 without its password being checked. The guard is optional: `None` skips all of this.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from sipbox.sip.address import Address
from sipbox.sip.digest import (
    DigestAuthenticator,
    DigestCredentials,
    NonceService,
    VerifyOutcome,
    parse_credentials,
)
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.message import Request
from sipbox.sip.uri import SipUri
from sipbox.storage.interface import User

from .dispatcher import Dispatcher, RequestContext
from .guard import Banned
from .users import HA1B_MD5, HA1B_SHA256, UserDirectory

log = logging.getLogger("sipbox.pbx.auth")

NONCE_SECRET_FILE = "nonce-secret"


class AuthGuard(Protocol):
    """The part of `sipbox.pbx.guard.Guard` that authentication reports to."""

    def record_auth_failure(
        self,
        host: str,
        user: str | None,
        now: float,
        user_known: bool,
        user_agent: str | None,
        has_live_registrations_from_host: bool = False,
    ) -> object | None: ...

    def record_unknown_target(self, host: str, user: str, now: float) -> object | None: ...

    def is_user_blocked(self, host: str, user: str, now: float) -> bool: ...

    def inspect_signature(
        self, host: str, user_agent: str | None, from_display: str | None, now: float
    ) -> object | None: ...


AuthMethod = Literal["digest", "ip", "line", "trunk"]


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of `Authenticator.authenticate`.

    `user` is set when the request is authorized (`method` says how). Otherwise `answered` is
    True when a response (401/407/403/400) was already sent — the caller must stop — or False
    when nobody could be identified and `challenge=False` was asked for (anonymous request the
    caller may still accept, e.g. a call from outside to a local user).
    """

    user: User | None
    method: AuthMethod | None = None
    answered: bool = False
    # Set for a call in from an external line or trunk (issue 5): its name, and the local
    # number the inbound routes give for the DID (the Request-URI holds the line's Contact).
    peer: str | None = None
    dialed: str | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None


def load_nonce_secret(state_dir: Path) -> bytes:
    """The digest nonce secret: created once (32 random bytes, mode 0600), then reused, so
    nonces issued before a restart still verify after it."""
    path = state_dir / NONCE_SECRET_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
    return data


def _identity(request: Request, register: bool) -> tuple[str | None, str | None]:
    """(claimed user, display name) — To user for REGISTER, From user otherwise."""
    try:
        address = request.to if register else request.from_
    except RemoteProtocolError:
        return None, None
    uri = address.uri
    if not isinstance(uri, SipUri):
        return None, address.display
    return uri.user_decoded(), address.display


class Authenticator:
    """Digest + IP authorization for one realm (the SIP domain)."""

    __slots__ = (
        "_dummy_secret",
        "clock",
        "digest",
        "directory",
        "dispatcher",
        "guard",
        "guard_clock",
        "ip_sources",
        "live_registrations_from",
        "on_guard_event",
        "peers",
        "realm",
        "stats",
    )

    def __init__(
        self,
        realm: str,
        directory: UserDirectory,
        dispatcher: Dispatcher,
        nonces: NonceService,
        *,
        algorithms: tuple[str, ...] = ("MD5",),
        qop: tuple[str, ...] = ("auth",),
        guard: AuthGuard | None = None,
        on_guard_event: Callable[[object], None] | None = None,
        clock: Callable[[], float] = time.time,
        guard_clock: Callable[[], float] | None = None,
        live_registrations_from: Callable[[str], int] | None = None,
    ) -> None:
        self.realm = realm
        self.directory = directory
        self.dispatcher = dispatcher
        self.digest = DigestAuthenticator(realm, nonces, algorithms, qop)
        self.guard = guard
        self.on_guard_event = on_guard_event
        # Nonces carry wall-clock time (they survive restarts), and so do bans: the guard's
        # bans are stored, restored after a restart and logged with dates, so the guard runs
        # on the same wall clock as the transport's source check (`pbx/security.py`).
        self.clock = clock
        self.guard_clock = guard_clock or clock
        self.live_registrations_from = live_registrations_from or (lambda host: 0)
        self._dummy_secret = secrets.token_bytes(16)
        # Where each IP-authorized user last sent from: a call target when it has no static
        # contact (issue 3, "or to the last source address it used").
        self.ip_sources: dict[str, Address] = {}
        self.stats: dict[str, int] = {}
        # External lines and trunks (issue 5, `pbx/lines/service.py`): a trusted peer by
        # source address (+ the line's Contact user); checked first, see docs/lines.md.
        self.peers: Callable[[RequestContext], AuthResult | None] | None = None

    # -- entry point ------------------------------------------------------------------------
    def authenticate(
        self, ctx: RequestContext, *, proxy: bool, challenge: bool = True
    ) -> AuthResult:
        """Identify the sender of `ctx.request`; answer it when it cannot be authorized.

        `proxy` selects 407/Proxy-Authenticate/Proxy-Authorization (every request but
        REGISTER); False gives 401/WWW-Authenticate/Authorization. With `challenge=False` a
        request without credentials and without IP authorization is not answered (the result
        has no user and `answered` False), so a caller can let anonymous requests through.
        """
        request = ctx.request
        register = request.method == "REGISTER"
        if self.peers is not None and not register:
            peer = self.peers(ctx)
            if peer is not None:
                self._count("peer")
                return peer
        claimed, display = _identity(request, register)
        host = _remote_host(ctx)
        user_agent = request.headers.get("user-agent")

        guard = self.guard
        # The dispatcher's screen (pbx/security.py) inspects the User-Agent and From display
        # name with the same guard; only a display name it did not see is inspected again.
        seen = getattr(ctx, "signature", None)
        if (
            guard is not None
            and host is not None
            and not (seen is not None and seen[0] is guard and display in (None, seen[1]))
        ):
            event = guard.inspect_signature(host, user_agent, display, self.guard_clock())
            if event is not None:
                self._guard_event(event)
                # A scanner: now banned, so no answer at all (issue 6: no feedback).
                self._count("scanner")
                return AuthResult(None, answered=True)

        # 1. IP address authorization: no challenge, no password.
        claimed_user = self.directory.get(claimed) if claimed else None
        if host is not None:
            ip_users = self.directory.ip_authorized_users(host)
            if ip_users:
                if claimed_user is not None and claimed_user in ip_users:
                    return self._ip_ok(claimed_user, ctx)
                if claimed_user is None and len(ip_users) == 1 and not register:
                    return self._ip_ok(ip_users[0], ctx)

        # 2. Digest credentials for our realm, when sent.
        header = "proxy-authorization" if proxy else "authorization"
        values = request.headers.get_all(header)
        if values:
            credentials: DigestCredentials | None = None
            try:
                for value in values:
                    parsed = parse_credentials(value)
                    if parsed.realm == self.realm:
                        credentials = parsed
                        break
            except RemoteProtocolError:
                self.dispatcher.reply(ctx, 400, "Malformed Authorization")
                return AuthResult(None, answered=True)
            if credentials is not None:
                return self._verify(ctx, credentials, claimed, host, user_agent, proxy)

        # 3. No usable credentials.
        if (
            claimed_user is not None
            and claimed_user.ip_auth
            and not (claimed_user.ha1_md5 or claimed_user.ha1_sha256)
        ):
            # An IP-only user claimed from elsewhere: nothing to challenge for.
            if not self._fail(host, claimed, True, user_agent):
                self.dispatcher.reply(ctx, 403)
            return AuthResult(None, answered=True)
        if not challenge:
            return AuthResult(None)
        if register and claimed and claimed_user is None and guard is not None and host:
            event = guard.record_unknown_target(host, claimed, self.guard_clock())
            if event is not None:
                self._guard_event(event)
                if isinstance(event, Banned):
                    return AuthResult(None, answered=True)  # banned now: no answer at all
        self.send_challenge(ctx, proxy=proxy)
        return AuthResult(None, answered=True)

    def _ip_ok(self, user: User, ctx: RequestContext) -> AuthResult:
        remote = getattr(ctx.peer, "remote", None)
        if isinstance(remote, Address):
            self.ip_sources[user.number] = remote
        self._count("ip")
        return AuthResult(user, "ip")

    def send_challenge(self, ctx: RequestContext, *, proxy: bool, stale: bool = False) -> None:
        """401 + WWW-Authenticate (or 407 + Proxy-Authenticate), one per offered algorithm,
        all sharing one nonce (RFC 8760 §2.4)."""
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        headers = [(name, value) for value in self.digest.challenges(self.clock(), stale)]
        self._count("challenge_stale" if stale else "challenge")
        self.dispatcher.reply(ctx, 407 if proxy else 401, headers=headers)

    # -- digest -----------------------------------------------------------------------------
    def _verify(
        self,
        ctx: RequestContext,
        credentials: DigestCredentials,
        claimed: str | None,
        host: str | None,
        user_agent: str | None,
        proxy: bool,
    ) -> AuthResult:
        request = ctx.request
        at_form = credentials.user_part(self.realm)
        number = at_form
        user = self.directory.get(number)
        usable = (
            user is not None
            and user.enabled
            and (user.realm is None or user.realm == self.realm)
            and bool(user.ha1_md5 or user.ha1_sha256)
        )
        if (
            self.guard is not None
            and host is not None
            and usable
            and self.guard.is_user_blocked(host, number, self.guard_clock())
        ):
            self._count("user_blocked")
            self.dispatcher.reply(ctx, 403)
            return AuthResult(None, answered=True)
        hashes = self._hashes(user, credentials.username != number) if usable else None
        if hashes is None:
            hashes = self._dummy_hashes(credentials.username)
        result = self.digest.verify(credentials, request.method, hashes, self.clock(), request.body)
        if result.outcome is VerifyOutcome.OK and usable and user is not None:
            if claimed != user.number:
                # Authenticated, but as someone else than the address it claims (§22: the PBX
                # policy; 1001 may not register or call as 1002).
                self._count("identity_mismatch")
                self.dispatcher.reply(ctx, 403, "Identity Mismatch")
                return AuthResult(None, answered=True)
            self._count("digest_ok")
            return AuthResult(user, "digest")
        if result.outcome is VerifyOutcome.STALE and usable:
            self.send_challenge(ctx, proxy=proxy, stale=True)
            return AuthResult(None, answered=True)
        log.debug("auth failed for %r from %s: %s", credentials.username, host, result.reason)
        if not self._fail(host, number, usable, user_agent):
            self.dispatcher.reply(ctx, 403)
        return AuthResult(None, answered=True)

    def _hashes(self, user: User | None, at_form: bool) -> dict[str, str] | None:
        if user is None:
            return None
        out: dict[str, str] = {}
        if at_form:
            md5 = user.settings.get(HA1B_MD5) if user.settings else None
            sha = user.settings.get(HA1B_SHA256) if user.settings else None
        else:
            md5, sha = user.ha1_md5, user.ha1_sha256
        if md5:
            out["MD5"] = str(md5)
        if sha:
            out["SHA-256"] = str(sha)
        return out or None

    def _dummy_hashes(self, username: str) -> dict[str, str]:
        """A per-process random HA1 for users we cannot verify: the same hash work as for a
        real user, and no password can ever match it."""
        seed = self._dummy_secret + username.encode("utf-8", "surrogateescape")
        md5 = hashlib.md5(seed, usedforsecurity=False).hexdigest()
        return {"MD5": md5, "SHA-256": hashlib.sha256(seed).hexdigest()}

    # -- guard ------------------------------------------------------------------------------
    def _fail(
        self, host: str | None, user: str | None, known: bool, user_agent: str | None
    ) -> bool:
        """Report a final failure; True when it banned the source (then nothing is answered:
        a banned source never gets a response, issue 6)."""
        self._count("failed")
        guard = self.guard
        if guard is None or host is None:
            return False
        event = guard.record_auth_failure(
            host,
            user,
            self.guard_clock(),
            known,
            user_agent,
            self.live_registrations_from(host) > 0,
        )
        if event is not None:
            self._guard_event(event)
        return isinstance(event, Banned)

    def _guard_event(self, event: object) -> None:
        if self.on_guard_event is not None:
            try:
                self.on_guard_event(event)
            except Exception:
                log.exception("guard event handler failed")

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1


def _remote_host(ctx: RequestContext) -> str | None:
    remote = getattr(ctx.peer, "remote", None)
    return getattr(remote, "host", None)
