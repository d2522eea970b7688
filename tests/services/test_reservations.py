"""Reservations: hold, settle (partially, repeatedly, beyond the hold), release, expire."""

from __future__ import annotations

import pytest

from creditgate.domain.errors import (
    ConcurrencyLimited,
    Conflict,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidInput,
)
from creditgate.services import account, keys, ledger, reservations, teams
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import charge, team_with_key

MINUTE = 60_000


def available(db: Database, team_id: str, now: int) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), now).remaining


def test_a_reservation_holds_credits_from_other_spending(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    held = reservations.reserve(db, ReserveRequest(key, 2500, endpoint="crawl"), clock.now)
    assert (held.status, held.holding, held.remaining_credits) == ("open", 2500, 500)
    with pytest.raises(InsufficientCredits) as caught:
        charge(db, key, 501, clock.now)
    assert caught.value.remaining == 500
    with pytest.raises(InsufficientCredits):
        reservations.reserve(db, ReserveRequest(key, 501), clock.now)
    assert available(db, team.id, clock.now) == 500


def test_settling_page_by_page_then_finally_releases_the_rest(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    held = reservations.reserve(db, ReserveRequest(key, 500, endpoint="crawl"), clock.now)
    for _ in range(3):
        view = reservations.settle(db, held.id, 10, clock.now, final=False)
    assert (view.settled, view.holding, view.status) == (30, 470, "open")
    assert available(db, team.id, clock.now) == 3000 - 500
    done = reservations.settle(db, held.id, 4, clock.now, final=True)
    assert (done.settled, done.holding, done.status) == (34, 0, "settled")
    assert available(db, team.id, clock.now) == 3000 - 34
    with pytest.raises(Conflict):
        reservations.settle(db, held.id, 1, clock.now, final=True)


def test_a_settlement_beyond_the_hold_goes_below_zero_and_says_so(
    db: Database, clock: Clock
) -> None:
    _team, key, _ = team_with_key(db, clock.now)
    charge(db, key, 2900, clock.now)
    held = reservations.reserve(db, ReserveRequest(key, 100), clock.now)
    done = reservations.settle(db, held.id, 130, clock.now, final=True)
    assert (done.overage, done.remaining_credits) == (30, -30)
    with pytest.raises(InsufficientCredits):
        charge(db, key, 1, clock.now)


def test_release_frees_everything_and_is_harmless_twice(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    held = reservations.reserve(db, ReserveRequest(key, 1000), clock.now)
    assert reservations.release(db, held.id, clock.now).status == "released"
    assert reservations.release(db, held.id, clock.now).status == "released"
    assert available(db, team.id, clock.now) == 3000


def test_an_expired_reservation_holds_nothing_and_is_recorded_as_expired(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    held = reservations.reserve(db, ReserveRequest(key, 1000, ttl_ms=5 * MINUTE), clock.now)
    clock.advance(5 * MINUTE)
    assert available(db, team.id, clock.now) == 3000  # before any sweep
    assert reservations.expire_due(db, clock.now) == 1
    view = reservations.get(db, held.id, clock.now)
    assert (view.status, view.holding) == ("expired", 0)
    with pytest.raises(Conflict):
        reservations.settle(db, held.id, 1, clock.now, final=True)


def test_reservations_respect_the_key_cap_with_open_holds(db: Database, clock: Clock) -> None:
    team, _, _ = team_with_key(db, clock.now)
    capped = keys.create_key(db, team.id, clock.now, name="capped", cap=100)
    charge(db, capped.secret, 30, clock.now)
    reservations.reserve(db, ReserveRequest(capped.secret, 50), clock.now)
    with pytest.raises(InsufficientCredits) as caught:
        reservations.reserve(db, ReserveRequest(capped.secret, 21), clock.now)
    assert (caught.value.reason, caught.value.remaining) == ("key cap", 20)
    with pytest.raises(InsufficientCredits):
        charge(db, capped.secret, 21, clock.now)


def test_check_answers_without_writing(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    reservations.reserve(db, ReserveRequest(key, 2000), clock.now)
    yes = reservations.check(db, key, 1000, clock.now)
    no = reservations.check(db, key, 1001, clock.now)
    assert (yes.allowed, yes.remaining) == (True, 1000)
    assert (no.allowed, no.remaining, no.limited_by) == (False, 1000, "team")
    assert available(db, team.id, clock.now) == 1000


def test_reserve_and_settle_are_idempotent(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    request = ReserveRequest(key, 300, idempotency_key="job-1")
    first = reservations.reserve(db, request, clock.now)
    again = reservations.reserve(db, request, clock.now)
    assert again.replayed and again.id == first.id
    reservations.settle(db, first.id, 20, clock.now, final=False, idempotency_key="page-1")
    replay = reservations.settle(db, first.id, 20, clock.now, final=False, idempotency_key="page-1")
    assert replay.replayed and replay.settled == 20
    with pytest.raises(IdempotencyConflict):
        reservations.settle(db, first.id, 21, clock.now, final=False, idempotency_key="page-1")
    assert available(db, team.id, clock.now) == 3000 - 300


def test_open_reservations_are_the_teams_jobs(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now, plan="standard")
    first = reservations.reserve(
        db, ReserveRequest(key, 10, endpoint="crawl", target="https://a.example"), clock.now
    )
    clock.advance(1000)
    second = reservations.reserve(db, ReserveRequest(key, 10, endpoint="batch_scrape"), clock.now)
    status = account.queue_status(db, teams.get_team(db, team.id), clock.now)
    assert (status.active, status.waiting, status.max_concurrency) == (2, 0, 50)
    reservations.settle(db, first.id, 4, clock.now, final=True)
    status = account.queue_status(db, teams.get_team(db, team.id), clock.now)
    assert status.active == 1
    jobs = account.activity(db, teams.get_team(db, team.id), clock.now, None, 10, None)
    assert [(r.id, r.endpoint) for r in jobs.rows] == [
        (second.id, "batch_scrape"),
        (first.id, "crawl"),
    ]
    usage = account.history(db, teams.get_team(db, team.id), True, clock.now)
    assert [(r.key_name, r.credits) for r in usage] == [("default", 4)]


def test_a_revoked_key_cannot_reserve(db: Database, clock: Clock) -> None:
    _, key, key_id = team_with_key(db, clock.now)
    keys.revoke_key(db, key_id, clock.now)
    with pytest.raises(Conflict):
        reservations.reserve(db, ReserveRequest(key, 1), clock.now)


def test_grants_still_count_under_open_holds_after_a_period_change(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    clock.set("2026-08-31T12:00:00Z")  # a long job that crosses into the next period
    held = reservations.reserve(db, ReserveRequest(key, 2000, ttl_ms=7 * 24 * 3600_000), clock.now)
    ledger.grant(db, ledger.GrantRequest(team.id, 100), clock.now)
    clock.set("2026-09-01T00:00:00Z")
    assert available(db, team.id, clock.now) == 3000 + 100 - 2000
    assert reservations.settle(db, held.id, 50, clock.now, final=True).remaining_credits == 3050


def test_a_hold_takes_the_slots_it_asks_for_or_those_left_and_none_when_none_are(
    db: Database, clock: Clock
) -> None:
    """Plan concurrency counts pages: a hold asking 3 slots of 5 takes 3; the next asking 5
    takes the 2 left; the next is refused (429) and changes nothing. Every way a hold closes
    (settled, released, expired) gives its slots back."""
    team, key, _ = team_with_key(db, clock.now)  # hobby: concurrency 5
    crawl = reservations.reserve(db, ReserveRequest(key, 10, slots=3), clock.now, max_open=5)
    batch = reservations.reserve(db, ReserveRequest(key, 10, slots=5), clock.now, max_open=5)
    assert (crawl.slots, batch.slots) == (3, 2)
    with pytest.raises(ConcurrencyLimited) as refused:
        reservations.reserve(db, ReserveRequest(key, 10), clock.now, max_open=5)
    assert refused.value.details == {"running": 5, "maxConcurrency": 5}
    assert available(db, team.id, clock.now) == 3000 - 20  # the refusal held nothing
    assert active(db, team.id, clock.now) == 5
    reservations.settle(db, crawl.id, 4, clock.now, final=True)
    assert active(db, team.id, clock.now) == 2
    short = reservations.reserve(
        db, ReserveRequest(key, 1, slots=5, ttl_ms=1_000), clock.now, max_open=5
    )
    assert short.slots == 3
    reservations.release(db, batch.id, clock.now)
    assert active(db, team.id, clock.now) == 3
    clock.advance(1_001)  # the short hold expires: its slots are free again at once
    assert active(db, team.id, clock.now) == 0
    again = reservations.reserve(db, ReserveRequest(key, 1, slots=5), clock.now, max_open=5)
    assert again.slots == 5


def test_without_a_concurrency_bound_a_hold_takes_what_it_asks(db: Database, clock: Clock) -> None:
    """The metering API's holds (no max_open) take their slots without a bound; a request
    for no slot, or more than any plan could have, is refused as bad input."""
    team, key, _ = team_with_key(db, clock.now)
    held = reservations.reserve(db, ReserveRequest(key, 1, slots=7), clock.now)
    assert held.slots == 7 and active(db, team.id, clock.now) == 7
    for slots in (0, -1, 10_000_001):
        with pytest.raises(InvalidInput):
            reservations.reserve(db, ReserveRequest(key, 1, slots=slots), clock.now)
    assert active(db, team.id, clock.now) == 7


def active(db: Database, team_id: str, now: int) -> int:
    return account.queue_status(db, teams.get_team(db, team_id), now).active
