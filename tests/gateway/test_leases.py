"""The gateway on credit leases (CREDITGATE_LEASES): a leased scrape is its team's to read
back, and a revoked key's lease is given back (the multi-process guarantees:
tests/guarantees/test_leases.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from creditgate.app.asgi import create_app
from creditgate.domain.instants import now
from creditgate.domain.leases import IDLE_MS, LEASE
from creditgate.services import keys
from creditgate.storage.database import Database
from creditgate.storage.tables import reservations
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import ADMIN_TOKEN
from tests.gateway.conftest import UPSTREAM_KEY, Fake, Gateway, known_without_a_probe
from tests.helpers import bearer, team_with_key
from tests.server import app_in_thread


@pytest.fixture
def leased(db: Database, fake: Fake) -> Iterator[Gateway]:
    ctx = AppContext(
        db=db,
        admin_token=ADMIN_TOKEN,
        upstream=Upstream(fake.url, UPSTREAM_KEY, timeout_s=1.0),
        use_leases=True,
    )
    known_without_a_probe(ctx, fake)
    with app_in_thread(create_app(ctx)) as url:
        yield Gateway(url, ctx)


def open_leases(db: Database) -> int:
    query = select(func.count()).where(
        reservations.c.endpoint == LEASE, reservations.c.status == "open"
    )
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def test_a_leased_scrape_is_read_back_by_its_team_only(
    db: Database, fake: Fake, leased: Gateway
) -> None:
    _, key, _ = team_with_key(db, now())
    _, other, _ = team_with_key(db, now(), name="other")
    answer = httpx.post(
        f"{leased.url}/v2/scrape", json={"url": "https://e.com"}, headers=bearer(key)
    )
    assert answer.status_code == 200
    assert open_leases(db) == 1  # admitted on a lease: no hold of its own
    scrape_id = answer.json()["data"]["metadata"]["scrapeId"]
    mine = httpx.get(f"{leased.url}/v2/scrape/{scrape_id}", headers=bearer(key))
    theirs = httpx.get(f"{leased.url}/v2/scrape/{scrape_id}", headers=bearer(other))
    assert (mine.status_code, theirs.status_code) == (200, 404)


def test_a_revoked_keys_lease_is_given_back_and_admits_nothing(
    db: Database, fake: Fake, leased: Gateway
) -> None:
    _, key, key_id = team_with_key(db, now())
    scrape = {"url": "https://e.com"}
    first = httpx.post(f"{leased.url}/v2/scrape", json=scrape, headers=bearer(key))
    assert first.status_code == 200
    keys.revoke_key(db, key_id, now())
    refused = httpx.post(f"{leased.url}/v2/scrape", json=scrape, headers=bearer(key))
    assert refused.status_code == 401
    time.sleep(IDLE_MS / 1000 + 0.5)  # idle: given back by the sweep
    assert open_leases(db) == 0
    assert len([r for r in fake.state.requests if r[1] == "/v2/scrape"]) == 1
