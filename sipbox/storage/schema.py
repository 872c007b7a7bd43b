"""Table definitions (SQLAlchemy Core) shared by the SQLite and PostgreSQL backends.

This is the schema the queries in `sql.py` are written against. The Alembic migrations in
`migrations/versions/` create the same tables and are frozen in time; a contract test compares
the migrated database with this module so the two cannot drift. To add a table: define it here,
write a new revision (see `sipbox.storage.migrate`: upgrade a scratch database, then
``revision --autogenerate``),
and add records + methods; nothing existing changes.

Portable choices: timestamps are DOUBLE (epoch seconds as in the interface); JSON is stored as
TEXT (identical on both backends, no JSONB-only operators tempt anyone); enumerations are short
strings guarded by CHECK constraints rather than native ENUM types, which PostgreSQL makes
painful to extend in a migration. Constraint names come from one naming convention so that
migrations can refer to them on both backends.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class JSONText(sa.TypeDecorator[Any]):
    """A JSON value stored as TEXT: the same bytes on SQLite and PostgreSQL.

    Keys are sorted so that equal values are stored identically (diffable, comparable).
    """

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)


#: 64-bit ids on PostgreSQL; on SQLite only ``INTEGER PRIMARY KEY`` is the auto-incrementing
#: rowid (``BIGINT PRIMARY KEY`` would not be), and it is 64-bit anyway.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(255), nullable=False),
    sa.Column("ha1_md5", sa.String(32), nullable=True),
    sa.Column("ha1_sha256", sa.String(64), nullable=True),
    sa.Column("realm", sa.String(255), nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("max_contacts", sa.Integer, nullable=True),
    sa.Column("ip_auth", JSONText, nullable=False),
    sa.Column("static_contact", sa.Text, nullable=True),
    sa.Column("nat", sa.String(8), nullable=False),
    sa.Column("ring_timeout", sa.Integer, nullable=True),
    sa.Column("max_calls", sa.Integer, nullable=True),
    sa.Column("class_of_service", sa.String(16), nullable=False),
    sa.Column("settings", JSONText, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.CheckConstraint("nat IN ('auto', 'yes', 'no')", name="nat"),
    sa.CheckConstraint(
        "class_of_service IN ('none', 'local', 'national', 'international')",
        name="class_of_service",
    ),
)

bindings = sa.Table(
    "bindings",
    metadata,
    sa.Column("aor", sa.Text, primary_key=True),
    sa.Column("contact_uri", sa.Text, primary_key=True),
    sa.Column("user_number", sa.String(64), nullable=False, index=True),
    sa.Column("instance_id", sa.Text, nullable=True),
    sa.Column("reg_id", sa.Integer, nullable=True),
    sa.Column("call_id", sa.Text, nullable=False),
    sa.Column("cseq", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("received_transport", sa.String(8), nullable=False),
    sa.Column("received_host", sa.String(255), nullable=False),
    sa.Column("received_port", sa.Integer, nullable=False),
    sa.Column("local_transport", sa.String(8), nullable=False),
    sa.Column("local_host", sa.String(255), nullable=False),
    sa.Column("local_port", sa.Integer, nullable=False),
    sa.Column("connection_hint", sa.Text, nullable=True),
    sa.Column("path", JSONText, nullable=False),
    sa.Column("user_agent", sa.Text, nullable=True),
    sa.Column("q", sa.Double, nullable=True),
    sa.Column("node_id", sa.String(64), nullable=True),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_used_at", sa.Double, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.CheckConstraint("role IN ('admin', 'read-only')", name="role"),
)

bans = sa.Table(
    "bans",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", JSONText, nullable=False),
    sa.Column("since", sa.Double, nullable=False),
    sa.Column("until", sa.Double, nullable=True, index=True),
    sa.Column("hit_count", sa.Integer, nullable=False),
    sa.Column("manual", sa.Boolean, nullable=False),
    sa.Column("offence_count", sa.Integer, nullable=False),
)

address_lists = sa.Table(
    "address_lists",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("network", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("kind", "network"),
    sa.CheckConstraint("kind IN ('whitelist', 'blacklist')", name="kind"),
)

security_events = sa.Table(
    "security_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", JSONText, nullable=False),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

cdrs = sa.Table(
    "cdrs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("start_time", sa.Double, nullable=False, index=True),
    sa.Column("answer_time", sa.Double, nullable=True),
    sa.Column("end_time", sa.Double, nullable=True, index=True),
    sa.Column("duration", sa.Integer, nullable=True),
    sa.Column("billable", sa.Integer, nullable=True),
    sa.Column("caller_number", sa.String(64), nullable=False, index=True),
    sa.Column("caller_display", sa.String(255), nullable=True),
    sa.Column("caller_source", sa.String(128), nullable=True),
    sa.Column("caller_transport", sa.String(8), nullable=True),
    sa.Column("dialed_number", sa.String(128), nullable=False, index=True),
    sa.Column("destination", sa.Text, nullable=True),
    sa.Column("disposition", sa.String(16), nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("hangup_by", sa.String(16), nullable=True),
    sa.Column("a_call_id", sa.Text, nullable=False),
    sa.Column("b_call_id", sa.Text, nullable=True),
    sa.Column("line", sa.String(64), nullable=True),
    sa.CheckConstraint(
        "disposition IS NULL OR disposition IN ('answered', 'busy', 'no-answer', 'cancelled', "
        "'failed', 'rejected', 'interrupted')",
        name="disposition",
    ),
)

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("strategy", sa.String(16), nullable=False),
    sa.Column("ring_timeout", sa.Integer, nullable=True),
    sa.Column("no_answer_destination", sa.String(64), nullable=True),
    sa.Column("completed_elsewhere", sa.Boolean, nullable=False),
    sa.Column("settings", JSONText, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.CheckConstraint("strategy IN ('ring-all', 'sequential', 'circular')", name="strategy"),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column(
        "group_id",
        sa.Integer,
        sa.ForeignKey("groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("member_number", sa.String(64), nullable=False, index=True),
    sa.Column("timeout", sa.Integer, nullable=True),
)

web_admins = sa.Table(
    "web_admins",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# External lines, trunks, call prefixes and inbound routes (issue 5). A line's and a trunk's
# many carrier-specific fields live in `config` (JSON): they are read whole into memory at
# start and on every change, never queried field by field. `secret` is the password encrypted
# by the PBX (the store never sees it in clear).
lines = sa.Table(
    "lines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("secret", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

trunks = sa.Table(
    "trunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("secret", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

prefixes = sa.Table(
    "prefixes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pattern", sa.String(64), nullable=False),
    sa.Column("min_length", sa.Integer, nullable=True),
    sa.Column("max_length", sa.Integer, nullable=True),
    sa.Column("config", JSONText, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

inbound_routes = sa.Table(
    "inbound_routes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("did", sa.String(64), nullable=False),
    sa.Column("destination", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("source", "did"),
)
