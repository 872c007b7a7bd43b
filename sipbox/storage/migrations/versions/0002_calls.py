"""Call records (cdrs) and ringing/hunting groups (groups, group_members).

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-27

Frozen in time: do not import `sipbox.storage.schema` here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cdrs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("start_time", sa.Double(), nullable=False),
        sa.Column("answer_time", sa.Double(), nullable=True),
        sa.Column("end_time", sa.Double(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("billable", sa.Integer(), nullable=True),
        sa.Column("caller_number", sa.String(64), nullable=False),
        sa.Column("caller_display", sa.String(255), nullable=True),
        sa.Column("caller_source", sa.String(128), nullable=True),
        sa.Column("caller_transport", sa.String(8), nullable=True),
        sa.Column("dialed_number", sa.String(128), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("disposition", sa.String(16), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("hangup_by", sa.String(8), nullable=True),
        sa.Column("a_call_id", sa.Text(), nullable=False),
        sa.Column("b_call_id", sa.Text(), nullable=True),
        sa.Column("line", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cdrs"),
        sa.CheckConstraint(
            "disposition IS NULL OR disposition IN ('answered', 'busy', 'no-answer', "
            "'cancelled', 'failed', 'rejected', 'interrupted')",
            name="ck_cdrs_disposition",
        ),
    )
    op.create_index("ix_cdrs_start_time", "cdrs", ["start_time"])
    op.create_index("ix_cdrs_end_time", "cdrs", ["end_time"])
    op.create_index("ix_cdrs_caller_number", "cdrs", ["caller_number"])
    op.create_index("ix_cdrs_dialed_number", "cdrs", ["dialed_number"])

    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("ring_timeout", sa.Integer(), nullable=True),
        sa.Column("no_answer_destination", sa.String(64), nullable=True),
        sa.Column("completed_elsewhere", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.UniqueConstraint("number", name="uq_groups_number"),
        sa.CheckConstraint(
            "strategy IN ('ring-all', 'sequential', 'circular')", name="ck_groups_strategy"
        ),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("member_number", sa.String(64), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("group_id", "position", name="pk_group_members"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name="fk_group_members_group_id_groups",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_group_members_member_number", "group_members", ["member_number"])


def downgrade() -> None:
    op.drop_index("ix_group_members_member_number", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_index("ix_cdrs_dialed_number", table_name="cdrs")
    op.drop_index("ix_cdrs_caller_number", table_name="cdrs")
    op.drop_index("ix_cdrs_end_time", table_name="cdrs")
    op.drop_index("ix_cdrs_start_time", table_name="cdrs")
    op.drop_table("cdrs")
