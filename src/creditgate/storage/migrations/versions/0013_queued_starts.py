"""queued job starts: accepted at once, started upstream when the team's slots free; a job's
upstream id beside the client's

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_id", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_upstream_id"), ["upstream_id"], unique=True)
    op.create_table(
        "queued_starts",
        sa.Column("team_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("reservation_id", sa.String(length=36), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("api_version", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("hold_step", sa.BigInteger(), nullable=True),
        sa.Column("hold_ceiling", sa.BigInteger(), nullable=True),
        sa.Column("page_price", sa.Integer(), nullable=True),
        sa.Column("page_limit", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(length=2048), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(length=36), nullable=True),
        sa.Column("lease_ms", sa.BigInteger(), nullable=True),
        sa.Column("upstream_id", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_queued_starts_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", "id", name=op.f("pk_queued_starts")),
    )
    with op.batch_alter_table("queued_starts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queued_starts_id"), ["id"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_queued_starts_state_team_id_seq"), ["state", "team_id", "seq"]
        )


def downgrade() -> None:
    with op.batch_alter_table("queued_starts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queued_starts_state_team_id_seq"))
        batch_op.drop_index(batch_op.f("ix_queued_starts_id"))
    op.drop_table("queued_starts")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_upstream_id"))
        batch_op.drop_column("upstream_id")
