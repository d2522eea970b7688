"""Group commit (services/writer.py): a team's concurrent operations share one transaction, each
is answered only after that transaction committed, and one faulty operation fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from creditgate.domain.book import Book
from creditgate.domain.errors import InsufficientCredits
from creditgate.domain.instants import parse_iso
from creditgate.services import account, ledger, teams
from creditgate.services.ledger import Charge, ChargeRequest, ChargeResult
from creditgate.services.writer import Writer
from creditgate.storage.book import Wants
from creditgate.storage.database import Database, DeadlineExceeded
from creditgate.storage.tx import Tx
from tests.helpers import team_with_key

NOW = parse_iso("2026-03-10T12:00:00Z")
WAIT = 10.0


class Gate:
    """Wraps db.transaction: counts transactions and can hold one open, before its commit."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.applied = threading.Event()  # the held transaction has done its work
        self.release = threading.Event()
        self.hold_next = False
        original = db.transaction

        @contextmanager
        def counted() -> Iterator[Tx]:
            self.count += 1
            hold, self.hold_next = self.hold_next, False
            with original() as tx:
                yield tx
                if hold:  # the work is done and not committed yet
                    self.applied.set()
                    assert self.release.wait(WAIT)

        monkeypatch.setattr(db, "transaction", counted)


@pytest.fixture
def writer(db: Database) -> Iterator[Writer]:
    w = Writer(db, threads=1)
    w.start()
    yield w
    w.close()


def charge_op(key: str, credits: int) -> Charge:
    return Charge(ChargeRequest(key, credits, endpoint="scrape"), NOW)


