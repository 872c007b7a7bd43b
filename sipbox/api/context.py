"""What the API needs of the running server, as Protocols (the API never imports `sipbox.app`).

Why Protocols: the layer rule puts `app` above `api`, so the API cannot name the `Server` class;
and the registrar and user directory are written in parallel, so the API is built against the
shapes below and tests hand it fakes. `sipbox.app.Server` satisfies `ApiContext` structurally.

Everything is read at request time (``context.registrar`` etc. are looked up on each request),
so it does not matter whether the composition root wires a part before or after starting the
API, and a part that is ``None`` (no registrar yet) simply leaves its fields out of answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sipbox.pbx.user_admin import BindingRemover, DirectoryPort
from sipbox.storage import Store, User

__all__ = ["ApiContext", "BindingView", "DirectoryView", "RegistrarView"]


class BindingView(Protocol):
    """One live registration as the registrar shows it (read-only attributes)."""

    @property
    def aor(self) -> str:
        """The address-of-record (``sip:1001@domain``)."""
        ...

    @property
    def number(self) -> str:
        """The user number the binding belongs to."""
        ...

    @property
    def contact(self) -> str:
        """The Contact URI as registered."""
        ...

    @property
    def source_transport(self) -> str:
        """Transport the REGISTER came over (``udp``/``tcp``/``tls``)."""
        ...

    @property
    def source_host(self) -> str:
        """Source IP of the REGISTER (RFC 3581 ``received``)."""
        ...

    @property
    def source_port(self) -> int:
        """Source port of the REGISTER (RFC 3581 ``rport``)."""
        ...

    @property
    def user_agent(self) -> str | None:
        """The phone's User-Agent header, if it sent one."""
        ...

    @property
    def expires_at(self) -> float:
        """When the binding lapses (epoch seconds)."""
        ...


class RegistrarView(BindingRemover, Protocol):
    """The registrar's read side plus unregistering (`remove` from `BindingRemover`)."""

    def bindings(self) -> Iterable[BindingView]:
        """Every live binding."""
        ...

    def bindings_for(self, number: str) -> Iterable[BindingView]:
        """Live bindings of one user."""
        ...

    def reachable(self, number: str) -> bool:
        """True when calls to the user can be delivered (a binding, or IP auth + contact)."""
        ...

    def count(self) -> int:
        """Number of live bindings."""
        ...


class DirectoryView(DirectoryPort, Protocol):
    """The in-memory user directory: refresh/forget (from `DirectoryPort`) and iteration."""

    def all(self) -> Iterable[User]:
        """Every known user (used to count reachable users for `/status`)."""
        ...


class ApiContext(Protocol):
    """The running server as the API sees it; `sipbox.app.Server` has these attributes.

    `transport` (with ``listening``: addresses with transport/host/port) and `endpoint` (with
    ``counters``) are typed loosely because they belong to layers the API only reports on.
    """

    @property
    def store(self) -> Store: ...

    @property
    def users(self) -> DirectoryView | None: ...

    @property
    def registrar(self) -> RegistrarView | None: ...

    @property
    def domain(self) -> str: ...

    @property
    def started_at(self) -> float: ...

    @property
    def transport(self) -> object | None: ...

    @property
    def endpoint(self) -> object | None: ...
