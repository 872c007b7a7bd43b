"""The registration client of one external line: a machine with deadlines (RFC 3261 §10.2).

Theory of operation
===================

Pure like the SIP core: time is passed in, requests come out, responses go in; the service
(`service.py`) sends the requests through the port and feeds back what the endpoint reports.

States: ``disabled`` (not registering: line off or `register = false`), ``registering`` (a
REGISTER is in flight), ``registered`` (until `expires_at`; a refresh is due at `refresh_at`),
``failed`` (waiting for `retry_at`), ``unregistering`` (the un-REGISTER of a disable/shutdown).

* 401/407: answered once per nonce with the line's credentials (`DigestClient`; SHA-256 before
  MD5, qop=auth). A second challenge for a nonce we already answered, without ``stale=true``,
  means the credentials are wrong: a failure (no hammering).
* 200: the granted expiry is our Contact's ``expires`` (or Expires, or what we asked); the
  refresh is due at ``max(granted/2, granted - 60 s)``, so a failed refresh still has time to
  be retried before the carrier drops us. Service-Route (RFC 3608) becomes the preloaded
  Route of the line's calls; P-Associated-URI (RFC 3455) is kept for display.
* 423: retry at once with the Min-Expires the registrar asks for (§10.2.8).
* 503 (or a timeout or transport error): the next target when there is one (RFC 3263 §4.3);
  with Retry-After honoured before coming back to the same target.
* Any other failure (403, 404, repeated 401...): exponential backoff, `base` doubling up to
  `cap` (60 s to 30 min by default), never giving up: carriers ban sources that hammer them.

A target that accepted us is kept (sticky) until it fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sipbox.sip.address import Address
from sipbox.sip.digest import DigestClient, choose_challenge
from sipbox.sip.errors import RemoteProtocolError
from sipbox.sip.headers import Headers
from sipbox.sip.message import Request, Response

from .line import LineConfig

log = logging.getLogger("sipbox.pbx.lines")

__all__ = ["RegistrationState", "LineRegistration"]

#: Refresh this long before the granted expiry at most (and at half-time for short grants).
REFRESH_MARGIN = 60.0


@dataclass(slots=True)
class RegistrationState:
    """What `/lines` shows of a line's registration (monotonic times; the service converts)."""

    state: str = "disabled"
    expires_at: float | None = None
    refresh_at: float | None = None
    retry_at: float | None = None
    last_status: int | None = None
    last_reason: str | None = None
    last_attempt: float | None = None
    failures: int = 0
    target: str | None = None
    service_route: list[str] = field(default_factory=list)
    associated_uris: list[str] = field(default_factory=list)