def test_concurrent_operations_of_a_team_share_one_transaction(
    db: Database, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")  # 3,000 credits
    gate = Gate(db, monkeypatch)
    gate.hold_next = True
    first = writer.submit(charge_op(key, 100), team.id)
    assert gate.applied.wait(WAIT)
    queued = [writer.submit(charge_op(key, 100), team.id) for _ in range(35)]
    gate.release.set()
    assert first.result(WAIT).remaining_credits == 2_900
    results: list[ChargeResult | BaseException] = []
    for future in queued:
        exc = future.exception(WAIT)
        results.append(exc if exc is not None else future.result())
    # The 35 waited for the first batch and went together into the second transaction.
    assert gate.count == 2
    charged = [r for r in results if isinstance(r, ChargeResult)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(charged) == 29 and len(refused) == 6
    # Each was decided after the ones before it, as if alone: no overdraft, in order.
    assert [r.remaining_credits for r in charged] == list(range(2_800, -100, -100))
    assert all(r.remaining == 0 for r in refused)
    usage = account.credit_usage(db, teams.get_team(db, team.id), NOW)
    assert usage.remaining == 0


def test_nothing_is_answered_before_its_transaction_commits(
    db: Database, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    gate = Gate(db, monkeypatch)
    gate.hold_next = True
    future = writer.submit(charge_op(key, 40), team.id)
    assert gate.applied.wait(WAIT)
    assert not future.done()  # applied in memory and written, not committed: no answer yet
    # and other connections do not see it
    assert account.credit_usage(db, teams.get_team(db, team.id), NOW).remaining == 3_000
    gate.release.set()
    assert future.result(WAIT).remaining_credits == 2_960
    assert account.credit_usage(db, teams.get_team(db, team.id), NOW).remaining == 2_960


class Faulty:
    """An operation that fails as a bug would (not a LedgerError)."""

    def __init__(self, team_id: str) -> None:
        self.now, self.team_id = NOW, team_id

    def find(self, tx: Tx) -> str:
        return self.team_id

    def wants(self) -> Wants:
        return Wants()

    def idempotency(self) -> tuple[str, str] | None:
        return None

    def replayed(self, stored: dict[str, Any]) -> None:
        raise AssertionError

    def spends_through(self) -> None:
        return None

    def apply(self, book: Book) -> None:
        raise RuntimeError("a bug in one operation")

    def movement(self, result: Any) -> str:
        raise AssertionError


def test_a_faulty_operation_fails_alone_and_the_rest_of_its_batch_commits(
    db: Database, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    gate = Gate(db, monkeypatch)
    gate.hold_next = True
    first = writer.submit(charge_op(key, 1), team.id)
    assert gate.applied.wait(WAIT)
    good = [writer.submit(charge_op(key, 10), team.id) for _ in range(3)]
    bad = writer.submit(Faulty(team.id), team.id)
    later = writer.submit(charge_op(key, 10), team.id)
    gate.release.set()
    first.result(WAIT)
    assert isinstance(bad.exception(WAIT), RuntimeError)
    assert sorted(f.result(WAIT).remaining_credits for f in [*good, later]) == [
        2_959,
        2_969,
        2_979,
        2_989,
    ]
    assert account.credit_usage(db, teams.get_team(db, team.id), NOW).remaining == 2_959
    # The failed batch, then each of its five operations alone.
    assert gate.count == 1 + 1 + 5


def test_a_refused_operation_changes_nothing_for_the_others_of_its_batch(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    outcomes = ledger.run_all(
        db,
        [charge_op(key, 1_000), charge_op(key, 5_000), charge_op(key, 2_000)],
    )
    assert isinstance(outcomes[1], InsufficientCredits)
    charged = [o for o in outcomes if isinstance(o, ChargeResult)]
    assert [o.remaining_credits for o in charged] == [2_000, 0]
    assert account.credit_usage(db, teams.get_team(db, team.id), NOW).remaining == 0


def test_operations_that_name_their_team_indirectly_are_found_then_batched(
    db: Database, writer: Writer
) -> None:
    team, key, key_id = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    other, other_key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01", name="b")
    by_key = [writer.submit(charge_op(k, 7)) for k in (key, key_id, other_key)]
    unknown = writer.submit(charge_op("fc-" + "0" * 32, 7))
    assert [f.result(WAIT).team_id for f in by_key] == [team.id, team.id, other.id]
    assert str(unknown.exception(WAIT)) == "API key not found"
    assert account.credit_usage(db, teams.get_team(db, team.id), NOW).remaining == 2_986
    assert account.credit_usage(db, teams.get_team(db, other.id), NOW).remaining == 2_993


def test_a_waiter_that_gives_up_neither_cancels_its_write_nor_stops_the_writer(
    db: Database, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that leaves while its charge is queued (the request's task is cancelled): the
    charge is applied all the same, and the writer goes on answering the next ones. (It once
    died of it: setting the result of a cancelled future raised in the writer thread.)"""
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    gate = Gate(db, monkeypatch)
    gate.hold_next = True
    first = writer.submit(charge_op(key, 1), team.id)
    assert gate.applied.wait(WAIT)

    async def leave_then_come_back() -> ChargeResult:
        waiter = asyncio.ensure_future(writer.run(charge_op(key, 10), team.id))
        await asyncio.sleep(0.05)  # queued behind the held batch
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.release.set()
        result: ChargeResult = await asyncio.wait_for(
            writer.run(charge_op(key, 100), team.id), WAIT
        )
        return result

    after = asyncio.run(leave_then_come_back())
    first.result(WAIT)
    assert after.remaining_credits == 3_000 - 1 - 10 - 100


def test_a_write_past_its_deadline_is_dropped_unless_a_writer_thread_took_it(
    db: Database, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Database.call_seconds bounds the wait for the writer's answer (a frozen PostgreSQL):
    an operation still queued at its deadline is never applied; one whose batch was already
    sent may commit after its waiter got DeadlineExceeded (a lost answer, which its idempotency
    key settles on a retry). The writer goes on with the next ones."""
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    gate = Gate(db, monkeypatch)
    gate.hold_next = True
    monkeypatch.setattr(db, "call_seconds", 0.2)

    async def both_time_out() -> tuple[Any, Any]:
        sent = asyncio.ensure_future(writer.run(charge_op(key, 1), team.id))
        assert await asyncio.to_thread(gate.applied.wait, WAIT)  # in a held transaction
        queued = asyncio.ensure_future(writer.run(charge_op(key, 10), team.id))
        return await asyncio.gather(sent, queued, return_exceptions=True)

    sent, queued = asyncio.run(both_time_out())
    assert isinstance(sent, DeadlineExceeded) and "outcome unknown" in str(sent)
    assert isinstance(queued, DeadlineExceeded) and "not applied" in str(queued)
    gate.release.set()
    after: ChargeResult = writer.submit(charge_op(key, 100), team.id).result(WAIT)
    assert after.remaining_credits == 3_000 - 1 - 100  # the sent one committed; not the queued
