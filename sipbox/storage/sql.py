"""`SqlStore`: the `Store` protocol on SQLAlchemy 2 Core (async), for SQLite and PostgreSQL.

One set of queries serves both backends; the only dialect-specific statement is the upsert
(``INSERT ... ON CONFLICT DO UPDATE``, spelled the same on both but built by each dialect's
`insert`). Driver exceptions are translated to `sipbox.storage.errors` at one place (`_write`,
`_read`), so callers never see SQLAlchemy.

SQLite (aiosqlite) notes. The pysqlite driver's legacy transaction handling neither begins a
transaction before DDL (so a failed migration would be half-applied) nor before SELECT; we turn
it off and emit BEGIN ourselves, as the SQLAlchemy documentation recommends. Write transactions
use ``BEGIN IMMEDIATE`` so the write lock is taken up front and ``busy_timeout`` can wait for it;
a deferred transaction that reads and then writes could instead fail with SQLITE_BUSY when
another connection committed in between (WAL snapshot rule). Pragmas: WAL (readers never block
the writer), ``synchronous=NORMAL`` (durable across application crashes, and fsyncs only at
checkpoints), foreign keys on.

PostgreSQL (asyncpg). An optional `schema` sets ``search_path`` for every connection, which
isolates test runs and lets several deployments share one database.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sipbox.storage import migrate as migrations
from sipbox.storage.errors import AlreadyExists, InvalidValue, NotFound, Refused, StoreError
from sipbox.storage.records import (
    ADDRESS_LIST_KINDS,
    CDR_DISPOSITIONS,
    GROUP_STRATEGIES,
    TOKEN_ROLES,
    AddressListEntry,
    AddressListKind,
    ApiToken,
    Ban,
    Binding,
    BindingKey,
    Cdr,
    CdrFilter,
    Group,
    GroupMember,
    NewUser,
    SecurityEvent,
    TokenRole,
    User,
    WebAdmin,
    billable_seconds,
    normalise_network,
    validate_user_fields,
)
from sipbox.storage.schema import (
    address_lists,
    api_tokens,
    bans,
    bindings,
    cdrs,
    group_members,
    groups,
    security_events,
    settings,
    users,
    web_admins,
)

Clock = Callable[[], float]

#: Execution option marking a connection whose transaction will write (SQLite: BEGIN IMMEDIATE).
_WRITE_OPTION: Final = "sipbox_write"
#: How long a SQLite writer waits for the lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS: Final = 5000

#: PostgreSQL advisory lock key held while migrating (arbitrary, constant: "sipbox" in ASCII).
_MIGRATION_LOCK_ID: Final = 0x736970626F78

#: The open `SqlStore.transaction` of the current task: (store, connection, owning task).
_TRANSACTION: ContextVar[tuple[SqlStore, AsyncConnection, asyncio.Task[Any] | None] | None] = (
    ContextVar("sipbox_store_transaction", default=None)
)

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_BINDING_FIELDS: Final = tuple(f.name for f in fields(Binding))
_BAN_FIELDS: Final = tuple(f.name for f in fields(Ban))
_CDR_FIELDS: Final = tuple(f.name for f in fields(Cdr))


# ------------------------------------------------------------------------------ URLs, engines


def to_async_url(url: str) -> URL:
    """Translate a user-facing database URL to the async driver SQLAlchemy needs.

    Accepted: ``sqlite:///relative.db``, ``sqlite:////abs.db``, a bare file path, ``sqlite://``
    (in memory), ``postgresql://...`` or ``postgres://...``; explicit async drivers pass
    through. Anything else raises `ValueError`: a typo in the configuration should stop start-up,
    not pick a surprising default.
    """
    if "://" not in url:
        if not url:
            raise ValueError("empty database URL")
        return URL.create("sqlite+aiosqlite", database=url)
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite", "aiosqlite"):
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "asyncpg", "psycopg2", "psycopg"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def create_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An `AsyncEngine` for `url`, configured as the store needs (pragmas, search_path).

    For a SQLite file the parent directory is created, so the default ``./var/sipbox.db`` works
    on a fresh checkout.
    """
    async_url = to_async_url(url)
    if async_url.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("a schema can only be chosen on PostgreSQL")
        database = async_url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url, echo=echo)
        _install_sqlite_hooks(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid PostgreSQL schema name {schema!r}")
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(async_url, echo=echo, connect_args=connect_args)


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    """Pragmas on every new connection, and SQLAlchemy-controlled BEGIN (see module doc)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_store(
    url: str, *, schema: str | None = None, clock: Clock = time.time, echo: bool = False
) -> SqlStore:
    """Open (lazily: nothing connects until first use) the store at `url`.

    Call ``await store.migrate()`` before anything else on start-up. `clock` stamps
    ``created_at``/``updated_at``; tests inject a fake one.
    """
    engine = create_engine(url, schema=schema, echo=echo)
    return SqlStore(engine, schema=schema, clock=clock)


# ----------------------------------------------------------------------------- error mapping


def _is_unique_violation(exc: IntegrityError) -> bool:
    """True if `exc` is a UNIQUE/PRIMARY KEY violation, on either backend."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    name = getattr(orig, "sqlite_errorname", "")
    if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return True
    return "UNIQUE constraint failed" in str(orig)


def _describe(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]


# --------------------------------------------------------------------------- row conversion


def _user_from_row(row: sa.Row[Any]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        number=m["number"],
        display_name=m["display_name"],
        ha1_md5=m["ha1_md5"],
        ha1_sha256=m["ha1_sha256"],
        realm=m["realm"],
        enabled=bool(m["enabled"]),
        max_contacts=m["max_contacts"],
        ip_auth=tuple(m["ip_auth"]),
        static_contact=m["static_contact"],
        nat=m["nat"],
        ring_timeout=m["ring_timeout"],
        max_calls=m["max_calls"],
        class_of_service=m["class_of_service"],
        settings=m["settings"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _new_user_values(user: NewUser, now: float) -> dict[str, Any]:
    values = validate_user_fields({f.name: getattr(user, f.name) for f in fields(NewUser)})
    values["created_at"] = now
    values["updated_at"] = now
    return values


def _binding_values(binding: Binding) -> dict[str, Any]:
    return {name: getattr(binding, name) for name in _BINDING_FIELDS}


#: Rows per executemany statement of `SqlStore.apply_binding_changes`.
BINDING_CHUNK: Final = 1000


def _chunks(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """`rows` in lists of at most `BINDING_CHUNK`, built as they are consumed."""
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= BINDING_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _binding_from_row(row: sa.Row[Any]) -> Binding:
    m = row._mapping
    values = {name: m[name] for name in _BINDING_FIELDS}
    values["path"] = tuple(values["path"])
    return Binding(**values)


def _ban_from_row(row: sa.Row[Any]) -> Ban:
    m = row._mapping
    values = {name: m[name] for name in _BAN_FIELDS}
    values["manual"] = bool(values["manual"])
    return Ban(**values)


def _token_from_row(row: sa.Row[Any]) -> ApiToken:
    m = row._mapping
    return ApiToken(
        id=m["id"],
        name=m["name"],
        token_hash=m["token_hash"],
        role=m["role"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked=bool(m["revoked"]),
    )


def _web_admin_from_row(row: sa.Row[Any]) -> WebAdmin:
    m = row._mapping
    return WebAdmin(
        id=m["id"],
        username=m["username"],
        password_hash=m["password_hash"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


_WEB_ADMIN_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _check_web_admin(username: str, password_hash: str) -> None:
    """Names are printable (they appear in logs and pages); hashes are never clear text."""
    if not _WEB_ADMIN_NAME.fullmatch(username):
        raise InvalidValue(
            "username must be 1-64 letters, digits or . _ @ - (starting with a letter or digit)"
        )
    if not password_hash.startswith("$"):
        raise InvalidValue("password_hash must be a PHC hash string (argon2), not a password")


def _address_from_row(row: sa.Row[Any]) -> AddressListEntry:
    m = row._mapping
    return AddressListEntry(
        id=m["id"], kind=m["kind"], network=m["network"], note=m["note"], created_at=m["created_at"]
    )


def _event_from_row(row: sa.Row[Any]) -> SecurityEvent:
    m = row._mapping
    return SecurityEvent(
        id=m["id"],
        at=m["at"],
        kind=m["kind"],
        source=m["source"],
        reason=m["reason"],
        detail=m["detail"],
    )


# ------------------------------------------------------------------------------------ store


class SqlStore:
    """The `Store` on an `AsyncEngine` (SQLite via aiosqlite, PostgreSQL via asyncpg)."""

    def __init__(
        self, engine: AsyncEngine, *, schema: str | None = None, clock: Clock = time.time
    ) -> None:
        self._engine = engine
        self._schema = schema
        self._clock = clock
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {dialect!r}")
        self._insert = sqlite_dialect.insert if dialect == "sqlite" else pg_dialect.insert
        self._upsert_binding_stmt = self._upsert_stmt(bindings, ("aor", "contact_uri"))
        self._upsert_ban_stmt = self._upsert_stmt(bans, ("source",))
        self._upsert_setting_stmt = self._upsert_stmt(settings, ("key",))
        self._upsert_cdr_stmt = self._upsert_stmt(cdrs, ("id",))

    def _upsert_stmt(self, table: sa.Table, key: tuple[str, ...]) -> Any:
        """``INSERT ... ON CONFLICT (key) DO UPDATE SET every other column = excluded``.

        Built once with no values, so it serves both single executes and executemany batches.
        """
        stmt = self._insert(table)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[name] for name in key],
            set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in key},
        )

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine (for diagnostics and tests; queries belong in this class)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    # ----------------------------------------------------------------------- transactions

    def _joined(self) -> AsyncConnection | None:
        """The connection of this task's open `transaction` on this store, if any.

        Only the task that opened the transaction joins it: a task it spawns inherits the
        context variable but must not share the connection (asyncpg and aiosqlite connections
        are not safe for concurrent use), so it gets its own as before."""
        current = _TRANSACTION.get()
        if current is None:
            return None
        store, conn, owner = current
        if store is not self or owner is not asyncio.current_task():
            return None
        return conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """All store writes made by this task inside the block commit together or not at all.

        Why: an import touches users, groups, lines, prefixes, routes and lists through many
        store methods; doing it in one database transaction means a failure half-way (a
        constraint only the database checks, a lost connection) leaves nothing written, on
        SQLite and PostgreSQL alike, with no undo log that could itself fail.

        Inside the block every method of this store (and of `LineStore` on it) runs on the
        transaction's connection and sees the writes made so far. Each write is a SAVEPOINT,
        so a write that fails (and is caught, e.g. `AlreadyExists`) does not poison the rest
        (PostgreSQL aborts a transaction at its first error otherwise). On SQLite the write
        lock is held for the whole block (BEGIN IMMEDIATE): keep it short, other writers wait
        up to the busy timeout. Transactions do not nest (`RuntimeError`)."""
        if self._joined() is not None:
            raise RuntimeError("store transactions do not nest")
        try:
            async with self._engine.connect() as conn:
                await conn.execution_options(**{_WRITE_OPTION: True})
                async with conn.begin():
                    token = _TRANSACTION.set((self, conn, asyncio.current_task()))
                    try:
                        yield
                    finally:
                        _TRANSACTION.reset(token)
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_describe(exc)}") from exc

    @asynccontextmanager
    async def _write(self, conflict: str | None = None) -> AsyncIterator[AsyncConnection]:
        """A write transaction (a SAVEPOINT inside `transaction`); unique violations become
        `AlreadyExists(conflict)`."""
        joined = self._joined()
        try:
            if joined is not None:
                async with joined.begin_nested():
                    yield joined
            else:
                async with self._engine.connect() as conn:
                    await conn.execution_options(**{_WRITE_OPTION: True})
                    async with conn.begin():
                        yield conn
        except IntegrityError as exc:
            if conflict is not None and _is_unique_violation(exc):
                raise AlreadyExists(conflict) from exc
            raise StoreError(f"integrity error: {_describe(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_describe(exc)}") from exc

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (rolled back at the end); inside `transaction`, its
        connection (so the block reads its own writes)."""
        joined = self._joined()
        if joined is not None:
            try:
                yield joined
            except SQLAlchemyError as exc:
                raise StoreError(f"database error: {_describe(exc)}") from exc
            return
        try:
            async with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_describe(exc)}") from exc

    # -------------------------------------------------------------------------- lifecycle

    async def migrate(self) -> None:
        """Upgrade to the newest schema revision, in one transaction (a no-op when current).

        On PostgreSQL, nodes starting together serialise on a transaction-scoped advisory lock
        (the second finds the schema current), and a `schema` is created first if needed.
        """
        async with self._write() as conn:
            if self.dialect == "postgresql":
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})")
                if self._schema is not None:
                    await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await conn.run_sync(migrations.upgrade)

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        async with self._read() as conn:
            return await conn.run_sync(migrations.current_revision)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    # ------------------------------------------------------------------------------ users

    async def create_user(self, user: NewUser) -> User:
        """Insert one user; `AlreadyExists` names the number if it is taken."""
        values = _new_user_values(user, self._clock())
        async with self._write(conflict=f"user number {user.number!r} already exists") as conn:
            row = (await conn.execute(users.insert().values(values).returning(users))).one()
        return _user_from_row(row)

    async def create_users(self, new_users: Sequence[NewUser]) -> list[User]:
        """Insert many users with one executemany in one transaction: all or nothing.

        On a conflict the error names the numbers already stored (or repeated in the batch),
        found with a follow-up query after the rollback, so the fast path pays nothing for it.
        """
        if not new_users:
            return []
        now = self._clock()
        rows = [_new_user_values(u, now) for u in new_users]
        seen: set[str] = set()
        repeated: set[str] = set()
        for new in new_users:
            (repeated if new.number in seen else seen).add(new.number)
        if repeated:
            listed = ", ".join(sorted(repeated))
            raise AlreadyExists(f"user number(s) repeated in the batch: {listed}")
        stmt = users.insert().returning(*users.c, sort_by_parameter_order=True)
        try:
            async with self._write(conflict="user number already exists") as conn:
                result = await conn.execute(stmt, rows)
                created = [_user_from_row(row) for row in result.all()]
        except AlreadyExists as exc:
            taken = await self._existing_numbers([u.number for u in new_users])
            raise AlreadyExists(
                f"user number(s) already exist: {', '.join(taken) or '(unknown)'}"
            ) from exc
        return created

    async def _existing_numbers(self, numbers: list[str]) -> list[str]:
        found: list[str] = []
        async with self._read() as conn:
            for start in range(0, len(numbers), 500):  # stay under bind-parameter limits
                chunk = numbers[start : start + 500]
                result = await conn.execute(
                    sa.select(users.c.number).where(users.c.number.in_(chunk))
                )
                found.extend(result.scalars())
        return sorted(found)

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        async with self._read() as conn:
            row = (await conn.execute(users.select().where(users.c.id == user_id))).one_or_none()
        return None if row is None else _user_from_row(row)

    async def get_user_by_number(self, number: str) -> User | None:
        """The user with this number, or None."""
        async with self._read() as conn:
            result = await conn.execute(users.select().where(users.c.number == number))
            row = result.one_or_none()
        return None if row is None else _user_from_row(row)

    async def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        """Users ordered by number; `limit` None means all."""
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidValue("limit and offset must not be negative")
        stmt = users.select().order_by(users.c.number).offset(offset).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_user_from_row(row) for row in rows]

    async def count_users(self) -> int:
        """The number of stored users."""
        async with self._read() as conn:
            result = await conn.execute(sa.select(sa.func.count()).select_from(users))
            return int(result.scalar_one())

    async def update_user(self, user_id: int, changes: Mapping[str, Any]) -> User:
        """Change only the fields named in `changes` (see `records.USER_FIELDS`).

        Changing the number drops the user's stored bindings: they were registered under the old
        address-of-record, and keeping them would route the old number to the user's phones.
        """
        values = validate_user_fields(changes)
        values["updated_at"] = self._clock()
        conflict = f"user number {values.get('number')!r} already exists"
        async with self._write(conflict=conflict) as conn:
            old_number = (
                await conn.execute(sa.select(users.c.number).where(users.c.id == user_id))
            ).scalar_one_or_none()
            if old_number is None:
                raise NotFound(f"no user with id {user_id}")
            stmt = users.update().where(users.c.id == user_id).values(values).returning(users)
            row = (await conn.execute(stmt)).one()
            if row._mapping["number"] != old_number:
                await conn.execute(bindings.delete().where(bindings.c.user_number == old_number))
        return _user_from_row(row)

    async def delete_user(self, user_id: int) -> None:
        """Delete a user and, in the same transaction, its stored bindings."""
        async with self._write() as conn:
            stmt = users.delete().where(users.c.id == user_id).returning(users.c.number)
            number = (await conn.execute(stmt)).scalar_one_or_none()
            if number is None:
                raise NotFound(f"no user with id {user_id}")
            await conn.execute(bindings.delete().where(bindings.c.user_number == number))

    # --------------------------------------------------------------------------- bindings

    async def upsert_binding(self, binding: Binding) -> None:
        """One ``INSERT ... ON CONFLICT DO UPDATE`` statement."""
        async with self._write() as conn:
            await conn.execute(self._upsert_binding_stmt, _binding_values(binding))

    async def delete_binding(self, aor: str, contact_uri: str) -> bool:
        """Delete one binding; True if a row went away."""
        stmt = bindings.delete().where(bindings.c.aor == aor, bindings.c.contact_uri == contact_uri)
        async with self._write() as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def delete_bindings_for_aor(self, aor: str) -> int:
        """Delete every binding of `aor`; how many went."""
        async with self._write() as conn:
            return (await conn.execute(bindings.delete().where(bindings.c.aor == aor))).rowcount

    async def load_bindings(self, now: float) -> list[Binding]:
        """Unexpired bindings (``expires_at > now``), by aor then contact."""
        stmt = (
            bindings.select()
            .where(bindings.c.expires_at > now)
            .order_by(bindings.c.aor, bindings.c.contact_uri)
        )
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_binding_from_row(row) for row in rows]

    async def purge_expired_bindings(self, now: float) -> int:
        """Delete bindings with ``expires_at <= now``; how many went."""
        async with self._write() as conn:
            stmt = bindings.delete().where(bindings.c.expires_at <= now)
            return (await conn.execute(stmt)).rowcount

    async def apply_binding_changes(
        self, upserts: Iterable[Binding], deletes: Iterable[BindingKey | tuple[str, str]]
    ) -> None:
        """A registrar batch in one transaction: deletes first, then upserts, each as
        executemany statements of at most `BINDING_CHUNK` rows.

        A background writer that coalesces changes by key (last change wins) never puts one
        key in both lists. `upserts` is read as it is written, a chunk at a time: a writer
        that passes a generator (the registrar does) never has more than one chunk of records
        and parameter rows in memory, however long its backlog (a 100,000-row batch built at
        once held ~100 MB until the call returned).
        """
        delete_chunks = _chunks(({"k_aor": aor, "k_contact": c} for aor, c in deletes))
        upsert_chunks = _chunks(_binding_values(b) for b in upserts)
        first_deletes = next(delete_chunks, None)
        first_upserts = next(upsert_chunks, None) if first_deletes is None else None
        if first_deletes is None and first_upserts is None:
            return
        async with self._write() as conn:
            if first_deletes is not None:
                stmt = bindings.delete().where(
                    bindings.c.aor == sa.bindparam("k_aor"),
                    bindings.c.contact_uri == sa.bindparam("k_contact"),
                )
                await conn.execute(stmt, first_deletes)
                for params in delete_chunks:
                    await conn.execute(stmt, params)
                first_upserts = next(upsert_chunks, None)
            if first_upserts is not None:
                await conn.execute(self._upsert_binding_stmt, first_upserts)
                for params in upsert_chunks:
                    await conn.execute(self._upsert_binding_stmt, params)

    # ----------------------------------------------------------------------------- tokens

    async def create_api_token(self, name: str, token_hash: str, role: TokenRole) -> ApiToken:
        """Store a token digest; `AlreadyExists` if the digest is already stored."""
        if role not in TOKEN_ROLES:
            raise InvalidValue(f"role must be one of {sorted(TOKEN_ROLES)}, not {role!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", token_hash):
            raise InvalidValue("token_hash must be a lowercase SHA-256 hex digest")
        values = {
            "name": name,
            "token_hash": token_hash,
            "role": role,
            "created_at": self._clock(),
            "last_used_at": None,
            "revoked": False,
        }
        async with self._write(conflict="an API token with this hash already exists") as conn:
            stmt = api_tokens.insert().values(values).returning(api_tokens)
            row = (await conn.execute(stmt)).one()
        return _token_from_row(row)

    async def find_api_token(self, token_hash: str) -> ApiToken | None:
        """The unrevoked token with this digest; revoked tokens are invisible here."""
        stmt = api_tokens.select().where(
            api_tokens.c.token_hash == token_hash, api_tokens.c.revoked.is_(False)
        )
        async with self._read() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else _token_from_row(row)

    async def touch_api_token(self, token_id: int, now: float) -> None:
        """Set ``last_used_at``; unknown ids are ignored (a revoke may have raced)."""
        stmt = api_tokens.update().where(api_tokens.c.id == token_id).values(last_used_at=now)
        async with self._write() as conn:
            await conn.execute(stmt)

    async def list_api_tokens(self) -> list[ApiToken]:
        """All tokens by id, revoked included (the admin page shows them)."""
        async with self._read() as conn:
            rows = (await conn.execute(api_tokens.select().order_by(api_tokens.c.id))).all()
        return [_token_from_row(row) for row in rows]

    async def revoke_api_token(self, token_id: int) -> None:
        """Mark revoked (kept for the audit trail); `NotFound` if absent."""
        stmt = (
            api_tokens.update()
            .where(api_tokens.c.id == token_id)
            .values(revoked=True)
            .returning(api_tokens.c.id)
        )
        async with self._write() as conn:
            if (await conn.execute(stmt)).scalar_one_or_none() is None:
                raise NotFound(f"no API token with id {token_id}")

    # ------------------------------------------------------------------------- web admins

    async def create_web_admin(self, username: str, password_hash: str) -> WebAdmin:
        """Store a web admin account; `AlreadyExists` if the name is taken."""
        _check_web_admin(username, password_hash)
        now = self._clock()
        values = {
            "username": username,
            "password_hash": password_hash,
            "created_at": now,
            "updated_at": now,
        }
        async with self._write(conflict=f"web admin {username!r} already exists") as conn:
            stmt = web_admins.insert().values(values).returning(web_admins)
            row = (await conn.execute(stmt)).one()
        return _web_admin_from_row(row)

    async def get_web_admin(self, username: str) -> WebAdmin | None:
        """The account with this name, or None."""
        stmt = web_admins.select().where(web_admins.c.username == username)
        async with self._read() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else _web_admin_from_row(row)

    async def list_web_admins(self) -> list[WebAdmin]:
        """Every account, by name."""
        stmt = web_admins.select().order_by(web_admins.c.username)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_web_admin_from_row(row) for row in rows]

    async def set_web_admin_password(self, username: str, password_hash: str) -> None:
        """Replace the password hash; `NotFound` if the account does not exist."""
        _check_web_admin(username, password_hash)
        stmt = (
            web_admins.update()
            .where(web_admins.c.username == username)
            .values(password_hash=password_hash, updated_at=self._clock())
            .returning(web_admins.c.id)
        )
        async with self._write() as conn:
            if (await conn.execute(stmt)).scalar_one_or_none() is None:
                raise NotFound(f"no web admin {username!r}")

    async def delete_web_admin(self, username: str, *, keep_last: bool = False) -> None:
        """Remove an account; `NotFound` if absent. With `keep_last`, `Refused` when it is the
        only one left (the pages would lock everybody out).

        The count and the delete are one transaction with the accounts' rows locked (``FOR
        UPDATE`` on PostgreSQL; SQLite's write lock is taken up front), so two administrators
        deleting each other at the same moment cannot both succeed and leave none."""
        stmt = web_admins.delete().where(web_admins.c.username == username)
        async with self._write() as conn:
            if keep_last:
                names = (
                    (await conn.execute(sa.select(web_admins.c.username).with_for_update()))
                    .scalars()
                    .all()
                )
                if username in names and len(names) == 1:
                    raise Refused(
                        f"{username!r} is the last web admin account: add another one first"
                    )
            if (await conn.execute(stmt)).rowcount == 0:
                raise NotFound(f"no web admin {username!r}")

    # ------------------------------------------------------------------------------- bans

    async def upsert_ban(self, ban: Ban) -> None:
        """Insert or replace the ban for ``ban.source`` (one statement)."""
        values = {name: getattr(ban, name) for name in _BAN_FIELDS}
        values["detail"] = dict(ban.detail)
        async with self._write() as conn:
            await conn.execute(self._upsert_ban_stmt, values)

    async def get_ban(self, source: str) -> Ban | None:
        """The stored ban for `source`, active or not."""
        async with self._read() as conn:
            row = (await conn.execute(bans.select().where(bans.c.source == source))).one_or_none()
        return None if row is None else _ban_from_row(row)

    async def delete_ban(self, source: str) -> bool:
        """Lift a ban; True if it existed."""
        async with self._write() as conn:
            return (await conn.execute(bans.delete().where(bans.c.source == source))).rowcount > 0

    async def list_active_bans(self, now: float) -> list[Ban]:
        """Permanent bans and bans ending after `now`, oldest first."""
        stmt = (
            bans.select()
            .where(sa.or_(bans.c.until.is_(None), bans.c.until > now))
            .order_by(bans.c.since, bans.c.source)
        )
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_ban_from_row(row) for row in rows]

    async def purge_expired_bans(self, now: float) -> int:
        """Delete bans with ``until <= now`` (permanent bans stay); how many went."""
        stmt = bans.delete().where(bans.c.until.is_not(None), bans.c.until <= now)
        async with self._write() as conn:
            return (await conn.execute(stmt)).rowcount

    # ---------------------------------------------------------------------- address lists

    async def add_address(
        self, kind: AddressListKind, network: str, note: str = ""
    ) -> AddressListEntry:
        """Add a canonicalised entry; `AlreadyExists` if (kind, network) is present."""
        _check_kind(kind)
        canonical = normalise_network(network)
        values = {"kind": kind, "network": canonical, "note": note, "created_at": self._clock()}
        async with self._write(conflict=f"{kind} already contains {canonical}") as conn:
            stmt = address_lists.insert().values(values).returning(address_lists)
            row = (await conn.execute(stmt)).one()
        return _address_from_row(row)

    async def remove_address(self, kind: AddressListKind, network: str) -> None:
        """Remove an entry (matched in canonical form); `NotFound` if absent."""
        _check_kind(kind)
        canonical = normalise_network(network)
        stmt = address_lists.delete().where(
            address_lists.c.kind == kind, address_lists.c.network == canonical
        )
        async with self._write() as conn:
            if (await conn.execute(stmt)).rowcount == 0:
                raise NotFound(f"{kind} does not contain {canonical}")

    async def list_addresses(self, kind: AddressListKind | None = None) -> list[AddressListEntry]:
        """Entries of `kind` (or all), by kind then network."""
        stmt = address_lists.select().order_by(address_lists.c.kind, address_lists.c.network)
        if kind is not None:
            _check_kind(kind)
            stmt = stmt.where(address_lists.c.kind == kind)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_address_from_row(row) for row in rows]

    # -------------------------------------------------------------------- security events

    async def append_security_event(
        self,
        at: float,
        kind: str,
        source: str,
        reason: str,
        detail: Mapping[str, Any] | None = None,
    ) -> SecurityEvent:
        """Append one audit event and return it with its id."""
        values = {
            "at": at,
            "kind": kind,
            "source": source,
            "reason": reason,
            "detail": dict(detail or {}),
        }
        async with self._write() as conn:
            stmt = security_events.insert().values(values).returning(security_events)
            row = (await conn.execute(stmt)).one()
        return _event_from_row(row)

    async def list_security_events(
        self, *, limit: int = 100, since: float | None = None
    ) -> list[SecurityEvent]:
        """Newest first; ``at >= since`` when given."""
        if limit < 0:
            raise InvalidValue("limit must not be negative")
        stmt = (
            security_events.select()
            .order_by(security_events.c.at.desc(), security_events.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            stmt = stmt.where(security_events.c.at >= since)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_event_from_row(row) for row in rows]

    async def purge_security_events(self, before: float) -> int:
        """Delete events with ``at < before``; how many went."""
        async with self._write() as conn:
            stmt = security_events.delete().where(security_events.c.at < before)
            return (await conn.execute(stmt)).rowcount

    # --------------------------------------------------------------------------- settings

    async def get_setting(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        async with self._read() as conn:
            result = await conn.execute(sa.select(settings.c.value).where(settings.c.key == key))
            value: str | None = result.scalar_one_or_none()
        return value

    async def set_setting(self, key: str, value: str) -> None:
        """Insert or replace (one statement)."""
        params = {"key": key, "value": value, "updated_at": self._clock()}
        async with self._write() as conn:
            await conn.execute(self._upsert_setting_stmt, params)

    async def delete_setting(self, key: str) -> bool:
        """Remove `key`; True if it existed."""
        async with self._write() as conn:
            stmt = settings.delete().where(settings.c.key == key)
            return (await conn.execute(stmt)).rowcount > 0

    # ----------------------------------------------------------------------- call records

    async def create_cdr(self, record: Cdr) -> None:
        """Insert the open record of a call that is being set up (`AlreadyExists` on a
        duplicate id)."""
        async with self._write(conflict="cdr") as conn:
            await conn.execute(cdrs.insert(), _cdr_values(record))

    async def complete_cdr(self, record: Cdr) -> None:
        """Write the completed record over the open one (inserted if the open write was
        never made, so a lost open write does not lose the call)."""
        async with self._write() as conn:
            await conn.execute(self._upsert_cdr_stmt, _cdr_values(record))

    async def save_cdrs(self, records: Sequence[Cdr]) -> None:
        """Insert or replace many records in one transaction (the background CDR writer's
        batch: open and completed records alike)."""
        if not records:
            return
        async with self._write() as conn:
            await conn.execute(self._upsert_cdr_stmt, [_cdr_values(r) for r in records])

    async def get_cdr(self, cdr_id: str) -> Cdr | None:
        async with self._read() as conn:
            row = (await conn.execute(cdrs.select().where(cdrs.c.id == cdr_id))).first()
        return None if row is None else _cdr_from_row(row)

    async def list_cdrs(
        self, filters: CdrFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[Cdr]:
        """Newest first (start time, then id), filtered, paginated."""
        if limit < 0 or offset < 0:
            raise InvalidValue("limit and offset must not be negative")
        stmt = _cdr_where(cdrs.select(), filters)
        stmt = stmt.order_by(cdrs.c.start_time.desc(), cdrs.c.id.desc()).limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_cdr_from_row(row) for row in rows]

    async def count_cdrs(self, filters: CdrFilter | None = None) -> int:
        stmt = _cdr_where(sa.select(sa.func.count()).select_from(cdrs), filters)
        async with self._read() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def close_interrupted_cdrs(self, now: float) -> int:
        """Close every open record (a call in progress when the server stopped without
        ending it): end time `now`, disposition ``interrupted``. How many were closed."""
        async with self._write() as conn:
            rows = (await conn.execute(cdrs.select().where(cdrs.c.end_time.is_(None)))).all()
            for row in rows:
                old = _cdr_from_row(row)
                end = max(now, old.start_time)
                answer = old.answer_time
                await conn.execute(
                    cdrs.update()
                    .where(cdrs.c.id == old.id)
                    .values(
                        end_time=end,
                        disposition="interrupted",
                        duration=billable_seconds(old.start_time, end),
                        billable=billable_seconds(answer, end) if answer is not None else 0,
                        hangup_by="system",
                    )
                )
        return len(rows)

    # ----------------------------------------------------------------------------- groups

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
        """Store a group and its ordered members; `AlreadyExists` if the number is taken."""
        if strategy not in GROUP_STRATEGIES:
            raise InvalidValue(f"strategy must be one of {sorted(GROUP_STRATEGIES)}")
        now = self._clock()
        values = {
            "number": number,
            "name": name,
            "strategy": strategy,
            "ring_timeout": ring_timeout,
            "no_answer_destination": no_answer_destination,
            "completed_elsewhere": completed_elsewhere,
            "settings": dict(settings_ or {}),
            "created_at": now,
            "updated_at": now,
        }
        async with self._write(conflict="number") as conn:
            row = (await conn.execute(groups.insert().values(values).returning(groups.c.id))).one()
            group_id = int(row[0])
            await _insert_members(conn, group_id, members)
        group = await self.get_group_by_number(number)
        assert group is not None
        return group

    async def get_group_by_number(self, number: str) -> Group | None:
        groups_found = await self._groups(groups.c.number == number)
        return groups_found[0] if groups_found else None

    async def list_groups(self) -> list[Group]:
        """Every group with its members, by number."""
        return await self._groups(None)

    async def update_group(
        self,
        number: str,
        changes: Mapping[str, Any],
        members: Sequence[GroupMember] | None = None,
    ) -> Group:
        """Change some fields and/or replace the members, in one transaction."""
        unknown = set(changes) - _GROUP_FIELDS
        if unknown:
            raise InvalidValue(f"unknown group field {sorted(unknown)[0]!r}")
        if "strategy" in changes and changes["strategy"] not in GROUP_STRATEGIES:
            raise InvalidValue(f"strategy must be one of {sorted(GROUP_STRATEGIES)}")
        values = dict(changes)
        if "settings" in values:
            values["settings"] = dict(values["settings"] or {})
        values["updated_at"] = self._clock()
        new_number = values.get("number", number)
        async with self._write(conflict="number") as conn:
            found = (
                await conn.execute(sa.select(groups.c.id).where(groups.c.number == number))
            ).first()
            if found is None:
                raise NotFound(f"group {number!r}")
            group_id = found[0]
            await conn.execute(groups.update().where(groups.c.id == group_id).values(values))
            if members is not None:
                await conn.execute(
                    group_members.delete().where(group_members.c.group_id == group_id)
                )
                await _insert_members(conn, group_id, members)
        group = await self.get_group_by_number(new_number)
        assert group is not None
        return group

    async def delete_group(self, number: str) -> None:
        """Delete a group (members go with it); `NotFound` if absent."""
        async with self._write() as conn:
            found = (
                await conn.execute(sa.select(groups.c.id).where(groups.c.number == number))
            ).first()
            if found is None:
                raise NotFound(f"group {number!r}")
            await conn.execute(group_members.delete().where(group_members.c.group_id == found[0]))
            await conn.execute(groups.delete().where(groups.c.id == found[0]))

    async def _groups(self, where: Any) -> list[Group]:
        stmt = groups.select().order_by(groups.c.number)
        if where is not None:
            stmt = stmt.where(where)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
            ids = [row._mapping["id"] for row in rows]
            members: dict[int, list[GroupMember]] = {i: [] for i in ids}
            if ids:
                member_rows = (
                    await conn.execute(
                        group_members.select()
                        .where(group_members.c.group_id.in_(ids))
                        .order_by(group_members.c.group_id, group_members.c.position)
                    )
                ).all()
                for member_row in member_rows:
                    mm = member_row._mapping
                    members[mm["group_id"]].append(GroupMember(mm["member_number"], mm["timeout"]))
        out = []
        for row in rows:
            m = row._mapping
            out.append(
                Group(
                    id=m["id"],
                    number=m["number"],
                    name=m["name"],
                    strategy=m["strategy"],
                    ring_timeout=m["ring_timeout"],
                    no_answer_destination=m["no_answer_destination"],
                    completed_elsewhere=bool(m["completed_elsewhere"]),
                    members=tuple(members[m["id"]]),
                    settings=m["settings"],
                    created_at=m["created_at"],
                    updated_at=m["updated_at"],
                )
            )
        return out


_GROUP_FIELDS = frozenset(
    {
        "number",
        "name",
        "strategy",
        "ring_timeout",
        "no_answer_destination",
        "completed_elsewhere",
        "settings",
    }
)


def _cdr_values(record: Cdr) -> dict[str, Any]:
    if record.disposition is not None and record.disposition not in CDR_DISPOSITIONS:
        raise InvalidValue(f"unknown disposition {record.disposition!r}")
    return {name: getattr(record, name) for name in _CDR_FIELDS}


def _cdr_from_row(row: sa.Row[Any]) -> Cdr:
    m = row._mapping
    return Cdr(**{name: m[name] for name in _CDR_FIELDS})


def _cdr_where(stmt: Any, filters: CdrFilter | None) -> Any:
    if filters is None:
        return stmt
    if filters.since is not None:
        stmt = stmt.where(cdrs.c.start_time >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(cdrs.c.start_time < filters.until)
    if filters.number:
        n = filters.number
        stmt = stmt.where(
            sa.or_(
                cdrs.c.caller_number == n,
                cdrs.c.dialed_number == n,
                cdrs.c.destination == n,
                cdrs.c.destination.like(f"{n} %"),
            )
        )
    if filters.disposition:
        stmt = stmt.where(cdrs.c.disposition == filters.disposition)
    return stmt


def _check_kind(kind: str) -> None:
    if kind not in ADDRESS_LIST_KINDS:
        raise InvalidValue(f"address list kind must be one of {sorted(ADDRESS_LIST_KINDS)}")


async def _insert_members(conn: Any, group_id: int, members: Sequence[Any]) -> None:
    """Write a group's members in ring order (create and update share it)."""
    if members:
        await conn.execute(
            group_members.insert(),
            [
                {
                    "group_id": group_id,
                    "position": i,
                    "member_number": m.number,
                    "timeout": m.timeout,
                }
                for i, m in enumerate(members)
            ],
        )
