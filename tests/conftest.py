"""Fixtures shared by the suite.

`db` runs every test that uses it twice: on SQLite and on PostgreSQL (127.0.0.1:5432, or
CREDITGATE_TEST_POSTGRES_URL). Under CI=true an unreachable PostgreSQL fails the run instead of
skipping. After each test that used `db`, `creditgate verify` must find the ledger consistent.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.domain.instants import Instant, parse_iso
from creditgate.services import audit
from creditgate.storage.database import Database
from creditgate.storage.migrate import seed_plans, upgrade
from creditgate.storage.tables import metadata
from creditgate.web.context import AppContext

POSTGRES_ADMIN_URL = os.environ.get(
    "CREDITGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def reachable_redis(url: str, *, flush: bool = False) -> str:
    """`url` if Redis answers there (its database emptied with `flush`); otherwise the test
    fails under CI=true, and is skipped elsewhere."""
    import redis

    try:
        client = redis.Redis.from_url(url)
        if flush:
            client.flushdb()
        else:
            client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis is not reachable at {url}: {exc}")
        pytest.skip(f"Redis is not reachable at {url}")
    return url


ADMIN_TOKEN = "test-admin-token"
START = parse_iso("2026-08-01T00:00:00Z")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--big", action="store_true", help="run the stress tests at full size")


# What no log line may ever hold: an API key, the test admin token, the test upstream key.
SECRETS = re.compile(r"fc-[0-9a-f]{32}|test-admin-token|fc-upstream-own-key")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[None]:
    """Every log line of the whole suite — this process's and every server it started — is
    checked for keys and tokens at the end (ledger promise 8: no key is logged)."""
    from tests.server import SERVER_LOGS

    lines = _Lines()
    lines.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    ours = logging.getLogger("creditgate")
    level = ours.level
    ours.setLevel(logging.INFO)  # request lines are INFO: produce them, to check them
    logging.getLogger().addHandler(lines)
    yield
    logging.getLogger().removeHandler(lines)
    ours.setLevel(level)
    texts = lines.lines + [p.read_text(errors="replace") for p in SERVER_LOGS.glob("*.log")]
    leaked = [m.group(0) for text in texts for m in SECRETS.finditer(text)]
    assert leaked == [], f"secrets in the logs: {sorted(set(leaked))[:5]}"


@dataclass
class Clock:
    now: Instant = START

    def __call__(self) -> Instant:
        return self.now

    def set(self, iso: str) -> Instant:
        self.now = parse_iso(iso)
        return self.now

    def advance(self, ms: int) -> Instant:
        self.now += ms
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "creditgate.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"creditgate_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    upgrade(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(db: Database) -> None:
    names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
    with db.write() as conn:
        conn.execute(text(f"TRUNCATE {names}"))
    seed_plans(db)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "creditgate.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
    else:
        url: str = request.getfixturevalue("postgres_url")
        db = Database(url, connections=3)
        _truncate(db)
        db.dispose()
        yield url


@pytest.fixture
def db(database_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    if "corrupts_ledger" not in request.keywords:
        report = audit.verify(database)
        assert report.ok, [d.detail for d in report.differences]
    database.dispose()


@pytest.fixture
def ctx(db: Database, clock: Clock) -> AppContext:
    return AppContext(db=db, admin_token=ADMIN_TOKEN, clock=clock)


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    """Its every admin answer is checked against the OpenAPI document (tests/openapi_support)."""
    from tests.openapi_support import checker

    with TestClient(create_app(ctx), raise_server_exceptions=False) as test_client:
        test_client.event_hooks["response"].append(checker().hook)
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    """The same client, with the admin token."""
    client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    return client


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    """PostgreSQL only, for tests of several processes sharing one database."""
    db = Database(postgres_url)
    _truncate(db)
    yield db
    report = audit.verify(db)
    assert report.ok, [d.detail for d in report.differences]
    db.dispose()
