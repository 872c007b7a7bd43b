"""Fakes of the server parts the API reads, satisfying `sipbox.api.context` Protocols.

Why fakes and not the real registrar: the API's contract is the Protocol; these keep the API
tests independent of the SIP side and let a test set up "1001 has two phones registered" in one
line. The store is real (SQLite in tmp_path), because the API's behaviour on duplicates and
unknown rows comes from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sipbox.sip.address import Address
from sipbox.storage import Store, User


@dataclass(frozen=True)
class FakeBinding:
    """A `BindingView`."""

    number: str
    contact: str
    aor: str = ""
    source_transport: str = "udp"
    source_host: str = "192.0.2.10"
    source_port: int = 5060
    user_agent: str | None = "FakePhone/1.0"
    expires_at: float = field(default_factory=lambda: time.time() + 3600)


class FakeRegistrar:
    """A `RegistrarView` over a dict; reachable = has a binding or is listed as IP-reachable."""

    def __init__(self) -> None:
        self.by_number: dict[str, list[FakeBinding]] = {}
        self.ip_reachable: set[str] = set()
        self.removed: list[tuple[str, str | None]] = []

    def add(self, number: str, contact: str, **kw: object) -> FakeBinding:
        binding = FakeBinding(number, contact, aor=f"sip:{number}@pbx.test", **kw)  # type: ignore[arg-type]
        self.by_number.setdefault(number, []).append(binding)
        return binding

    def bindings(self) -> Iterable[FakeBinding]:
        return [b for items in self.by_number.values() for b in items]

    def bindings_for(self, number: str) -> Iterable[FakeBinding]:
        return list(self.by_number.get(number, ()))

    async def remove(self, number: str, contact_uri: str | None = None) -> int:
        self.removed.append((number, contact_uri))
        items = self.by_number.get(number, [])
        keep = [] if contact_uri is None else [b for b in items if b.contact != contact_uri]
        gone = len(items) - len(keep)
        if keep:
            self.by_number[number] = keep
        else:
            self.by_number.pop(number, None)
        return gone

    def reachable(self, number: str) -> bool:
        return bool(self.by_number.get(number)) or number in self.ip_reachable

    def count(self) -> int:
        return sum(len(v) for v in self.by_number.values())


class FakeDirectory:
    """A `DirectoryView` that reloads from the store, recording what it was told."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.users: dict[str, User] = {}
        self.refreshed: list[str] = []
        self.forgotten: list[str] = []

    async def refresh(self, number: str) -> None:
        self.refreshed.append(number)
        user = await self.store.get_user_by_number(number)
        if user is None:
            self.users.pop(number, None)
        else:
            self.users[number] = user

    async def refresh_many(self, numbers: Sequence[str]) -> None:
        """The optional bulk form: one store scan instead of one query per user."""
        self.refreshed.extend(numbers)
        wanted = set(numbers)
        for user in await self.store.list_users():
            if user.number in wanted:
                self.users[user.number] = user

    def forget(self, number: str) -> None:
        self.forgotten.append(number)
        self.users.pop(number, None)

    def all(self) -> Iterable[User]:
        return list(self.users.values())


@dataclass
class FakeTransport:
    listening: list[Address] = field(
        default_factory=lambda: [Address("udp", "127.0.0.1", 5060), Address("tcp", "::1", 5060)]
    )


@dataclass
class FakeCounters:
    received: int = 10
    sent: int = 12
    discarded: int = 1


@dataclass
class FakeEndpoint:
    counters: FakeCounters = field(default_factory=FakeCounters)


@dataclass
class FakeServer:
    """An `ApiContext`."""

    store: Store
    users: FakeDirectory | None
    registrar: FakeRegistrar | None
    domain: str = "pbx.test"
    started_at: float = field(default_factory=lambda: time.time() - 42)
    transport: FakeTransport | None = field(default_factory=FakeTransport)
    endpoint: FakeEndpoint | None = field(default_factory=FakeEndpoint)


class PlainDirectory(FakeDirectory):
    """A directory with only the required `refresh` (no `refresh_many`)."""

    refresh_many = None  # type: ignore[assignment]
