"""Alembic environment: runs on the connection creditgate hands it (see storage/migrate.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from creditgate.storage.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
else:  # plain `alembic` command line, e.g. for `alembic revision --autogenerate`
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
