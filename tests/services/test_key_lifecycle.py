"""Key lifecycle (issue #11): expiry, rotation (one cap across the chain), metadata, own rate
limit, and the coalesced last use (N uses -> one flush -> the latest instant, never backwards)."""

from __future__ import annotations

from typing import Any

import pytest

from creditgate.domain.errors import Conflict, InsufficientCredits, InvalidInput
from creditgate.domain.instants import MS_PER_HOUR
from creditgate.domain.keys import MAX_METADATA_BYTES, metadata_problem
from creditgate.services import keys
from creditgate.storage import key_rows as key_rows
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import charge, team_with_key


def test_a_key_is_live_until_its_expiry_exclusive(db: Database, clock: Clock) -> None:
    team, _, _ = team_with_key(db, clock.now)
    created = keys.create_key(db, team.id, clock.now, name="temp", expires_at=clock.now + 1000)
    assert created.key.expires_at == clock.now + 1000
    assert created.key.live_at(clock.now + 999)
    assert not created.key.live_at(clock.now + 1000)
    assert created.key.active  # expiry is not revocation: the ledger still settles its holds
    found = keys.authenticate(db, created.secret)
    assert found is not None and found[0].expires_at == clock.now + 1000


def test_an_expiry_in_the_past_is_refused_at_creation_and_update(
    db: Database, clock: Clock
) -> None:
    team, _, key_id = team_with_key(db, clock.now)
    with pytest.raises(InvalidInput, match="expiresAt must lie in the future"):
        keys.create_key(db, team.id, clock.now, name="x", expires_at=clock.now)
    with pytest.raises(InvalidInput, match="expiresAt must lie in the future"):
        keys.update_key(db, key_id, clock.now, expires_at=clock.now - 1)
    assert keys.update_key(db, key_id, clock.now, expires_at=None).expires_at is None


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ([], "metadata must be a JSON object"),
        ({"": "x"}, "metadata keys must be strings of 1 to 64 characters"),
        ({"k" * 65: "x"}, "metadata keys must be strings of 1 to 64 characters"),
        ({"a": {"nested": 1}}, "metadata values must be strings, numbers, booleans or null"),
        ({"a": [1]}, "metadata values must be strings, numbers, booleans or null"),
        ({"a": "x\x00"}, "metadata must not contain NUL characters"),
        ({"a": float("nan")}, "metadata numbers must be finite"),
        ({f"k{i}": i for i in range(33)}, "metadata may have at most 32 entries"),
        ({"a": "é" * 1100}, f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON"),
    ],
)
def test_metadata_beyond_its_bounds_is_refused(metadata: Any, problem: str) -> None:
    assert metadata_problem(metadata) == problem


def test_metadata_is_set_at_creation_replaced_by_an_update_and_cleared(
    db: Database, clock: Clock
) -> None:
    team, _, _ = team_with_key(db, clock.now)
    meta = {"owner": "ci", "ticket": 12, "prod": False, "note": None}
    created = keys.create_key(db, team.id, clock.now, name="m", metadata=meta)
    assert dict(created.key.metadata or {}) == meta
    listed = {k.id: k for k in keys.list_keys(db, team.id)}[created.key.id]
    assert dict(listed.metadata or {}) == meta
    updated = keys.update_key(db, created.key.id, clock.now, metadata={"owner": "ops"})
    assert dict(updated.metadata or {}) == {"owner": "ops"}
    assert keys.update_key(db, created.key.id, clock.now, metadata=None).metadata is None
    with pytest.raises(InvalidInput, match="metadata may have at most 32 entries"):
        keys.update_key(db, created.key.id, clock.now, metadata={str(i): i for i in range(40)})


def test_rpm_is_bounded_and_clearable(db: Database, clock: Clock) -> None:
    team, _, key_id = team_with_key(db, clock.now)
    for bad in (0, -1, 1_000_001, True):
        with pytest.raises(InvalidInput, match="rpm must be a whole number from 1 to 1000000"):
            keys.create_key(db, team.id, clock.now, name=f"r{bad}", rpm=bad)
    assert keys.update_key(db, key_id, clock.now, rpm=30).rpm == 30
    assert keys.update_key(db, key_id, clock.now, rpm=None).rpm is None


def test_rotation_gives_the_name_and_settings_to_a_new_key_and_expires_the_old_one(
    db: Database, clock: Clock
) -> None:
    team, old_secret, old_id = team_with_key(db, clock.now, key_name="backend", cap=100)
    keys.update_key(db, old_id, clock.now, rpm=60, metadata={"owner": "ci"})
    rotation = keys.rotate_key(db, old_id, clock.now, overlap_seconds=300)
    new, old = rotation.new.key, rotation.old
    assert rotation.new.secret != old_secret and rotation.new.secret.startswith("fc-")
    assert (new.name, new.cap, new.rpm, dict(new.metadata or {})) == (
        "backend",
        100,
        60,
        {"owner": "ci"},
    )
    assert new.rotated_from == old_id and new.lineage == old_id == old.lineage
    assert old.name == f"backend (rotated {old_id[-8:]})"
    assert old.expires_at == clock.now + 300_000 and old.revoked_at is None
    # both work during the overlap; from its end only the new one
    assert old.live_at(clock.now + 299_999) and not old.live_at(clock.now + 300_000)
    assert keys.authenticate(db, old_secret) is not None  # still found: it stays in history
    names = sorted(k.name for k in keys.list_keys(db, team.id))
    assert names == ["backend", old.name]


