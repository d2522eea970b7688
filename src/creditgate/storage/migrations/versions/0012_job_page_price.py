"""a job's page price at the table and its pages at most: its hold follows its reports

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("page_price", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("page_limit", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("page_limit")
        batch_op.drop_column("page_price")
