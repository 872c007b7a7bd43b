"""Initial schema: users, bindings, api_tokens, bans, address_lists, security_events, settings.

Revision ID: 0001
Revises:
Create Date: 2025-11-26

Frozen in time: do not import `sipbox.storage.schema` here; later revisions change the tables,
and this one must keep creating what version 0001 was.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("ha1_md5", sa.String(32), nullable=True),
        sa.Column("ha1_sha256", sa.String(64), nullable=True),
        sa.Column("realm", sa.String(255), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("max_contacts", sa.Integer(), nullable=True),
        sa.Column("ip_auth", sa.Text(), nullable=False),
        sa.Column("static_contact", sa.Text(), nullable=True),
        sa.Column("nat", sa.String(8), nullable=False),
        sa.Column("ring_timeout", sa.Integer(), nullable=True),
        sa.Column("max_calls", sa.Integer(), nullable=True),
        sa.Column("class_of_service", sa.String(16), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("number", name="uq_users_number"),
        sa.CheckConstraint("nat IN ('auto', 'yes', 'no')", name="ck_users_nat"),
        sa.CheckConstraint(
            "class_of_service IN ('none', 'local', 'national', 'international')",
            name="ck_users_class_of_service",
        ),
    )

    op.create_table(
        "bindings",
        sa.Column("aor", sa.Text(), nullable=False),
        sa.Column("contact_uri", sa.Text(), nullable=False),
        sa.Column("user_number", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.Text(), nullable=True),
        sa.Column("reg_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("cseq", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("received_transport", sa.String(8), nullable=False),
        sa.Column("received_host", sa.String(255), nullable=False),
        sa.Column("received_port", sa.Integer(), nullable=False),
        sa.Column("local_transport", sa.String(8), nullable=False),
        sa.Column("local_host", sa.String(255), nullable=False),
        sa.Column("local_port", sa.Integer(), nullable=False),
        sa.Column("connection_hint", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("q", sa.Double(), nullable=True),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("aor", "contact_uri", name="pk_bindings"),
    )
    op.create_index("ix_bindings_user_number", "bindings", ["user_number"])
    op.create_index("ix_bindings_expires_at", "bindings", ["expires_at"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.CheckConstraint("role IN ('admin', 'read-only')", name="ck_api_tokens_role"),
    )

    op.create_table(
        "bans",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("until", sa.Double(), nullable=True),
        sa.Column("hit_count", sa.Integer(), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("offence_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_bans"),
    )
    op.create_index("ix_bans_until", "bans", ["until"])

    op.create_table(
        "address_lists",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_address_lists"),
        sa.UniqueConstraint("kind", "network", name="uq_address_lists_kind_network"),
        sa.CheckConstraint("kind IN ('whitelist', 'blacklist')", name="ck_address_lists_kind"),
    )

    op.create_table(
        "security_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_security_events"),
    )
    op.create_index("ix_security_events_at", "security_events", ["at"])

    op.create_table(
        "settings",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_index("ix_security_events_at", table_name="security_events")
    op.drop_table("security_events")
    op.drop_table("address_lists")
    op.drop_index("ix_bans_until", table_name="bans")
    op.drop_table("bans")
    op.drop_table("api_tokens")
    op.drop_index("ix_bindings_expires_at", table_name="bindings")
    op.drop_index("ix_bindings_user_number", table_name="bindings")
    op.drop_table("bindings")
    op.drop_table("users")
