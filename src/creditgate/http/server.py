"""Building the app from settings: what `creditgate serve` runs in each worker process."""

from __future__ import annotations

import logging

from starlette.applications import Starlette

from creditgate.gateway.limits import Limiter, MemoryLimiter, RedisLimiter
from creditgate.gateway.routes import parse_extra_routes, table_with
from creditgate.gateway.upstream import Upstream
from creditgate.http.app import create_app
from creditgate.http.context import AppContext
from creditgate.settings import Settings
from creditgate.storage.database import Database
from creditgate.storage.migrate import migrate_schema


def app_from_settings(settings: Settings) -> Starlette:
    # No line the server logs names its thread or process (requestlog.py's formats): its
    # records need not look them up, a cost paid on every request line.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    db = Database(settings.database_url, timeout_seconds=settings.db_timeout_seconds or None)
    upstream = (
        Upstream(settings.upstream_url, settings.upstream_secret())
        if settings.upstream_url
        else None
    )
    limiter: Limiter = RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()
    return create_app(
        AppContext(
            db=db,
            admin_token=settings.admin_secret(),
            account_rpm=settings.account_rpm,
            sweep_seconds=settings.sweep_seconds,
            upstream=upstream,
            limiter=limiter,
            queue_wait_seconds=settings.queue_wait_seconds,
            follow_seconds=settings.follow_seconds,
            routes=table_with(parse_extra_routes(settings.routes)),
            public_url=settings.public_url,
            metering=settings.metering,
            cors_origins=tuple(o.strip() for o in settings.cors_origins.split(",") if o.strip()),
        )
    )


def app_from_env() -> Starlette:
    """Uvicorn's factory: settings from the environment (the CLI exports its flags there)."""
    return app_from_settings(Settings())


def prepare(settings: Settings, *, allow_foreign_tables: bool = False) -> None:
    """Create and migrate the database once, before any worker starts."""
    table_with(parse_extra_routes(settings.routes))  # refuse a bad route table before serving
    db = Database(settings.database_url)
    try:
        migrate_schema(db, allow_foreign_tables=allow_foreign_tables)
    finally:
        db.dispose()
