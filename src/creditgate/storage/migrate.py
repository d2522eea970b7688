"""Schema migrations (Alembic). A new database is created and brought to head on first start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select

from creditgate.domain.instants import now
from creditgate.domain.plans import DEFAULT_PLANS
from creditgate.storage.database import Database
from creditgate.storage.tables import plans

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def upgrade(db: Database) -> None:
    """Bring the schema to head, then seed the plan catalog if the database has no plans."""
    if current_revision(db) != head_revision(db):
        config = alembic_config(db)
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    seed_plans(db)


def seed_plans(db: Database) -> None:
    with db.write() as conn:
        if conn.execute(select(plans.c.id).limit(1)).first() is not None:
            return
        at = now()
        conn.execute(
            insert(plans),
            [
                {
                    "id": p.id,
                    "credits": p.credits,
                    "interval": p.interval,
                    "concurrency": p.concurrency,
                    "scrape_rpm": p.scrape_rpm,
                    "crawl_rpm": p.crawl_rpm,
                    "created_ms": at,
                    "updated_ms": at,
                }
                for p in DEFAULT_PLANS
            ],
        )
