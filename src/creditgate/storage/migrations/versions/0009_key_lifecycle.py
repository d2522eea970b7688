"""key lifecycle: expiry, rotation chain, per-key rate limit, metadata, coalesced last use

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rotated_from", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("lineage_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("metadata_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_used_ms", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_api_keys_team_id_lineage_id"), ["team_id", "lineage_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_team_id_lineage_id"))
        batch_op.drop_column("last_used_ms")
        batch_op.drop_column("metadata_json")
        batch_op.drop_column("lineage_id")
        batch_op.drop_column("rotated_from")
        batch_op.drop_column("rpm")
        batch_op.drop_column("expires_ms")
