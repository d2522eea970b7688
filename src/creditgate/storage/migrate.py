"""Schema migrations (Alembic). Only `creditgate migrate` and `serve` create or upgrade a
database (migrate_schema); every other command requires one at this creditgate's schema
(require_schema) and changes nothing else.

Alembic is imported only to migrate or to explain a schema that is not this creditgate's: a
command on a database at head reads its revision with one query (`creditgate usage` must start
at once; tests/storage/test_migrations.py checks the two ways agree)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert, inspect, select, text

from creditgate import __version__
from creditgate.domain.instants import now
from creditgate.domain.plans import DEFAULT_PLANS
from creditgate.storage.database import Database, DatabaseUnusable
from creditgate.storage.tables import metadata, plans

if TYPE_CHECKING:
    from alembic.config import Config

OWN_TABLES = frozenset(metadata.tables) | {"alembic_version"}

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


def current_revision(db: Database) -> str | None:
    """The database's schema revision (alembic_version), None without one."""
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision(db: Database) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def shipped_head() -> str:
    """The newest revision this creditgate ships, from the migration files' names (NNNN_...):
    no Alembic needed. Revisions are numbered in order, one file each."""
    numbers = [p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers)


def _known(db: Database, revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config(db)).get_revision(revision) is not None
    except CommandError:
        return False


def _unknown_revision(db: Database, revision: str) -> DatabaseUnusable:
    return DatabaseUnusable(
        f"the database at {db.shown_url} is at schema revision {revision}, which creditgate "
        f"{__version__} does not know (a newer creditgate migrated it): use that version, or "
        "check the URL"
    )


def foreign_tables(db: Database) -> list[str]:
    """Tables of the schema creditgate would use that are not creditgate's."""
    with db.engine.connect() as conn:
        return sorted(set(inspect(conn).get_table_names()) - OWN_TABLES)


def require_schema(db: Database) -> None:
    """Refuse, in one line saying what to do, a database without this creditgate's schema:
    none yet, an older revision, or one this creditgate does not know. Writes nothing."""
    revision = current_revision(db)
    if revision == shipped_head():
        return
    head = head_revision(db)
    if revision is None:
        others = foreign_tables(db)
        if others:
            raise DatabaseUnusable(
                f"the database at {db.shown_url} has no creditgate schema and holds other "
                f"tables ({_names(others)}): check the URL, or run `creditgate migrate "
                "--allow-foreign-tables` to add creditgate's tables beside them"
            )
        raise DatabaseUnusable(
            f"the database at {db.shown_url} has no creditgate schema: run `creditgate migrate` "
            "to create it, or check the URL"
        )
    if not _known(db, revision):
        raise _unknown_revision(db, revision)
    raise DatabaseUnusable(
        f"the database at {db.shown_url} is at schema revision {revision} and this creditgate "
        f"needs {head}: run `creditgate migrate`"
    )


def migrate_schema(db: Database, *, allow_foreign_tables: bool = False) -> None:
    """Create or upgrade the schema (`creditgate migrate`, `serve`). Refused: a revision this
    creditgate does not know, and, unless allowed, a database without creditgate's schema
    that holds other tables (another application's, or a maintenance database)."""
    revision = current_revision(db)
    if revision is not None and not _known(db, revision):
        raise _unknown_revision(db, revision)
    if revision is None and not allow_foreign_tables:
        others = foreign_tables(db)
        if others:
            raise DatabaseUnusable(
                f"the database at {db.shown_url} holds {len(others)} other table(s) "
                f"({_names(others)}) and no creditgate schema: give creditgate a database of "
                "its own, or --allow-foreign-tables to add its tables beside them"
            )
    upgrade(db)


def _names(tables: list[str], most: int = 5) -> str:
    return ", ".join(tables[:most]) + (", ..." if len(tables) > most else "")


def upgrade(db: Database) -> None:
    """Bring the schema to head, then seed the plan catalog if the database has no plans."""
    if current_revision(db) != head_revision(db):
        from alembic import command

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
