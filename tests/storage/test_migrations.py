"""The migrations produce exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from creditgate.storage.database import Database
from creditgate.storage.migrate import current_revision, head_revision, upgrade
from creditgate.storage.tables import metadata


def test_migrated_schema_matches_the_tables_module(db: Database) -> None:
    assert current_revision(db) == head_revision(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_edited_plans(db: Database) -> None:
    from creditgate.domain.instants import now
    from creditgate.domain.plans import Plan
    from creditgate.services import plans

    plans.update_plan(db, Plan("hobby", 4000, "month", 5, 100, 20), now())
    upgrade(db)
    assert plans.get_plan(db, "hobby").credits == 4000
