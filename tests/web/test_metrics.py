"""`/metrics`: no token, no team data, and every figure exactly what happened — credits charged
once committed (never on a replay or a rollback), open holds and pool use read at scrape time,
the webhook dispatcher's registration point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.testclient import TestClient

from creditgate.domain.errors import InsufficientCredits
from creditgate.services import ledger, metrics, reservations
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer, team_with_key
from tests.metrics_support import Series, parse, requests, value

CHARGED = "creditgate_credits_charged_total"


def read(client: TestClient) -> dict[Series, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


@pytest.fixture
def no_backlog() -> Iterator[None]:
    yield
    metrics.register_webhook_backlog(None)


def test_metrics_need_no_token_and_name_no_team_key_or_path_sent(
    client: TestClient, db: Database, clock: Clock
) -> None:
    team, key, key_id = team_with_key(db, clock.now, name="acme-secret-name")
    admin = bearer(ADMIN_TOKEN)
    before = read(client)
    assert client.get(f"/admin/teams/{team.id}", headers=admin).status_code == 200
    assert client.get(f"/admin/teams/{team.id}x", headers=admin).status_code == 404
    assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    assert client.get(f"/nothing/{team.id}").status_code == 404
    assert client.request("BREW", f"/admin/teams/{team.id}").status_code in (404, 405)
    text = client.get("/metrics").text
    # The key's hint (fc-...abcd), not its last four characters alone: four hex digits can
    # occur by chance inside a timestamp's digits (it did, now and then).
    hint = f"fc-...{key[-4:]}"
    for secret in (team.id, "acme-secret-name", key, hint, key_id, ADMIN_TOKEN, "/nothing"):
        assert secret not in text, secret
    after = parse(text)
    route = "/admin/teams/{team_id}"
    assert requests(after, route, 200, "admitted") - requests(before, route, 200, "admitted") == 1
    assert requests(after, route, 404, "not_found") - requests(before, route, 404, "not_found") == 1
    unknown = requests(after, "(no route)", 404, "not_found")
    assert unknown - requests(before, "(no route)", 404, "not_found") == 1
    methods = {dict(labels)["method"] for name, labels in after if "method" in dict(labels)}
    assert methods <= {"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "other"}


def test_credits_charged_count_commits_only_never_replays(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _team, key, _ = team_with_key(db, clock.now)
    before = value(read(client), CHARGED)
    request = ledger.ChargeRequest(key, 7, idempotency_key="evt-1")
    ledger.charge(db, request, clock.now)
    assert ledger.charge(db, request, clock.now).replayed  # the same charge, answered again
    ledger.charge(db, ledger.ChargeRequest(key, 0), clock.now)  # records work, costs nothing
    with pytest.raises(InsufficientCredits):
        ledger.charge(db, ledger.ChargeRequest(key, 10**6), clock.now)  # refused
    held = reservations.reserve(db, reservations.ReserveRequest(key, 10), clock.now)
    reservations.settle(db, held.id, 4, clock.now, final=False)
    reservations.settle(db, held.id, 6, clock.now, final=True, as_total=True)  # 2 more
    assert value(read(client), CHARGED) - before == 7 + 4 + 2


def test_an_action_after_commit_never_runs_on_a_rollback(db: Database) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.after_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("the batch failed")
    with db.transaction() as tx:
        tx.after_commit(lambda: ran.append("committed"))
        assert ran == []  # not before the commit
    assert ran == ["committed"]


def test_open_holds_are_read_from_the_database_at_scrape_time(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    _other, other_key, _ = team_with_key(db, clock.now, name="other")
    first = reservations.reserve(db, reservations.ReserveRequest(key, 10, slots=3), clock.now)
    reservations.reserve(db, reservations.ReserveRequest(other_key, 25, ttl_ms=1000), clock.now)
    reservations.settle(db, first.id, 4, clock.now, final=False)
    samples = read(client)
    assert value(samples, "creditgate_reservations_open") == 2
    assert value(samples, "creditgate_reservations_held_credits") == 6 + 25
    assert value(samples, "creditgate_page_slots_in_use") == 3 + 1
    clock.advance(2000)  # the second expired: it holds nothing any more
    samples = read(client)
    assert value(samples, "creditgate_reservations_open") == 1
    assert value(samples, "creditgate_reservations_held_credits") == 6
    assert value(samples, "creditgate_page_slots_in_use") == 3
    reservations.release(db, first.id, clock.now)
    assert value(read(client), "creditgate_reservations_open") == 0


def test_pool_use_is_read_from_this_processes_pools(db: Database) -> None:
    expected = {"main"} if db.is_sqlite else {"main", "reads", "writes"}
    assert set(db.pools()) == expected
    with db.read():
        samples = parse(_text(metrics.registry_for_scrape(db)))
        assert value(samples, "creditgate_db_pool_checked_out", pool="main") == 1
    samples = parse(_text(metrics.registry_for_scrape(db)))
    for pool in expected:
        assert value(samples, "creditgate_db_pool_checked_out", pool=pool) == 0
        assert value(samples, "creditgate_db_pool_size", pool=pool) == db.pools()[pool].size()
    if not db.is_sqlite:
        # CREDITGATE_DB_CONNECTIONS' default 20, split: main 8, reads 7, writes 5
        sizes = {pool: value(samples, "creditgate_db_pool_size", pool=pool) for pool in expected}
        assert sizes == {"main": 8, "reads": 7, "writes": 5}


def _text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_the_webhook_dispatcher_reports_its_backlog_and_failures(
    client: TestClient, no_backlog: None
) -> None:
    """The app registers the outbox's count at start; a fake reader then stands for it."""
    seen: list[Database] = []

    def backlog(db: Database) -> int:
        seen.append(db)
        return 7

    before = read(client)
    assert value(before, "creditgate_webhook_backlog") == 0  # the outbox's own: empty
    metrics.register_webhook_backlog(backlog)
    metrics.webhook_delivered()
    metrics.webhook_failed("timeout")
    metrics.webhook_failed("timeout")
    metrics.webhook_failed("https://hooks.example.com/t/SECRET")  # never a label
    after = read(client)
    assert value(after, "creditgate_webhook_backlog") == 7
    assert seen and seen[-1] is client.app.state.ctx.db  # type: ignore[attr-defined]
    deliveries = "creditgate_webhook_deliveries_total"
    expected = (("delivered", "", 1), ("failed", "timeout", 2), ("failed", "other", 1))
    for outcome, reason, n in expected:
        moved = value(after, deliveries, outcome=outcome, reason=reason)
        assert moved - value(before, deliveries, outcome=outcome, reason=reason) == n
    assert "SECRET" not in client.get("/metrics").text

    def broken(db: Database) -> int:
        raise RuntimeError("the outbox is unreadable")

    metrics.register_webhook_backlog(broken)
    assert ("creditgate_webhook_backlog", frozenset()) not in read(client)  # left out, still 200
