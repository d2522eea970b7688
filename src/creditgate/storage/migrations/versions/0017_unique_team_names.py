"""team names are unique: a team is named by its id or its name

Existing duplicates are renamed first, deterministically: within each group of teams of the
same name, the oldest (the smallest id: ids are UUIDv7, so creation order) keeps the name and
each later one, in id order, becomes "NAME (2)", "NAME (3)", ... skipping any name already taken
(a name cut short if the suffix would pass the column's 200 characters). Nothing else changes:
ids, keys and the ledger stay as they were. The downgrade drops the index and keeps the names.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

MAX_NAME = 200


def upgrade() -> None:
    conn = op.get_bind()
    teams = sa.table("teams", sa.column("id", sa.String), sa.column("name", sa.String))
    rows = conn.execute(sa.select(teams.c.id, teams.c.name).order_by(teams.c.id)).all()
    taken = {name for _, name in rows}
    seen: set[str] = set()
    for team_id, name in rows:
        if name not in seen:
            seen.add(name)
            continue
        n = 2
        while (renamed := _numbered(name, n)) in taken:
            n += 1
        taken.add(renamed)
        conn.execute(sa.update(teams).where(teams.c.id == team_id).values(name=renamed))
    op.create_index("ix_teams_name", "teams", ["name"], unique=True)


def _numbered(name: str, n: int) -> str:
    suffix = f" ({n})"
    return name[: MAX_NAME - len(suffix)] + suffix


def downgrade() -> None:
    op.drop_index("ix_teams_name", table_name="teams")
