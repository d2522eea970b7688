"""page concurrency: the slots a hold takes (pages in flight), a job's pages waiting, its cancel

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slots", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("waiting_pages", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("cancelled_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("cancelled_ms")
        batch_op.drop_column("waiting_pages")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_column("slots")
