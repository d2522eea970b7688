"""usage per key and day: a rollup for the dashboard's daily chart and keys' last use

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MS_PER_DAY = 86_400_000


def upgrade() -> None:
    op.create_table(
        "usage_by_key_day",
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("period_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("day_ms", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_usage_by_key_day_team_id_teams")
        ),
        sa.PrimaryKeyConstraint(
            "team_id", "period_start_ms", "key_id", "day_ms", name=op.f("pk_usage_by_key_day")
        ),
    )
    # The charges already recorded, summed once (the write path keeps it from now on).
    op.execute(
        f"""
INSERT INTO usage_by_key_day (team_id, period_start_ms, key_id, day_ms, credits, last_ms)
SELECT team_id, period_start_ms, key_id, occurred_ms - occurred_ms % {MS_PER_DAY},
       -SUM(amount), MAX(occurred_ms)
FROM entries
WHERE kind = 'charge' AND key_id IS NOT NULL AND period_start_ms IS NOT NULL
GROUP BY team_id, period_start_ms, key_id, occurred_ms - occurred_ms % {MS_PER_DAY}"""
    )


def downgrade() -> None:
    op.drop_table("usage_by_key_day")
