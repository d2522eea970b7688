"""A reserve+settle reads what is open, never what happened: its work must not grow with the
team's past (issue #20, "flat in history"). Timing belongs in bench/history.py; here the work is
counted, on the same operations at two history sizes:

- PostgreSQL: every statement the pair ran is run again under EXPLAIN ANALYZE (in a transaction
  rolled back), with the plan the server picks for it and with the generic plan a prepared
  statement falls back to (psycopg prepares a statement once it has run a few times), and the
  rows each plan node produced or filtered out are summed;
- SQLite: the virtual machine's instructions are counted (a progress handler called at each),
  which is what a scan of history would multiply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from psycopg import sql as pgsql
from sqlalchemy import text

from creditgate.domain.instants import Instant, parse_iso
from creditgate.services import ledger
from creditgate.services.reservations import Reserve, ReserveRequest, Settle
from creditgate.storage import book as books
from creditgate.storage import tx as txs
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import charge, team_with_key

SMALL, BIG = 10, 400
Statement = tuple[str, dict[str, Any]]


def _history(db: Database, key_id: str, n: int, now: Instant) -> None:
    """`n` reserve+settle pairs of the key's team, as the gateway leaves them: a batch of
    reserves, then a batch of settlements (a transaction each: fast on both databases)."""
    reserve = Reserve(ReserveRequest(key_id, 1, endpoint="scrape"), now)
    held: list[Any] = ledger.run_all(db, [reserve] * n)
    settled: list[Any] = ledger.run_all(db, [Settle(h.id, 1, now, final=True) for h in held])
    assert [s.status for s in settled] == ["settled"] * n


def _pair(db: Database, key_id: str, now: Instant) -> tuple[str, str]:
    held = ledger.run(db, Reserve(ReserveRequest(key_id, 1, endpoint="scrape"), now))
    settled = ledger.run(db, Settle(held.id, 1, now, final=True))
    assert (settled.status, settled.settled, settled.holding) == ("settled", 1, 0)
    return held.id, settled.status


@contextmanager
def _recorded() -> Iterator[list[Statement]]:
    """Every statement the storage layer's Tx runs, with its parameters, while open."""
    seen: list[Statement] = []
    real = txs.Tx.rows, txs.Tx.rows_of, txs.Tx.write_all, txs.Tx.run, txs.Tx.changed

    def rows(self: txs.Tx, sql: str, params: dict[str, Any]) -> Any:
        seen.append((sql, params))
        return real[0](self, sql, params)

    def rows_of(self: txs.Tx, statements: Sequence[Statement]) -> Any:
        seen.extend(statements)
        return real[1](self, statements)

    def write_all(self: txs.Tx, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        seen.extend((sql, params) for sql, many in statements for params in many)
        real[2](self, statements)

    def run(self: txs.Tx, sql: str, params: dict[str, Any]) -> Any:
        seen.append((sql, params))
        return real[3](self, sql, params)

    def changed(self: txs.Tx, sql: str, params: dict[str, Any]) -> Any:
        seen.append((sql, params))
        return real[4](self, sql, params)

    mp = pytest.MonkeyPatch()
    for name, fake in (
        ("rows", rows),
        ("rows_of", rows_of),
        ("write_all", write_all),
        ("run", run),
        ("changed", changed),
    ):
        mp.setattr(txs.Tx, name, fake)
    try:
        yield seen
    finally:
        mp.undo()


def _rows_examined(node: dict[str, Any]) -> int:
    """Rows a plan node produced or threw away, over all its loops, and its children's."""
    loops = int(node.get("Actual Loops", 1))
    own = sum(
        float(node.get(field, 0))
        for field in (
            "Actual Rows",
            "Rows Removed by Filter",
            "Rows Removed by Join Filter",
            "Rows Removed by Index Recheck",
        )
    )
    children = node.get("Plans", [])
    return round(own * loops) + sum(_rows_examined(child) for child in children)


def _seq_scans(node: dict[str, Any]) -> set[str]:
    found = {node["Relation Name"]} if node.get("Node Type") == "Seq Scan" else set()
    for child in node.get("Plans", []):
        found |= _seq_scans(child)
    return found


# Tables that grow with every request: no plan of the hot path may scan them.
GROWING = {"reservations", "entries", "idempotency", "usage_by_hour", "usage_by_key_day", "events"}


def _postgres_work(db: Database, statements: list[Statement]) -> tuple[int, set[str]]:
    """Rows examined by the statements' plans (custom and generic), and the growing tables
    any plan scanned whole. INSERTs are left out: they read nothing but their conflict key."""
    examined, scanned = 0, set()
    raw = db.engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        for mode in ("force_custom_plan", "force_generic_plan"):
            for n, (sql, params) in enumerate(statements):
                if sql.lstrip().upper().startswith("INSERT"):
                    continue
                names: list[str] = []

                def number(m: re.Match[str], names: list[str] = names) -> str:
                    if m.group(1) not in names:
                        names.append(m.group(1))
                    return f"${names.index(m.group(1)) + 1}"

                numbered = re.sub(r"(?<!:):(\w+)", number, sql)
                with conn.transaction(force_rollback=True):
                    conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                    conn.execute(pgsql.SQL(f"PREPARE hot{n} AS {numbered}"))
                    args = pgsql.SQL(", ").join(pgsql.Literal(params[k]) for k in names)
                    explain = pgsql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {} ({})").format(
                        pgsql.Identifier(f"hot{n}"), args
                    )
                    (plan,) = conn.execute(explain).fetchone()
                    conn.execute(pgsql.SQL(f"DEALLOCATE hot{n}"))
                root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
                examined += _rows_examined(root)
                scanned |= _seq_scans(root) & GROWING
    finally:
        raw.close()
    return examined, scanned


