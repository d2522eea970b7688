"""Keys at rest: the database holds a key's hash and hint, never the key itself."""

from __future__ import annotations

from sqlalchemy import select

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from creditgate.storage.tables import metadata
from tests.helpers import team_with_key


def test_no_table_holds_a_key_in_clear(db: Database) -> None:
    _, key, _ = team_with_key(db, now())
    with db.read() as conn:
        values = [
            str(value)
            for table in metadata.sorted_tables
            for row in conn.execute(select(table))
            for value in row
        ]
    assert values  # the team, its key, its grant are there
    assert [v for v in values if key in v or key[3:] in v] == []