class LineRegistration:
    """Keeps one line registered. Drive it with `poll(now)` at `next_deadline()`,
    `on_response`, `on_failure`; each may return a REGISTER to send (with its destination)."""

    def __init__(
        self,
        line: LineConfig,
        *,
        targets: Callable[[], list[Address]],
        local_address: Callable[[Address], Address],
        ids: Callable[[], str],
        random_bytes: Callable[[int], bytes],
        backoff_base: float = 60.0,
        backoff_cap: float = 1800.0,
        auth_with_domain: bool | None = None,
        use_proxy: bool = True,
    ) -> None:
        self.line = line
        self._targets = targets
        self._local_address = local_address
        self._ids = ids
        self._random_bytes = random_bytes
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.auth_with_domain = auth_with_domain
        self.use_proxy = use_proxy
        self.status = RegistrationState()
        self.call_id = f"{ids()}@sipbox"
        self.from_tag = ids()
        self.cseq = 0
        self.expires = line.expires
        self.target_index = 0
        self.pending: Request | None = None
        self.destination: Address | None = None
        self._answered: set[tuple[str, str]] = set()
        self._digest = DigestClient(
            line.auth_username(auth_with_domain), line.password, random_bytes
        )
        self._due: float | None = None
        self._unregistering = False
        self.history: list[tuple[float, int, str]] = []  # (time, status, reason): diagnostics

    # -- control ----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Register now (start-up, enable, edit, network change)."""
        self._unregistering = False
        self.status.state = "registering"
        self.status.retry_at = None
        self._due = now

    def register_now(self, now: float) -> tuple[Request, Address] | None:
        """An operator's "register now" (network change, carrier fixed): forget the backoff
        and send a REGISTER at once, unless one is already in flight."""
        if self.pending is not None:
            return None
        self.status.failures = 0
        self._answered.clear()
        was = self.status.state
        self.start(now)
        if was == "registered":
            self.status.state = "registered"  # a refresh: the binding stands until answered
        return self.poll(now)

    def unreachable(self, now: float) -> tuple[Request, Address] | None:
        """The OPTIONS keep-alive lost the current target. Not a reason to drop the binding
        on its own: re-REGISTER now (to the next target when there is one); a REGISTER that
        also times out then takes the usual failover/backoff path. A line already failed (in
        backoff) or with a REGISTER in flight is left to its own schedule."""
        if self.pending is not None or self.status.state != "registered":
            return None
        targets = self._targets()
        if len(targets) > 1:
            self.target_index = (self.target_index + 1) % len(targets)
        self._due = now
        return self.poll(now)

    def stop(self, now: float) -> tuple[Request, Address] | None:
        """Disable: un-REGISTER when registered (Expires: 0), then stay disabled."""
        was = self.status.state
        self._due = None
        self.status.state = "disabled"
        self.status.refresh_at = self.status.retry_at = None
        if was != "registered" or self.status.expires_at is None or self.status.expires_at <= now:
            self.status.expires_at = None
            return None
        self._unregistering = True
        self.status.state = "unregistering"
        return self._register(now, expires=0)

    def next_deadline(self) -> float | None:
        return self._due

    def poll(self, now: float) -> tuple[Request, Address] | None:
        """The REGISTER due at `now`, if any."""
        if self._due is None or now < self._due:
            return None
        self._due = None
        if self.status.state == "disabled":
            return None
        self.status.state = "registering" if self.status.state != "registered" else "registered"
        return self._register(now, expires=self.expires)

    # -- requests ---------------------------------------------------------------------------
    def current_target(self) -> Address | None:
        """Where the next REGISTER goes (the sticky target): what keep-alives probe."""
        return self._target()

    def _target(self) -> Address | None:
        targets = self._targets()
        if not targets:
            return None
        return targets[self.target_index % len(targets)]

    def _register(
        self, now: float, *, expires: int, authorization: tuple[str, str] | None = None
    ) -> tuple[Request, Address] | None:
        destination = self._target()
        if destination is None:
            self._failed(now, 0, "no address for the carrier (DNS)")
            return None
        line = self.line
        if line.new_call_id and authorization is None:
            self.call_id = f"{self._ids()}@sipbox"
            self.from_tag = self._ids()
        self.cseq += 1
        local = self._local_address(destination)
        user, host = line.account, line.domain
        uri = f"sip:{line.domain}"
        headers = Headers()
        if line.proxy and line.proxy_mode == "route" and self.use_proxy:
            spec = line.proxy_spec
            assert spec is not None
            headers.add("Route", spec.uri())
        aor = f"sip:{user}@{host}"
        from_display = f'"{line.display}" ' if line.display else ""
        headers.add("From", f"{from_display}<{aor}>;tag={self.from_tag}")
        headers.add("To", f"<{aor}>")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        transport = "" if local.transport == "udp" else f";transport={local.transport}"
        scheme = "sips" if local.transport == "tls" else "sip"
        headers.add("Contact", f"<{scheme}:{line.contact_user}@{local.hostport()}{transport}>")
        headers.add("Expires", str(expires))
        if authorization is not None:
            headers.add(*authorization)
        elif line.ims_empty_auth and self.cseq == 1:
            # 3GPP TS 24.229 §5.1.1.2: the first REGISTER names the private identity.
            username = line.auth_username(self.auth_with_domain)
            headers.add(
                "Authorization",
                f'Digest username="{username}", realm="{line.domain}", nonce="", '
                f'uri="{uri}", response=""',
            )
        request = Request("REGISTER", uri, headers)
        self.pending = request
        self.destination = destination
        self.status.last_attempt = now
        self.status.target = str(destination)
        return request, destination

    # -- answers ----------------------------------------------------------------------------
    def on_response(self, response: Response, now: float) -> tuple[Request, Address] | None:
        status = response.status
        if status < 200 or self.pending is None:
            return None
        request = self.pending
        expires = 0 if self._unregistering else self.expires
        if status in (401, 407):
            header = "www-authenticate" if status == 401 else "proxy-authenticate"
            challenge = choose_challenge(response.headers.get_all(header), self.line.realm)
            if challenge is None:
                self._fail_final(now, status, "no challenge we can answer")
                return None
            key = (challenge.realm, challenge.nonce)
            if key in self._answered and not challenge.stale:
                # Recorded as 403: the carrier refuses these credentials (not a new challenge).
                self._fail_final(now, 403 if status == 401 else status, "credentials refused")
                return None
            self._answered.add(key)
            if len(self._answered) > 8:
                self._answered = {key}
            try:
                value = self._digest.authorize(challenge, "REGISTER", request.uri_text)
            except RemoteProtocolError as exc:
                self._fail_final(now, status, str(exc))
                return None
            name = "Authorization" if status == 401 else "Proxy-Authorization"
            return self._register(now, expires=expires, authorization=(name, value))
        self.pending = None
        if self._unregistering:
            self._unregistering = False
            self.status.state = "disabled"
            self.status.expires_at = None
            self._record(now, status, response.reason)
            return None
        if 200 <= status < 300:
            self._registered(response, now)
            return None
        if status == 423:
            min_expires = response.headers.get("min-expires")
            try:
                minimum = int(min_expires or "")
            except ValueError:
                minimum = 0
            if minimum > self.expires:
                self.expires = minimum
                self._record(now, status, response.reason)
                return self._register(now, expires=self.expires)
            self._fail_final(now, status, response.reason)
            return None
        if status in (503, 500, 408, 480):
            return self._fail_over(now, status, response.reason, _retry_after(response))
        self._fail_final(now, status, response.reason)
        return None

    def on_failure(self, status: int, now: float) -> tuple[Request, Address] | None:
        """A timeout (408) or transport error (503) of the pending REGISTER."""
        if self.pending is None:
            return None
        self.pending = None
        if self._unregistering:
            self._unregistering = False
            self.status.state = "disabled"
            self.status.expires_at = None
            return None
        return self._fail_over(now, status, "timeout" if status == 408 else "transport error", None)

    # -- outcomes ---------------------------------------------------------------------------
    def _registered(self, response: Response, now: float) -> None:
        granted = self._granted(response)
        status = self.status
        status.state = "registered"
        status.failures = 0
        status.expires_at = now + granted
        refresh_in = max(granted / 2.0, granted - REFRESH_MARGIN)
        status.refresh_at = now + refresh_in
        status.retry_at = None
        status.service_route = response.headers.get_all("service-route")
        status.associated_uris = response.headers.get_all("p-associated-uri")
        self._record(now, response.status, response.reason)
        self._answered.clear()
        self._due = status.refresh_at
        log.info("line %s registered for %ds at %s", self.line.name, granted, status.target)

    def _granted(self, response: Response) -> int:
        mine = self.line.contact_user
        for contact in response.contacts:
            address = contact.address
            if address is None:
                continue
            user = getattr(address.uri, "user", None)
            if user == mine and contact.expires is not None:
                return max(1, contact.expires)
        header = response.headers.get("expires")
        if header and header.strip().isdigit() and int(header) > 0:
            return int(header)
        return self.expires

    def _fail_over(
        self, now: float, status: int, reason: str, retry_after: int | None
    ) -> tuple[Request, Address] | None:
        targets = self._targets()
        self._record(now, status, reason)
        if len(targets) > 1 and (self.target_index + 1) % len(targets) != 0:
            self.target_index += 1  # RFC 3263 §4.3: the next target at once
            return self._register(now, expires=self.expires)
        self.target_index = 0
        self._backoff(now, status, reason, retry_after)
        return None

    def _fail_final(self, now: float, status: int, reason: str) -> None:
        self.pending = None
        self._record(now, status, reason)
        self._backoff(now, status, reason, None)
        return None

    def _backoff(self, now: float, status: int, reason: str, retry_after: int | None) -> None:
        st = self.status
        st.failures += 1
        delay = min(self.backoff_base * 2 ** (st.failures - 1), self.backoff_cap)
        if retry_after is not None:
            delay = max(float(retry_after), min(delay, float(retry_after)))
        st.state = "failed"
        st.expires_at = None
        st.refresh_at = None
        st.retry_at = now + delay
        self._answered.clear()
        self._due = st.retry_at
        log.warning(
            "line %s: registration failed (%d %s), next try in %.0fs",
            self.line.name, status, reason, delay,
        )  # fmt: skip
        return None

    def _failed(self, now: float, status: int, reason: str) -> None:
        self._record(now, status, reason)
        self._backoff(now, status, reason, None)

    def _record(self, now: float, status: int, reason: str) -> None:
        self.status.last_status = status
        self.status.last_reason = reason
        self.history.append((now, status, reason))
        del self.history[:-20]


def _retry_after(response: Response) -> int | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    digits = value.split(";", 1)[0].split("(", 1)[0].strip()
    return int(digits) if digits.isdigit() else None