@contextmanager
def _sqlite_steps(db: Database) -> Iterator[list[int]]:
    """Virtual machine instructions run on the database's connections while open."""
    count = [0]
    conns: list[Any] = []
    real_init = txs.Tx.__init__

    def step() -> int:
        count[0] += 1
        return 0

    def init(self: txs.Tx, driver_connection: Any, postgres: bool) -> None:
        real_init(self, driver_connection, postgres)
        driver_connection.set_progress_handler(step, 1)
        conns.append(driver_connection)

    mp = pytest.MonkeyPatch()
    mp.setattr(txs.Tx, "__init__", init)
    try:
        yield count
    finally:
        mp.undo()
        for conn in conns:
            conn.set_progress_handler(None, 1)


def _work(db: Database, key_id: str, now: Instant) -> tuple[int, set[str]]:
    """The work of one reserve+settle of the key's team: (rows or instructions, scans)."""
    _pair(db, key_id, now)  # warm: the first write of a batch may roll the team forward
    if db.is_sqlite:
        with _sqlite_steps(db) as steps:
            _pair(db, key_id, now)
        return steps[0], set()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))  # the planner sees the history it has to plan for
    with _recorded() as reserve_statements:
        held = ledger.run(db, Reserve(ReserveRequest(key_id, 1, endpoint="scrape"), now))
    reserved = _postgres_work(db, reserve_statements)  # while the hold is open
    with _recorded() as settle_statements:
        ledger.run(db, Settle(held.id, 1, now, final=True))
    settled = _postgres_work(db, settle_statements)
    return reserved[0] + settled[0], reserved[1] | settled[1]


def test_a_reserve_and_settle_reads_no_more_after_hundreds_of_requests(
    db: Database, clock: Clock
) -> None:
    _, _, small_key = team_with_key(db, clock.now, name="young", plan="scale")
    _, _, big_key = team_with_key(db, clock.now, name="old", plan="scale")
    _history(db, small_key, SMALL, clock.now)
    _history(db, big_key, BIG, clock.now)
    young, young_scans = _work(db, small_key, clock.advance(1000))
    old, old_scans = _work(db, big_key, clock.now)
    assert young_scans == old_scans == set()
    # BIG - SMALL = 390 more requests: a read of them would add hundreds of rows (PostgreSQL)
    # or tens of thousands of instructions (SQLite); btree depth may add a few.
    assert young > 0
    assert old <= young * 1.05 + 10, (young, old)


def _grant_starts(db: Database, team_id: str, now: Instant, since: Instant | None) -> list[str]:
    with db.read() as conn:
        book = books.load(txs.Tx.of(conn), team_id, now, books.Wants(since=since), lock=False)
    return sorted(g.id for g in book.grants.values())


def test_the_book_reads_the_live_grants_not_every_period_the_team_had(
    db: Database, clock: Clock
) -> None:
    """11 months of plan grants, expired and recorded: the book reads the current one; a late
    charge's batch reads the one it spends too, and spends it (its expiry partly reversed)."""
    team, key, _ = team_with_key(db, clock.now, anchor="2025-09-01T00:00:00Z")
    charge(db, key, 1, clock.now)  # rolls the team forward: 12 periods granted, 11 expired
    with db.read() as conn:
        periods = conn.execute(
            text("SELECT id, period_start_ms FROM grants WHERE team_id = :t"), {"t": team.id}
        ).all()
    assert len(periods) == 12
    current = [g for g, start in periods if start == parse_iso("2026-08-01T00:00:00Z")]
    july = [g for g, start in periods if start == parse_iso("2026-07-01T00:00:00Z")]
    assert _grant_starts(db, team.id, clock.now, None) == current
    assert _grant_starts(db, team.id, clock.now, parse_iso("2026-07-31T12:00:00Z")) == sorted(
        current + july
    )
    late = charge(db, key, 7, clock.now, at="2026-07-31T12:00:00Z")
    assert late.period_start == parse_iso("2026-07-01T00:00:00Z")
    with db.read() as conn:
        spent = conn.execute(
            text("SELECT remaining, expired_amount, amount FROM grants WHERE id = :g"),
            {"g": july[0]},
        ).one()
    assert (spent.remaining, spent.expired_amount) == (0, spent.amount - 7)
