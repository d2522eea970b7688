"""INSERT ... ON CONFLICT DO UPDATE for counters, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def add_to_counters(
    conn: Connection, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """Add each row's credits to the counter at its keys, creating missing rows, in one
    executemany."""
    if rows:
        conn.execute(_counter_upsert(conn.dialect.name, table, keys), rows)


@cache
def _counter_upsert(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: Any = make(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={"credits": table.c.credits + statement.excluded.credits}
    )


def upsert_row(conn: Connection, table: Table, keys: tuple[str, ...], row: dict[str, Any]) -> None:
    """Insert the row, or overwrite its non-key columns if one exists at `keys`."""
    make = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement: Any = make(table).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={k: v for k, v in row.items() if k not in keys}
    )
    conn.execute(statement)
