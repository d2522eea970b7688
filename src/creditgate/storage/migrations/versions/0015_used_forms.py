"""dashboard forms acted on: a form's one-time id, refused when submitted again

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_forms",
        sa.Column("form_id", sa.String(64), primary_key=True),
        sa.Column("used_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_used_forms_used_ms", "used_forms", ["used_ms"])


def downgrade() -> None:
    op.drop_index("ix_used_forms_used_ms", table_name="used_forms")
    op.drop_table("used_forms")
