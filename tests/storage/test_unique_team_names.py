"""Migration 0017: team names become unique; the duplicates a database already holds are
renamed deterministically (the oldest keeps the name), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import insert, select, text

from creditgate.domain.errors import Conflict, InvalidInput
from creditgate.domain.instants import now
from creditgate.services import teams
from creditgate.storage.database import Database
from creditgate.storage.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from creditgate.storage.migrate import shipped_head as head_by_file_name
from creditgate.storage.tables import teams as team_rows


def _team(db: Database, team_id: str, name: str) -> None:
    with db.write() as conn:
        conn.execute(
            insert(team_rows).values(
                id=team_id,
                name=name,
                plan_id="free",
                anchor_ms=0,
                suspended=False,
                allow_overage=False,
                created_ms=0,
            )
        )


def test_the_migration_renames_duplicates_deterministically_and_then_refuses_them(
    db: Database,
) -> None:
    config = alembic_config(db)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0016")  # the revision before 0017
    try:
        ids = [f"00000000-0000-7000-8000-00000000000{i}" for i in range(6)]
        # given out of id order: the oldest id keeps the name, whatever the insert order
        for team_id, name in (
            (ids[3], "acme"),
            (ids[0], "acme"),
            (ids[1], "acme (2)"),  # taken already: the suffix skips it
            (ids[4], "acme"),
            (ids[2], "beta"),
            (ids[5], "x" * 200),
        ):
            _team(db, team_id, name)
        _team(db, "00000000-0000-7000-8000-000000000009", "x" * 200)
        upgrade(db)
        assert current_revision(db) == head_revision(db) == head_by_file_name()
        with db.read() as conn:
            names = dict(conn.execute(select(team_rows.c.id, team_rows.c.name)).all())
        assert names == {
            ids[0]: "acme",
            ids[1]: "acme (2)",
            ids[2]: "beta",
            ids[3]: "acme (3)",
            ids[4]: "acme (4)",
            ids[5]: "x" * 200,
            "00000000-0000-7000-8000-000000000009": "x" * 196 + " (2)",
        }
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # the index holds
            _team(db, "00000000-0000-7000-8000-00000000000a", "beta")
    finally:
        with db.write() as conn:
            conn.execute(text("DELETE FROM teams"))
        upgrade(db)


def test_a_taken_name_is_refused_on_create_and_rename(db: Database) -> None:
    first = teams.create_team(db, "acme", now())
    other = teams.create_team(db, "beta", now())
    with pytest.raises(Conflict, match="A team named acme exists already"):
        teams.create_team(db, " acme ", now())  # names are stripped first
    with pytest.raises(Conflict, match="A team named acme exists already"):
        teams.update_team(db, other.id, now(), name="acme")
    assert teams.update_team(db, first.id, now(), name="acme").name == "acme"  # its own
    with pytest.raises(InvalidInput, match="form of a team id"):
        teams.create_team(db, first.id, now())
    assert teams.get_team(db, "beta").id == other.id == teams.get_team(db, other.id).id
    assert sorted(t.name for t in teams.list_teams(db)) == ["acme", "beta"]
