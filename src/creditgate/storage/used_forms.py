"""Rows of the dashboard forms already acted on, by their one-time id."""

from __future__ import annotations

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from creditgate.domain.instants import Instant
from creditgate.storage.tables import used_forms


def claim(conn: Connection, form_id: str, at: Instant) -> bool:
    """Record the form as used; False when it already was (a double or replayed submit). One
    statement, so two submits racing each other cannot both claim it."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(used_forms)
        .values(form_id=form_id, used_ms=at)
        .on_conflict_do_nothing(index_elements=["form_id"])
        .returning(used_forms.c.form_id)
    )
    # A row back: inserted. (rowcount is not to be trusted here: psycopg reports 1 either way.)
    return conn.execute(statement).first() is not None


def forget_before(conn: Connection, before: Instant) -> int:
    """Drop the ids used before `before`: a form that old is refused by its signature anyway."""
    return int(conn.execute(delete(used_forms).where(used_forms.c.used_ms < before)).rowcount)
