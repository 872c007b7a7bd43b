"""The `Store` protocol: everything the rest of sipbox may ask of the database.

The PBX and the API depend on this protocol, never on SQLAlchemy, so a test can hand them a fake
and `app.py` alone chooses the concrete class (see ARCHITECTURE.md, layers). Conventions:

- Configuration writes that target a missing row raise `NotFound`; duplicates raise
  `AlreadyExists`. Live-state deletes (bindings, bans, settings) are idempotent and return
  whether a row went away, because background writers must not fail on a race.
- Timestamps are floats (epoch seconds). Where expiry matters, `now` is passed in (as in the SIP
  core) so tests control time; creation stamps come from the store's injected clock.
- Every method is a coroutine and every write is its own transaction, except the batch methods,
  which are all-or-nothing, and writes inside ``async with store.transaction()``, which commit
  together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from sipbox.storage.errors import AlreadyExists, InvalidValue, NotFound, Refused, StoreError
from sipbox.storage.records import (
    AddressListEntry,
    AddressListKind,
    ApiToken,
    Ban,
    Binding,
    BindingKey,
    Cdr,
    CdrFilter,
    ClassOfService,
    Group,
    GroupMember,
    NatMode,
    NewUser,
    SecurityEvent,
    TokenRole,
    User,
    WebAdmin,
)

__all__ = [
    "AddressListEntry",
    "AddressListKind",
    "AlreadyExists",
    "ApiToken",
    "Ban",
    "Binding",
    "BindingKey",
    "Cdr",
    "CdrFilter",
    "ClassOfService",
    "Group",
    "GroupMember",
    "InvalidValue",
    "NatMode",
    "NewUser",
    "NotFound",
    "Refused",
    "SecurityEvent",
    "Store",
    "StoreError",
    "TokenRole",
    "User",
    "WebAdmin",
]


@runtime_checkable
class Store(Protocol):
    """Persistent configuration and restart state for one sipbox deployment."""

    # ---------------------------------------------------------------------------- lifecycle

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to call on every start-up."""
        ...

    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """``async with store.transaction():`` - every write this task makes in the block is
        committed together, or none is (an exception rolls all back). Reads in the block see
        its writes. For all-or-nothing operations across several kinds of objects (the YAML
        import); not nestable."""
        ...

    # -------------------------------------------------------------------------------- users

    async def create_user(self, user: NewUser) -> User:
        """Store a new user; `AlreadyExists` if the number is taken."""
        ...

    async def create_users(self, users: Sequence[NewUser]) -> list[User]:
        """Store many users in one transaction (all or nothing); results in input order."""
        ...

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        ...

    async def get_user_by_number(self, number: str) -> User | None:
        """The user with this number (or SIP user token), or None."""
        ...

    async def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        """Users ordered by number, paginated."""
        ...

    async def count_users(self) -> int:
        """How many users are stored."""
        ...

    async def update_user(self, user_id: int, changes: Mapping[str, Any]) -> User:
        """Change the named fields only; `NotFound`, `AlreadyExists` (number), `InvalidValue`."""
        ...

    async def delete_user(self, user_id: int) -> None:
        """Delete a user and its stored bindings; `NotFound` if absent."""
        ...

    # ----------------------------------------------------------------------------- bindings

    async def upsert_binding(self, binding: Binding) -> None:
        """Insert or replace the binding with the same (aor, contact_uri)."""
        ...

    async def delete_binding(self, aor: str, contact_uri: str) -> bool:
        """Remove one binding; True if it existed."""
        ...

    async def delete_bindings_for_aor(self, aor: str) -> int:
        """Remove every binding of an AOR (REGISTER with ``Contact: *``); how many went."""
        ...

    async def load_bindings(self, now: float) -> list[Binding]:
        """Every binding with ``expires_at > now`` (restart recovery)."""
        ...

    async def purge_expired_bindings(self, now: float) -> int:
        """Delete bindings with ``expires_at <= now``; how many went."""
        ...

    async def apply_binding_changes(
        self, upserts: Iterable[Binding], deletes: Iterable[BindingKey | tuple[str, str]]
    ) -> None:
        """Write a batch of registrar changes in one transaction (deletes first, then upserts)."""
        ...

    # ------------------------------------------------------------------------------- tokens

    async def create_api_token(self, name: str, token_hash: str, role: TokenRole) -> ApiToken:
        """Store a token by its SHA-256 hex digest; `AlreadyExists` if the digest is known."""
        ...

    async def find_api_token(self, token_hash: str) -> ApiToken | None:
        """The *unrevoked* token with this digest, or None."""
        ...

    async def touch_api_token(self, token_id: int, now: float) -> None:
        """Record a use of the token (``last_used_at``); silently ignores unknown ids."""
        ...

    async def list_api_tokens(self) -> list[ApiToken]:
        """All tokens, revoked included, by id."""
        ...

    async def revoke_api_token(self, token_id: int) -> None:
        """Mark a token revoked; `NotFound` if absent."""
        ...

    # --------------------------------------------------------------------------- web admins

    async def create_web_admin(self, username: str, password_hash: str) -> WebAdmin:
        """Store a web admin account (argon2 PHC hash); `AlreadyExists`, `InvalidValue`."""
        ...

    async def get_web_admin(self, username: str) -> WebAdmin | None:
        """The account with this name, or None."""
        ...

    async def list_web_admins(self) -> list[WebAdmin]:
        """Every account, by name."""
        ...

    async def set_web_admin_password(self, username: str, password_hash: str) -> None:
        """Replace the password hash; `NotFound` if absent."""
        ...

    async def delete_web_admin(self, username: str, *, keep_last: bool = False) -> None:
        """Remove an account (`NotFound`); with `keep_last`, `Refused` for the only one left,
        checked atomically with the delete."""
        ...

    # --------------------------------------------------------------------------------- bans

    async def upsert_ban(self, ban: Ban) -> None:
        """Insert or replace the ban for ``ban.source``."""
        ...

    async def get_ban(self, source: str) -> Ban | None:
        """The ban for this source (expired or not), or None."""
        ...

    async def delete_ban(self, source: str) -> bool:
        """Lift a ban; True if it existed."""
        ...

    async def list_active_bans(self, now: float) -> list[Ban]:
        """Bans that are permanent or end after `now`, oldest first."""
        ...

    async def purge_expired_bans(self, now: float) -> int:
        """Delete bans that ended at or before `now`; how many went."""
        ...

    # ----------------------------------------------------------------------- address lists

    async def add_address(
        self, kind: AddressListKind, network: str, note: str = ""
    ) -> AddressListEntry:
        """Add a whitelist/blacklist entry (stored canonical); `AlreadyExists` on duplicates."""
        ...

    async def remove_address(self, kind: AddressListKind, network: str) -> None:
        """Remove an entry; `NotFound` if absent."""
        ...

    async def list_addresses(self, kind: AddressListKind | None = None) -> list[AddressListEntry]:
        """Entries of one kind (or all), ordered by kind then network."""
        ...

    # --------------------------------------------------------------------- security events

    async def append_security_event(
        self,
        at: float,
        kind: str,
        source: str,
        reason: str,
        detail: Mapping[str, Any] | None = None,
    ) -> SecurityEvent:
        """Append an audit event."""
        ...

    async def list_security_events(
        self, *, limit: int = 100, since: float | None = None
    ) -> list[SecurityEvent]:
        """The most recent events (``at >= since`` if given), newest first."""
        ...

    async def purge_security_events(self, before: float) -> int:
        """Delete events older than `before` (retention); how many went."""
        ...

    # ----------------------------------------------------------------------------- settings

    async def get_setting(self, key: str) -> str | None:
        """The stored value for `key`, or None."""
        ...

    async def set_setting(self, key: str, value: str) -> None:
        """Insert or replace a value."""
        ...

    async def delete_setting(self, key: str) -> bool:
        """Remove a key; True if it existed."""
        ...

    # ------------------------------------------------------------------------- call records

    async def create_cdr(self, record: Cdr) -> None:
        """Insert the open record of a call being set up; `AlreadyExists` on a duplicate id."""
        ...

    async def complete_cdr(self, record: Cdr) -> None:
        """Write the completed record over the open one (inserting it if absent)."""
        ...

    async def save_cdrs(self, records: Sequence[Cdr]) -> None:
        """Insert or replace many records in one transaction (background writer batches)."""
        ...

    async def get_cdr(self, cdr_id: str) -> Cdr | None:
        """One record, or None."""
        ...

    async def list_cdrs(
        self, filters: CdrFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Cdr]:
        """Records newest first, filtered (time range, number, disposition), paginated."""
        ...

    async def count_cdrs(self, filters: CdrFilter | None = None) -> int:
        """How many records match `filters`."""
        ...

    async def close_interrupted_cdrs(self, now: float) -> int:
        """Close records still open (a crash mid-call) as ``interrupted``; how many."""
        ...

    # ------------------------------------------------------------------------------- groups

    async def create_group(
        self,
        number: str,
        *,
        name: str = "",
        strategy: str = "ring-all",
        ring_timeout: int | None = None,
        no_answer_destination: str | None = None,
        completed_elsewhere: bool = True,
        members: Sequence[GroupMember] = (),
        settings_: Mapping[str, Any] | None = None,
    ) -> Group:
        """Store a group with its ordered members; `AlreadyExists`, `InvalidValue`."""
        ...

    async def get_group_by_number(self, number: str) -> Group | None:
        """The group with this number, or None."""
        ...

    async def list_groups(self) -> list[Group]:
        """Every group with its members, by number."""
        ...

    async def update_group(
        self,
        number: str,
        changes: Mapping[str, Any],
        members: Sequence[GroupMember] | None = None,
    ) -> Group:
        """Change the given group fields (``number``, ``name``, ``strategy``, ``ring_timeout``,
        ``no_answer_destination``, ``completed_elsewhere``, ``settings``) and, when `members`
        is not None, replace the member list; `NotFound`, `AlreadyExists`, `InvalidValue`."""
        ...

    async def delete_group(self, number: str) -> None:
        """Delete a group and its members; `NotFound` if absent."""
        ...