def test_a_key_is_rotated_once_and_only_while_live(db: Database, clock: Clock) -> None:
    _, _, old_id = team_with_key(db, clock.now)
    rotation = keys.rotate_key(db, old_id, clock.now, overlap_seconds=60)
    with pytest.raises(Conflict, match="was already rotated"):
        keys.rotate_key(db, old_id, clock.now, overlap_seconds=60)
    clock.advance(60_000)
    with pytest.raises(Conflict, match="is revoked or expired"):
        keys.rotate_key(db, old_id, clock.now)
    again = keys.rotate_key(db, rotation.new.key.id, clock.now)  # the chain goes on
    assert again.new.key.lineage == old_id and again.new.key.name == "default"
    assert again.old.expires_at == clock.now  # no overlap: the old one ends at once
    with pytest.raises(InvalidInput, match="overlapSeconds must be a whole number"):
        keys.rotate_key(db, again.new.key.id, clock.now, overlap_seconds=-1)


def test_a_rotation_does_not_give_a_fresh_cap(db: Database, clock: Clock) -> None:
    """The cap counts the usage of every key of the chain in the period: 70 spent by the old
    key leave 30 for the new one, and the old one (during the overlap) sees the new one's."""
    _, old_secret, old_id = team_with_key(db, clock.now, cap=100)
    charge(db, old_secret, 70, clock.now)
    rotation = keys.rotate_key(db, old_id, clock.now, overlap_seconds=3600)
    new_secret = rotation.new.secret
    with pytest.raises(InsufficientCredits):
        charge(db, new_secret, 31, clock.now)
    charge(db, new_secret, 20, clock.now)
    with pytest.raises(InsufficientCredits):
        charge(db, old_secret, 11, clock.now)
    charge(db, old_secret, 10, clock.now)
    with pytest.raises(InsufficientCredits):
        charge(db, new_secret, 1, clock.now)


def test_a_key_without_a_rotation_keeps_its_own_cap(db: Database, clock: Clock) -> None:
    team, secret, _ = team_with_key(db, clock.now, cap=50)
    other = keys.create_key(db, team.id, clock.now, name="other", cap=50)
    charge(db, secret, 50, clock.now)
    charge(db, other.secret, 50, clock.now)  # another key's usage is not its


def test_many_uses_are_one_flush_of_the_latest_instant(db: Database, clock: Clock) -> None:
    team, _, key_id = team_with_key(db, clock.now)
    other = keys.create_key(db, team.id, clock.now, name="other").key.id
    uses = keys.KeyUses()
    for i in range(100):
        uses.record(key_id, clock.now + i)
    uses.record(other, clock.now + 7)
    assert uses.flush(db) == 2
    assert uses.flush(db) == 0  # nothing new: no statement at all
    by_id = {k.id: k.last_used_at for k in keys.list_keys(db, team.id)}
    assert by_id == {key_id: clock.now + 99, other: clock.now + 7}


def test_two_processes_never_move_a_last_use_backwards(
    db: Database, database_url: str, clock: Clock
) -> None:
    _, _, key_id = team_with_key(db, clock.now)
    other = Database(database_url)
    try:
        late, early = keys.KeyUses(), keys.KeyUses()
        late.record(key_id, clock.now + 5 * MS_PER_HOUR)
        early.record(key_id, clock.now + MS_PER_HOUR)
        assert late.flush(db) == 1
        assert early.flush(other) == 0  # its older instant changes nothing
        with db.read() as conn:
            found = key_rows.get_key(conn, key_id)
        assert found is not None and found.last_used_at == clock.now + 5 * MS_PER_HOUR
    finally:
        other.dispose()


def test_a_flush_of_more_keys_than_a_batch_writes_them_all(db: Database, clock: Clock) -> None:
    team, _, _ = team_with_key(db, clock.now)
    ids = [
        keys.create_key(db, team.id, clock.now, name=f"k{i}").key.id
        for i in range(key_rows.TOUCH_BATCH + 3)
    ]
    uses = keys.KeyUses()
    for n, key_id in enumerate(ids):
        uses.record(key_id, clock.now + n)
    assert uses.flush(db) == len(ids)
    found = {k.id: k.last_used_at for k in keys.list_keys(db, team.id)}
    assert all(found[key_id] == clock.now + n for n, key_id in enumerate(ids))
