"""indexes for listing and exporting a team's entries and reservations in time order

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_entries_team_id_occurred_ms_movement_id_line"),
        "entries",
        ["team_id", "occurred_ms", "movement_id", "line"],
    )
    op.create_index(
        op.f("ix_reservations_team_id_created_ms_id"),
        "reservations",
        ["team_id", "created_ms", "id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reservations_team_id_created_ms_id"), table_name="reservations")
    op.drop_index(op.f("ix_entries_team_id_occurred_ms_movement_id_line"), table_name="entries")
