"""Grants, charges, caps, expiry and idempotency against a real database (SQLite and PostgreSQL).

After every test the `db` fixture runs `creditgate verify` and fails the test on any difference.
"""

from __future__ import annotations

import pytest

from creditgate.domain.errors import (
    Conflict,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    TeamSuspended,
)
from creditgate.domain.instants import parse_iso
from creditgate.services import account, keys, ledger, teams
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import charge, team_with_key


def remaining(db: Database, team_id: str, now: int) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), now).remaining


def test_a_new_team_gets_its_plans_credits_for_the_first_period(db: Database, clock: Clock) -> None:
    team, _, _ = team_with_key(db, clock.now, plan="hobby")
    usage = account.credit_usage(db, team, clock.now)
    assert (usage.remaining, usage.plan_credits) == (3000, 3000)
    assert usage.period_start == clock.now
    assert usage.period_end == parse_iso("2026-09-01T00:00:00Z")


def test_charges_reduce_the_balance_and_report_what_remains(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    assert charge(db, key, 40, clock.now).remaining_credits == 2960
    assert charge(db, key, 60, clock.now).remaining_credits == 2900
    assert remaining(db, team.id, clock.now) == 2900


def test_no_overdraft_a_charge_that_does_not_fit_is_refused_and_changes_nothing(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    charge(db, key, 2990, clock.now)
    with pytest.raises(InsufficientCredits) as caught:
        charge(db, key, 11, clock.now)
    assert (caught.value.required, caught.value.remaining) == (11, 10)
    assert remaining(db, team.id, clock.now) == 10
    assert charge(db, key, 10, clock.now).remaining_credits == 0


def test_unused_plan_credits_expire_at_the_period_end_and_new_ones_arrive(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    charge(db, key, 1000, clock.now)
    clock.set("2026-09-01T00:00:00Z")  # exactly the boundary: the new period
    usage = account.credit_usage(db, team, clock.now)
    assert usage.remaining == 3000  # 2000 unused did not roll over
    assert usage.period_start == clock.now
    rows = account.history(db, teams.get_team(db, team.id), False, clock.now)
    assert [(r.credits) for r in rows] == [1000, 0]


def test_a_pack_survives_the_period_change_and_is_spent_after_plan_credits(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    ledger.grant(db, ledger.GrantRequest(team.id, 500, "pack"), clock.now)
    usage = account.credit_usage(db, team, clock.now)
    assert (usage.remaining, usage.plan_credits) == (3500, 3000)
    charge(db, key, 3200, clock.now)  # 3000 from the plan, then 200 from the pack
    clock.set("2026-09-15T00:00:00Z")
    assert remaining(db, team.id, clock.now) == 3000 + 300


def test_a_pack_with_an_expiry_is_spent_before_plan_credits_that_expire_later(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    ledger.grant(
        db,
        ledger.GrantRequest(team.id, 100, "coupon", expires_at=parse_iso("2026-08-10")),
        clock.now,
    )
    charge(db, key, 150, clock.now)
    clock.set("2026-08-10T00:00:00Z")  # the coupon is used up, so nothing of it expires
    assert remaining(db, team.id, clock.now) == 3000 - 50


def test_a_key_cap_limits_the_key_per_period_even_with_team_credits_left(
    db: Database, clock: Clock
) -> None:
    team, _, _ = team_with_key(db, clock.now)
    capped = keys.create_key(db, team.id, clock.now, name="intern", cap=100)
    charge(db, capped.secret, 80, clock.now)
    with pytest.raises(InsufficientCredits) as caught:
        charge(db, capped.secret, 21, clock.now)
    assert (caught.value.reason, caught.value.remaining) == ("key cap", 20)
    clock.set("2026-09-01T00:00:00Z")
    assert charge(db, capped.secret, 100, clock.now).credits == 100  # a new period, a new cap


def test_exactly_once_the_same_charge_sent_twice_counts_once(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    first = charge(db, key, 7, clock.now, idem="evt-1")
    clock.advance(1000)
    again = charge(db, key, 7, clock.now, idem="evt-1")
    assert again.replayed and not first.replayed
    assert (again.id, again.remaining_credits) == (first.id, 2993)
    assert remaining(db, team.id, clock.now) == 2993


def test_the_same_idempotency_key_with_different_content_is_refused(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    charge(db, key, 7, clock.now, idem="evt-1")
    with pytest.raises(IdempotencyConflict):
        charge(db, key, 8, clock.now, idem="evt-1")
    with pytest.raises(IdempotencyConflict):  # a grant cannot reuse a charge's key either
        ledger.grant(db, ledger.GrantRequest(team.id, 7, idempotency_key="evt-1"), clock.now)
    assert remaining(db, team.id, clock.now) == 2993


def test_a_refused_charge_does_not_burn_its_idempotency_key(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    with pytest.raises(InsufficientCredits):
        charge(db, key, 5000, clock.now, idem="big")
    ledger.grant(db, ledger.GrantRequest(team.id, 3000), clock.now)
    assert charge(db, key, 5000, clock.now, idem="big").remaining_credits == 1000


def test_a_grant_retried_with_its_idempotency_key_credits_once(db: Database, clock: Clock) -> None:
    team, _, _ = team_with_key(db, clock.now)
    request = ledger.GrantRequest(team.id, 250, "topup", idempotency_key="stripe-evt-9")
    first = ledger.grant(db, request, clock.now)
    second = ledger.grant(db, request, clock.now)
    assert second.replayed and second.id == first.id
    assert remaining(db, team.id, clock.now) == 3250


def test_backdated_usage_counts_in_its_own_period(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now, anchor="2026-06-01T00:00:00Z")
    charge(db, key, 100, clock.now, at="2026-06-15T00:00:00Z")
    rows = account.history(db, teams.get_team(db, team.id), False, clock.now)
    assert [(r.start, r.credits) for r in rows] == [
        (parse_iso("2026-06-01T00:00:00Z"), 100),
        (parse_iso("2026-07-01T00:00:00Z"), 0),
        (parse_iso("2026-08-01T00:00:00Z"), 0),
    ]
    # It spent June's expired credits, not the current period's.
    assert remaining(db, team.id, clock.now) == 3000


def test_a_late_charge_cannot_spend_more_than_its_period_had(db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now, anchor="2026-07-01T00:00:00Z")
    charge(db, key, 2900, clock.now, at="2026-07-20T00:00:00Z")
    with pytest.raises(InsufficientCredits) as caught:
        charge(db, key, 101, clock.now, at="2026-07-21T00:00:00Z")
    assert caught.value.remaining == 100


def test_a_charge_exactly_on_a_boundary_belongs_to_the_new_period(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now, anchor="2026-07-01T00:00:00Z")
    result = charge(db, key, 5, clock.now, at="2026-08-01T00:00:00Z")
    assert result.period_start == parse_iso("2026-08-01T00:00:00Z")
    assert remaining(db, team.id, clock.now) == 2995


def test_time_limits_future_and_before_the_first_period_are_refused(
    db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    assert charge(db, key, 1, clock.now, at="2026-08-01T00:05:00Z").credits == 1  # skew is fine
    with pytest.raises(InvalidInput, match="future"):
        charge(db, key, 1, clock.now, at="2026-08-01T00:05:00.001Z")
    with pytest.raises(InvalidInput, match="before"):
        charge(db, key, 1, clock.now, at="2026-07-31T23:59:59Z")


def test_revoked_keys_and_suspended_teams_cannot_charge(db: Database, clock: Clock) -> None:
    team, key, key_id = team_with_key(db, clock.now)
    other = keys.create_key(db, team.id, clock.now, name="other")
    keys.revoke_key(db, key_id, clock.now)
    with pytest.raises(Conflict, match="revoked"):
        charge(db, key, 1, clock.now)
    teams.update_team(db, team.id, clock.now, suspended=True)
    with pytest.raises(TeamSuspended):
        charge(db, other.secret, 1, clock.now)


def test_unknown_keys_teams_and_bad_amounts_are_refused(db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    with pytest.raises(NotFound):
        charge(db, "fc-" + "0" * 32, 1, clock.now)
    with pytest.raises(NotFound):
        ledger.grant(db, ledger.GrantRequest("no-such-team", 1), clock.now)
    for bad in (-1, 10**13, 1.5, True):
        with pytest.raises(InvalidInput):
            charge(db, key, bad, clock.now)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ledger.grant(db, ledger.GrantRequest("x", 0), clock.now)


def test_overage_is_allowed_only_where_configured_and_reported(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now, allow_overage=True)
    result = charge(db, key, 3100, clock.now)
    assert (result.overage, result.remaining_credits) == (100, -100)
    clock.set("2026-09-01T00:00:00Z")
    assert remaining(db, team.id, clock.now) == 3000  # the new period starts clean


def test_an_idle_team_gets_every_missed_period_granted_and_expired(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    clock.set("2027-01-15T00:00:00Z")
    assert remaining(db, team.id, clock.now) == 3000
    charge(db, key, 5, clock.now, at="2026-10-10T00:00:00Z")  # October's credits still count
    assert remaining(db, team.id, clock.now) == 3000


def test_the_free_plan_grants_once_and_never_expires(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now, plan="free")
    charge(db, key, 100, clock.now)
    clock.set("2028-01-01T00:00:00Z")
    usage = account.credit_usage(db, team, clock.now)
    assert (usage.remaining, usage.plan_credits, usage.period_end) == (400, 500, None)
