"""Big histories for the benches: a team on a plan of its own, its 50 keys, and the SQL pieces
that write millions of charges in one statement (a number series joined to the keys)."""

from __future__ import annotations

from sqlalchemy import Connection, text

from creditgate.domain.instants import Instant, now
from creditgate.domain.plans import Plan
from creditgate.domain.teams import Team
from creditgate.services import keys, plans, teams
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade

KEYS = 50


def big_team(db: Database, plan_id: str, anchor: Instant) -> tuple[Team, list[str]]:
    """A fresh team "big" on `plan_id` (made again, limits out of the way) and its key ids."""
    upgrade(db)
    with db.write() as conn:
        conn.execute(text("DELETE FROM plans WHERE id = :p"), {"p": plan_id})
    plans.create_plan(db, Plan(plan_id, 10**9, "month", 100, 10**6, 10**6), now())
    team = teams.create_team(db, "big", now(), plan_id=plan_id, anchor=anchor)
    key_ids = [keys.create_key(db, team.id, now(), name=f"key-{i:02d}").key.id for i in range(KEYS)]
    return team, key_ids


def numbers(db: Database) -> str:
    """SQL of a column `i` from 0 to :n - 1."""
    if db.dialect == "postgresql":
        return "SELECT generate_series(0, :n - 1) AS i"
    return (
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1)"
        " SELECT i FROM s"
    )


def key_table(conn: Connection, key_ids: list[str]) -> None:
    """A temporary table `bench_keys (n, id)`: charge i goes to key i % 50."""
    conn.execute(text("CREATE TEMP TABLE bench_keys (n INTEGER, id VARCHAR(36))"))
    conn.execute(
        text("INSERT INTO bench_keys VALUES (:n, :id)"),
        [{"n": i, "id": k} for i, k in enumerate(key_ids)],
    )


def analyze(db: Database) -> None:
    """Fresh planner statistics after a bulk load (PostgreSQL)."""
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
