"""The hot read's snapshot: kept in memory on SQLite, and never served once it is out of date.

Each test writes through a second Database on the same file (another process, as far as the
first can tell) or lets the clock pass an instant where the rows read differently, and checks
the values the next snapshot reports.
"""

from __future__ import annotations

from creditgate.domain.instants import MS_PER_HOUR
from creditgate.domain.keys import hash_key
from creditgate.services import keys, ledger, reservations
from creditgate.storage import snapshots
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import charge, team_with_key


def _snap(db: Database, key: str, now: int) -> snapshots.Snapshot:
    found = snapshots.snapshot(db, hash_key(key), now)
    assert found is not None
    return found


def test_a_snapshot_is_kept_while_nothing_changes_on_sqlite(db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    first = _snap(db, key, clock.now)
    again = _snap(db, key, clock.advance(1000))
    assert again.live_balance == first.live_balance == 3000
    assert (again is first) == db.is_sqlite  # PostgreSQL reads every time


def test_a_charge_by_another_process_shows_in_the_next_snapshot(
    db: Database, database_url: str, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    assert _snap(db, key, clock.now).live_balance == 3000
    other = Database(database_url)
    try:
        charge(other, key, 120, clock.now)
        assert _snap(db, key, clock.now).live_balance == 2880
        charge(db, key, 80, clock.now)  # and by this process, through its own write connection
        assert _snap(db, key, clock.now).live_balance == 2800
    finally:
        other.dispose()


def test_a_key_revoked_by_another_process_is_revoked_in_the_next_snapshot(
    db: Database, database_url: str, clock: Clock
) -> None:
    _, key, key_id = team_with_key(db, clock.now)
    assert _snap(db, key, clock.now).key.active
    other = Database(database_url)
    try:
        keys.revoke_key(other, key_id, clock.now)
    finally:
        other.dispose()
    assert not _snap(db, key, clock.now).key.active


def test_a_hold_expiring_frees_its_credits_without_any_write(db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    reservations.reserve(db, reservations.ReserveRequest(key, 500, ttl_ms=MS_PER_HOUR), clock.now)
    held = _snap(db, key, clock.now)
    assert (held.held, held.running) == (500, 1)
    assert _snap(db, key, clock.advance(MS_PER_HOUR - 1)).held == 500
    after = _snap(db, key, clock.advance(1))  # the hold's expiry: nothing was written
    assert (after.held, after.running, after.live_balance) == (0, 0, 3000)


def test_a_pack_expiring_leaves_the_snapshot_on_time(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    ledger.grant(
        db, ledger.GrantRequest(team.id, 100, kind="pack", expires_at=clock.now + 5000), clock.now
    )
    assert _snap(db, key, clock.now).live_balance == 3100
    assert _snap(db, key, clock.advance(4999)).live_balance == 3100
    assert _snap(db, key, clock.advance(1)).live_balance == 3000


def test_a_clock_set_back_reads_again(db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    ledger.grant(
        db, ledger.GrantRequest(team.id, 100, kind="pack", expires_at=clock.now + 5000), clock.now
    )
    assert _snap(db, key, clock.now + 6000).live_balance == 3000
    assert _snap(db, key, clock.now).live_balance == 3100


def test_a_kept_snapshot_ends_at_its_keys_expiry(db: Database, clock: Clock) -> None:
    """The key's expiry is one of the instants a kept snapshot cannot outlive: up to it the
    snapshot is served from memory (SQLite), from it on it is read again and the key is no
    longer live."""
    team, _, _ = team_with_key(db, clock.now)
    created = keys.create_key(db, team.id, clock.now, name="temp", expires_at=clock.now + 5_000)
    first = _snap(db, created.secret, clock.now)
    assert first.key.expires_at == clock.now + 5_000 and first.key.live_at(clock.now)
    before = _snap(db, created.secret, clock.now + 4_999)
    assert (before is first) == db.is_sqlite
    at = _snap(db, created.secret, clock.now + 5_000)
    assert at is not first
    assert not at.key.live_at(clock.now + 5_000)
