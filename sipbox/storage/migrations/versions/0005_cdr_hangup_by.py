"""CDR `hangup_by` widened to 16 characters: `session-timer` (RFC 4028 expiry, issue 4).

Revision ID: 0005
Revises: 0004
Create Date: 2025-12-02

Frozen in time: do not import `sipbox.storage.schema` here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column type in place (it rebuilds the table).
    with op.batch_alter_table("cdrs") as batch:
        batch.alter_column(
            "hangup_by", existing_type=sa.String(8), type_=sa.String(16), existing_nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("cdrs") as batch:
        batch.alter_column(
            "hangup_by", existing_type=sa.String(16), type_=sa.String(8), existing_nullable=True
        )
