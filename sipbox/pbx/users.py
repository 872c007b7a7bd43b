"""The user directory: every local user (extension) in memory, so the SIP path never waits
for the database (ARCHITECTURE.md, "Hot path").

The store is the truth; this is a cache of it with exactly one way in for changes: whoever
changes a user in the store (the REST API, the CLI through the API, later another node through
PostgreSQL LISTEN/NOTIFY) calls `refresh(number)` (or `forget(number)`), and the directory
re-reads that one row. Keeping every cache behind such a "this changed" call is what lets
several nodes share one database later.

Besides look-up by number, the directory indexes IP address authorization (issue 3): a user
with an ``ip_auth`` list is recognised by the source address of its requests. Single
addresses (``/32``, ``/128``) are a dict probe; wider networks are scanned (few in practice).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from sipbox.sip.digest import compute_ha1
from sipbox.storage import records
from sipbox.storage.interface import Store, User

log = logging.getLogger("sipbox.pbx.users")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Keys in `User.settings` holding the HA1 of the ``number@realm`` username form (Kamailio's
#: ``ha1b``): some phones authenticate as ``1001@example.com``, and the digest response is
#: computed over the username as sent, so the plain HA1 cannot verify it (RFC 7616 §3.4.2).
#: (Defined with `User`, which keeps them packed.)
HA1B_MD5 = records.HA1B_MD5
HA1B_SHA256 = records.HA1B_SHA256


def password_fields(number: str, realm: str, password: str) -> dict[str, Any]:
    """The stored form of a password for `number` in `realm` (clear text is never stored).

    Returns the `NewUser` / `update_user` fields ``ha1_md5``, ``ha1_sha256``, ``realm`` and a
    ``settings`` fragment with the ``number@realm`` variants (merge it into existing settings).
    """
    at = f"{number}@{realm}"
    return {
        "ha1_md5": compute_ha1(number, realm, password, "MD5"),
        "ha1_sha256": compute_ha1(number, realm, password, "SHA-256"),
        "realm": realm,
        "settings": {
            HA1B_MD5: compute_ha1(at, realm, password, "MD5"),
            HA1B_SHA256: compute_ha1(at, realm, password, "SHA-256"),
        },
    }


def parse_network(text: str) -> IPNetwork | None:
    """An ``ip_auth`` entry as a network (host bits allowed), or None when malformed."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _host_key(host: str) -> str | None:
    """Canonical text of an IP literal (``::FFFF:1.2.3.4`` and ``[::1]`` handled), or None."""
    host = host.strip("[]")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


class UserDirectory:
    """All users by number, plus the IP-authorization index. Reads are synchronous dict
    look-ups; only `load` and `refresh` touch the store."""

    __slots__ = ("_by_number", "_exact", "_networks", "_store")

    def __init__(self, store: Store | None = None) -> None:
        self._store = store
        self._by_number: dict[str, User] = {}
        self._exact: dict[str, list[str]] = {}  # canonical host -> numbers
        self._networks: list[tuple[IPNetwork, str]] = []  # wider networks -> number

    # -- loading ---------------------------------------------------------------------------
    async def load(self, store: Store | None = None) -> None:
        """Read every user from the store (start-up). Pages through so memory stays flat."""
        if store is not None:
            self._store = store
        if self._store is None:
            raise RuntimeError("UserDirectory.load needs a store")
        users: dict[str, User] = {}
        offset, page = 0, 5000
        while True:
            batch = await self._store.list_users(limit=page, offset=offset)
            for user in batch:
                users[user.number] = user  # compact already (`User`'s docstring)
            if len(batch) < page:
                break
            offset += page
        self._by_number = users
        self._reindex()
        log.info("loaded %d users", len(users))

    def replace_all(self, users: Iterable[User]) -> None:
        """Install users directly (tests, or a node that received a full snapshot)."""
        self._by_number = {u.number: u for u in users}
        self._reindex()

    async def refresh(self, number: str) -> None:
        """Re-read one user after it changed in the store; drops it when it is gone."""
        if self._store is None:
            raise RuntimeError("UserDirectory.refresh needs a store")
        user = await self._store.get_user_by_number(number)
        if user is None:
            self.forget(number)
        else:
            self.put(user)

    async def refresh_many(self, numbers: Iterable[str]) -> None:
        """`refresh` for many numbers (bulk provisioning): one read per number, one re-index."""
        if self._store is None:
            raise RuntimeError("UserDirectory.refresh_many needs a store")
        for number in numbers:
            user = await self._store.get_user_by_number(number)
            if user is None:
                self._by_number.pop(number, None)
            else:
                self._by_number[number] = user
        self._reindex()

    def put(self, user: User) -> None:
        """Install or replace one user record (what `refresh` does after reading it)."""
        old = self._by_number.get(user.number)
        self._by_number[user.number] = user
        if (old is not None and old.ip_auth) or user.ip_auth:
            self._reindex()

    def forget(self, number: str) -> None:
        """Drop a user from the cache (deleted, or renamed: refresh the new number too)."""
        old = self._by_number.pop(number, None)
        if old is not None and old.ip_auth:
            self._reindex()

    def _reindex(self) -> None:
        exact: dict[str, list[str]] = {}
        networks: list[tuple[IPNetwork, str]] = []
        for user in self._by_number.values():
            if not user.ip_auth or not user.enabled:
                continue
            for entry in user.ip_auth:
                net = parse_network(entry)
                if net is None:
                    log.warning("user %s: ignoring bad ip_auth entry %r", user.number, entry)
                    continue
                if net.num_addresses == 1:
                    exact.setdefault(str(net.network_address), []).append(user.number)
                else:
                    networks.append((net, user.number))
        self._exact = exact
        self._networks = networks

    # -- queries ---------------------------------------------------------------------------
    def get(self, number: str) -> User | None:
        """The user with this number (enabled or not), or None."""
        return self._by_number.get(number)

    def all(self) -> list[User]:
        """Every cached user, in no particular order."""
        return list(self._by_number.values())

    @property
    def count(self) -> int:
        return len(self._by_number)

    def __len__(self) -> int:
        return len(self._by_number)

    def __contains__(self, number: object) -> bool:
        return number in self._by_number

    def ip_authorized_users(self, host: str) -> list[User]:
        """Enabled users whose ``ip_auth`` list covers `host` (an IP literal), by number."""
        if not self._exact and not self._networks:
            return []
        key = _host_key(host)
        if key is None:
            return []
        numbers = list(self._exact.get(key, ()))
        if self._networks:
            addr = ipaddress.ip_address(key)
            for net, number in self._networks:
                if addr.version == net.version and addr in net and number not in numbers:
                    numbers.append(number)
        out = [self._by_number[n] for n in sorted(set(numbers)) if n in self._by_number]
        return out

    def is_ip_authorized(self, user: User, host: str) -> bool:
        """Whether `host` is in `user`'s ``ip_auth`` list."""
        if not user.ip_auth:
            return False
        return any(u.number == user.number for u in self.ip_authorized_users(host))

    def ip_users(self) -> list[User]:
        """Every enabled user with IP address authorization."""
        return [u for u in self._by_number.values() if u.ip_auth and u.enabled]
