"""automatic top-ups: rules per team, with how many they granted this period

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topup_rules",
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("below", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("expires_days", sa.Integer(), nullable=True),
        sa.Column("max_per_period", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("period_start_ms", sa.BigInteger(), nullable=True),
        sa.Column("granted", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_topup_rules_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_topup_rules")),
    )


def downgrade() -> None:
    op.drop_table("topup_rules")
