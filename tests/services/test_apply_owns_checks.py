"""`ledger.apply` owns what every operation shares: the idempotency record (replay, refusal of
other content, and the record of the first answer) and the checks of the key an operation
spends through (not revoked, its team not suspended). An operation that does none of it itself
gets all of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from creditgate.domain.book import Book
from creditgate.domain.errors import Conflict, IdempotencyConflict, NotFound, TeamSuspended
from creditgate.domain.instants import parse_iso
from creditgate.services import keys, ledger, teams
from creditgate.storage.book import Wants
from creditgate.storage.database import Database
from creditgate.storage.tx import Tx
from tests.helpers import team_with_key

NOW = parse_iso("2026-03-10T12:00:00Z")


@dataclass(frozen=True)
class Given:
    id: str
    credits: int
    replayed: bool = False


class Bonus:
    """A bare operation: grants credits to its key's team, checking nothing, recording nothing."""

    def __init__(self, team_id: str, key_id: str, credits: int, idem: str | None) -> None:
        self.team_id, self.key_id, self.credits, self.idem = team_id, key_id, credits, idem
        self.now = NOW
        self.applied = 0

    def find(self, tx: Tx) -> str:
        return self.team_id

    def wants(self) -> Wants:
        return Wants(keys=(self.key_id,), idempotency=() if self.idem is None else (self.idem,))

    def idempotency(self) -> tuple[str, str] | None:
        if self.idem is None:
            return None
        return self.idem, ledger.request_hash("bonus", {"credits": self.credits})

    def replayed(self, stored: dict[str, Any]) -> Given:
        return Given(**{**stored, "replayed": True})

    def spends_through(self) -> str:
        return self.key_id

    def apply(self, book: Book) -> Given:
        self.applied += 1
        return Given(book.grant("pack", self.credits, None, None), self.credits)

    def movement(self, result: Given) -> str:
        return result.id


def test_apply_records_and_replays_an_operations_answer_it_never_recorded(db: Database) -> None:
    team, _secret, key_id = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    first = Bonus(team.id, key_id, 7, "b-1")
    made: Given = ledger.run(db, first)
    again = Bonus(team.id, key_id, 7, "b-1")
    replay: Given = ledger.run(db, again)
    assert (replay, again.applied) == (Given(made.id, 7, replayed=True), 0)
    with pytest.raises(IdempotencyConflict):
        ledger.run(db, Bonus(team.id, key_id, 8, "b-1"))
    unguarded = Bonus(team.id, key_id, 7, None)
    assert ledger.run(db, unguarded).id != made.id and unguarded.applied == 1


def test_apply_refuses_a_revoked_key_and_a_suspended_team_before_the_operation_runs(
    db: Database,
) -> None:
    team, _secret, key_id = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    guarded = Bonus(team.id, key_id, 5, "before")
    ledger.run(db, guarded)
    keys.revoke_key(db, key_id, NOW)
    revoked = Bonus(team.id, key_id, 5, None)
    with pytest.raises(Conflict, match="revoked"):
        ledger.run(db, revoked)
    assert revoked.applied == 0
    # a replay comes before the key's check (check 3 before check 4), as for a charge
    assert ledger.run(db, Bonus(team.id, key_id, 5, "before")).replayed is True

    other, _s, live_key = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01", name="b")
    teams.update_team(db, other.id, NOW, suspended=True)
    suspended = Bonus(other.id, live_key, 5, None)
    with pytest.raises(TeamSuspended):
        ledger.run(db, suspended)
    assert suspended.applied == 0
    foreign = Bonus(team.id, live_key, 5, None)  # a key of another team
    with pytest.raises(NotFound):
        ledger.run(db, foreign)
    assert foreign.applied == 0
