"""What `creditgate serve` runs: prepare the database once, then uvicorn, whose workers each
build the app from settings (the environment, where the CLI exports its flags)."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from creditgate.app.asgi import create_app
from creditgate.domain.price_table import parse_extra_prices
from creditgate.domain.routes import parse_extra_routes, table_with
from creditgate.settings import Settings
from creditgate.storage.database import Database
from creditgate.storage.migrate import migrate_schema
from creditgate.web.context import AppContext
from creditgate.web.fairshare import FairShares, TeamGate
from creditgate.web.limits import Limiter, MemoryLimiter, RedisLimiter
from creditgate.web.requestlog import logging_config
from creditgate.web.upstream import Upstream

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def app_from_settings(settings: Settings) -> Starlette:
    # No line the server logs names its thread or process (requestlog.py's formats): its
    # records need not look them up, a cost paid on every request line.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    db = Database(
        settings.database_url,
        connections=settings.db_connections,
        timeout_seconds=settings.db_timeout_seconds or None,
    )
    upstream = (
        Upstream(
            settings.upstream_url,
            settings.upstream_secret(),
            connections=settings.upstream_connections,
            team_connections=settings.team_upstream_connections,
        )
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
            queue_room=settings.queue_room,
            follow_seconds=settings.follow_seconds,
            page_grace_seconds=settings.page_grace_seconds,
            webhook_seconds=settings.webhook_seconds,
            routes=table_with(parse_extra_routes(settings.routes)),
            prices=parse_extra_prices(settings.prices),
            public_url=settings.public_url,
            upgrade_url=settings.upgrade_url,
            metering=settings.metering,
            use_leases=settings.leases,
            cors_origins=tuple(o.strip() for o in settings.cors_origins.split(",") if o.strip()),
            session_secret=settings.session_key() or secrets.token_urlsafe(32),
            shares=FairShares(reads=TeamGate(settings.team_reads_in_flight)),
        )
    )


def app_from_env() -> Starlette:
    """Uvicorn's factory: settings from the environment (the CLI exports its flags there)."""
    return app_from_settings(Settings())


def prepare(settings: Settings, *, allow_foreign_tables: bool = False) -> str | None:
    """Create and migrate the database once, before any worker starts. A warning for the
    operator when this host's workers alone may open more PostgreSQL connections than the
    server lets in (else None)."""
    table_with(parse_extra_routes(settings.routes))  # refuse a bad route table before serving
    parse_extra_prices(settings.prices)  # and a bad price table
    db = Database(settings.database_url, connections=3)  # before the workers: one at a time
    try:
        migrate_schema(db, allow_foreign_tables=allow_foreign_tables)
        room = db.server_room()
    finally:
        db.dispose()
    needed = settings.workers * settings.db_connections
    if room is None or needed <= room:
        return None
    return (
        f"warning: {settings.workers} worker(s) x CREDITGATE_DB_CONNECTIONS "
        f"{settings.db_connections} = {needed} connections, more than the {room} the PostgreSQL "
        "server lets in (max_connections less its reserved ones), before any other process: "
        "lower CREDITGATE_DB_CONNECTIONS or raise max_connections (docs/deploy.md)"
    )


def run(settings: Settings) -> None:
    """Serve until stopped: `settings.workers` processes, each building its app from the
    environment (app_from_env)."""
    created = _metrics_directory(settings.workers)
    try:
        _run(settings)
    finally:
        if created is not None:
            os.environ.pop(MULTIPROC_DIR, None)
            shutil.rmtree(created, ignore_errors=True)


def _metrics_directory(workers: int) -> str | None:
    """Metrics under several workers: prometheus_client's multiprocess mode, where each worker
    writes its counters to files of PROMETHEUS_MULTIPROC_DIR and a scrape of any worker sums
    them (services/metrics.py). The workers are spawned, so they import prometheus_client
    after this sets the variable. Without one given, a private directory is made here and
    removed at the end (the directory made, else None); one given is emptied of its metric files
    at start, since files of an earlier run would be summed too."""
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    if workers <= 1:
        return None
    made = tempfile.mkdtemp(prefix="creditgate-metrics-")
    os.environ[MULTIPROC_DIR] = made
    return made


def _run(settings: Settings) -> None:
    if settings.session_key() is None:
        # Neither a session secret nor an admin token: one random secret for this run, shared
        # by every worker through the environment they inherit (sessions end with the server).
        os.environ["CREDITGATE_SESSION_SECRET"] = secrets.token_urlsafe(32)
    uvicorn.run(
        f"{__name__}:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level, settings.log_format),
        access_log=False,  # creditgate logs each request itself (web/requestlog.py)
        # The peer is the client unless it is a proxy the operator named: anyone else could
        # claim any address in X-Forwarded-For.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )
