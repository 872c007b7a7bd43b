"""Web admin accounts (issue 7): user name + argon2 hash, separate from SIP users.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-28

Frozen in time: do not import `sipbox.storage.schema` here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_admins",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_web_admins"),
        sa.UniqueConstraint("username", name="uq_web_admins_username"),
    )


def downgrade() -> None:
    op.drop_table("web_admins")
