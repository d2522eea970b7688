"""a charge's job (or scrape) id is found by team: a scrape admitted on a credit lease is
known by its charge, not by a hold of its own (domain/leases.py)

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_entries_team_id_job_id"), "entries", ["team_id", "job_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_entries_team_id_job_id"), table_name="entries")
