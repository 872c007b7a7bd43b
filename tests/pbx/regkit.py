"""Test kit for auth/registrar/location: a fake SIP port, a fake clock, a real SQLite store and
a tiny UA that builds requests and answers digest challenges."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sipbox.config import RegistrarSettings
from sipbox.pbx.auth import Authenticator
from sipbox.pbx.dispatcher import Dispatcher, RequestContext
from sipbox.pbx.registrar import Registrar
from sipbox.pbx.users import UserDirectory, password_fields
from sipbox.sip.address import Address, Peer
from sipbox.sip.digest import NonceService, answer_challenge
from sipbox.sip.message import Request, Response
from sipbox.sip.parser import parse_message
from sipbox.storage import NewUser, open_store
from sipbox.storage.sql import SqlStore

REALM = "pbx.test"
SERVER = Address("udp", "192.0.2.10", 5060)
PHONE = Address("udp", "198.51.100.7", 5062)


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakePort:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.responses: list[Response] = []
        self.requests: list[tuple[Request, Address, int | None]] = []

    def now(self) -> float:
        return self.clock()

    def send_response(self, response: Response, transaction: object | None = None) -> None:
        self.responses.append(response)

    def send_request(
        self, request: Request, destination: Address, connection_id: int | None = None
    ) -> object:
        self.requests.append((request, destination, connection_id))
        return f"tx{len(self.requests)}"

    def send_ack_2xx(self, ack: Request, destination: Address, connection_id: int | None = None):
        raise AssertionError("not expected")

    def send_stateless(self, message: object, destination: Address, connection_id=None) -> None:
        raise AssertionError("not expected")

    def local_address(self, destination: Address) -> Address:
        return SERVER


class RecordingGuard:
    """Records what auth reports; blocks pairs on demand."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str | None, bool, bool]] = []
        self.unknown_targets: list[tuple[str, str]] = []
        self.blocked: set[tuple[str, str]] = set()
        self.scanner_uas = ("friendly-scanner",)

    def record_auth_failure(self, host, user, now, user_known, user_agent, has_live=False):
        self.failures.append((host, user, user_known, has_live))
        return None

    def record_unknown_target(self, host, user, now):
        self.unknown_targets.append((host, user))
        return None

    def is_user_blocked(self, host, user, now):
        return (host, user) in self.blocked

    def inspect_signature(self, host, user_agent, from_display, now):
        if user_agent and any(s in user_agent for s in self.scanner_uas):
            return ("banned", host)
        return None


_counter = itertools.count(1)


@dataclass
class Pbx:
    store: SqlStore
    clock: Clock
    port: FakePort
    directory: UserDirectory
    dispatcher: Dispatcher
    auth: Authenticator
    registrar: Registrar
    guard: RecordingGuard
    settings: RegistrarSettings = field(default_factory=RegistrarSettings)

    def send(self, request: Request, source: Address) -> Response:
        """Hand a request to the dispatcher from `source`; return the one response."""
        before = len(self.port.responses)
        self.dispatcher.handle_request(RequestContext(request, Peer(source, SERVER, None), "stx"))
        assert len(self.port.responses) == before + 1, "expected exactly one response"
        return self.port.responses[-1]


async def make_store(tmp_path: Path, clock: Clock | None = None) -> SqlStore:
    store = open_store(f"sqlite:///{tmp_path}/sipbox.db", clock=clock or Clock())
    await store.migrate()
    return store


async def add_user(store: SqlStore, number: str, password: str | None = "secret", **kw) -> None:
    fields: dict = {}
    if password is not None:
        fields = password_fields(number, REALM, password)
    fields.update(kw)
    await store.create_user(NewUser(number=number, **fields))


async def make_pbx(
    store: SqlStore,
    *,
    clock: Clock | None = None,
    settings: RegistrarSettings | None = None,
    guard: RecordingGuard | None = None,
    algorithms: tuple[str, ...] = ("MD5",),
) -> Pbx:
    clock = clock or Clock()
    port = FakePort(clock)
    directory = UserDirectory(store)
    await directory.load()
    dispatcher = Dispatcher(port=port)
    guard = guard if guard is not None else RecordingGuard()
    nonces = NonceService(b"k" * 32, secrets.token_bytes, lifetime=300)
    settings = settings or RegistrarSettings()
    auth = Authenticator(
        REALM, directory, dispatcher, nonces, algorithms=algorithms, guard=guard, clock=clock
    )
    registrar = Registrar(
        dispatcher=dispatcher,
        auth=auth,
        directory=directory,
        store=store,
        settings=settings,
        domain=REALM,
        clock=clock,
    )
    auth.live_registrations_from = registrar.live_registrations_from
    dispatcher.on_request("REGISTER", registrar.handle_register)
    return Pbx(store, clock, port, directory, dispatcher, auth, registrar, guard, settings)


def build(
    method: str,
    *,
    uri: str = f"sip:{REALM}",
    from_user: str = "1001",
    to_user: str | None = None,
    to_uri: str | None = None,
    contacts: list[str] | None = None,
    expires: int | None = None,
    call_id: str = "call-1",
    cseq: int = 1,
    extra: str = "",
    source: Address = PHONE,
) -> Request:
    to_uri = to_uri or f"sip:{to_user or from_user}@{REALM}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bK{next(_counter)};rport",
        f"From: <sip:{from_user}@{REALM}>;tag=f{next(_counter)}",
        f"To: <{to_uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
    ]
    for c in contacts or []:
        lines.append(f"Contact: {c}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    data = ("\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n").encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


class UA:
    """A registering phone: REGISTER, answer the 401, count CSeq per Call-ID."""

    def __init__(
        self,
        pbx: Pbx,
        number: str = "1001",
        password: str = "secret",
        source: Address = PHONE,
        call_id: str | None = None,
        username: str | None = None,
    ) -> None:
        self.pbx = pbx
        self.number = number
        self.password = password
        self.source = source
        self.call_id = call_id or f"cid-{number}-{next(_counter)}"
        self.cseq = 0
        self.username = username or number

    def request(self, method: str = "REGISTER", **kw) -> Request:
        self.cseq += 1
        kw.setdefault("from_user", self.number)
        kw.setdefault("contacts", [f"<sip:{self.number}@{self.source.hostport()}>"])
        return build(method, call_id=self.call_id, cseq=self.cseq, source=self.source, **kw)

    def register(self, proxy: bool = False, **kw) -> Response:
        first = self.pbx.send(self.request(**kw), self.source)
        if first.status not in (401, 407):
            return first
        return self.answer(first, **kw)

    def answer(self, challenge: Response, **kw) -> Response:
        name = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        auth_name = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
        req = self.request(**kw)
        value = answer_challenge(
            challenge.headers.get(name) or "",
            req.method,
            req.uri_text,
            self.username,
            self.password,
            "cn0123",
            1,
        )
        req.headers.add(auth_name, value)
        return self.pbx.send(req, self.source)
