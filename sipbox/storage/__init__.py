"""Storage: the `Store` interface and its SQL implementation (SQLite default, PostgreSQL).

Importing this package is cheap and backend-free: the PBX and the API import the interface and
records from here; only the composition root calls `open_store`, which imports SQLAlchemy on
first use.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sipbox.storage.interface import (
    AddressListEntry,
    AddressListKind,
    AlreadyExists,
    ApiToken,
    Ban,
    Binding,
    BindingKey,
    Cdr,
    CdrFilter,
    ClassOfService,
    Group,
    GroupMember,
    InvalidValue,
    NatMode,
    NewUser,
    NotFound,
    Refused,
    SecurityEvent,
    Store,
    StoreError,
    TokenRole,
    User,
    WebAdmin,
)

if TYPE_CHECKING:
    from sipbox.storage.sql import Clock, SqlStore

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
    "open_store",
]


def open_store(
    url: str, *, schema: str | None = None, clock: Clock = time.time, echo: bool = False
) -> SqlStore:
    """Open the SQL store at `url` (see `sipbox.storage.sql.open_store`); migrate before use."""
    from sipbox.storage import sql

    return sql.open_store(url, schema=schema, clock=clock, echo=echo)
