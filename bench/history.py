"""`python -m bench --only history`: a reserve+settle's cost beside the team's past.

Three teams in one database, with 0, 100k and 1M prior requests each (a settled reservation, its
charge entry and the usage rollups, over the 13 periods of a year, written in bulk SQL), on
SQLite and on PostgreSQL; then VACUUM ANALYZE on PostgreSQL, as autovacuum leaves a table (the
measured pairs run without another). Then rounds of reserve+settle through the services, the
three teams interleaved in every round so load on the machine moves all three alike: client CPU
and wall per pair, the median of the rounds. Target: within 1.2x of the team with no history.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import bulk
from creditgate.domain.instants import MS_PER_DAY, now
from creditgate.domain.plans import Plan
from creditgate.services import keys, plans, reservations, teams
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade

SIZES = (0, 100_000, 1_000_000)
KEYS = 5
PLAN = "bench-history"
Row = dict[str, Any]


def _history(db: Database, team_id: str, key_ids: list[str], n: int, tag: str) -> None:
    """`n` settled reserve+settle pairs of the team, spread over its 13 periods and keys, with
    what the write path keeps beside them (the charge line, the rollups, the grants' balance)."""
    if not n:
        return
    series = bulk.numbers(db)
    with db.write() as conn:
        grants = conn.execute(
            text(
                "SELECT id, period_start_ms FROM grants WHERE team_id = :t AND kind = 'plan' "
                "ORDER BY period_start_ms"
            ),
            {"t": team_id},
        ).all()
        conn.execute(text("DROP TABLE IF EXISTS bench_keys"))
        bulk.key_table(conn, key_ids)
        conn.execute(text("DROP TABLE IF EXISTS bench_grants"))
        conn.execute(
            text("CREATE TEMP TABLE bench_grants (n INTEGER, id VARCHAR(36), start BIGINT)")
        )
        conn.execute(
            text("INSERT INTO bench_grants VALUES (:n, :id, :s)"),
            [{"n": i, "id": g[0], "s": g[1]} for i, g in enumerate(grants[:13])],
        )
        periods = min(len(grants), 13)
        # request i: period i % 13, key i % KEYS, 20 s apart within its period
        at = "g.start + 20000 * (i / :periods)"
        conn.execute(
            text(
                "INSERT INTO reservations (team_id, id, key_id, amount, settled, status, "
                "endpoint, api_version, created_ms, expires_ms, closed_ms, owner, slots) "
                f"SELECT :t, :tag || '-' || i, k.id, 5, 1, 'settled', 'scrape', 'v2', {at}, "
                f"{at} + 3600000, {at} + 500, NULL, 1 "
                f"FROM ({series}) AS s JOIN bench_keys k ON k.n = i % {KEYS} "
                "JOIN bench_grants g ON g.n = i % :periods"
            ),
            {"t": team_id, "n": n, "tag": tag, "periods": periods},
        )
        conn.execute(
            text(
                "INSERT INTO entries (team_id, movement_id, line, kind, amount, grant_id, key_id, "
                "period_start_ms, endpoint, api_version, reservation_id, occurred_ms, "
                "recorded_ms) "
                f"SELECT :t, :tag || '-m-' || i, 0, 'charge', -1, g.id, k.id, g.start, "
                f"'scrape', 'v2', :tag || '-' || i, {at} + 500, {at} + 500 "
                f"FROM ({series}) AS s JOIN bench_keys k ON k.n = i % {KEYS} "
                "JOIN bench_grants g ON g.n = i % :periods"
            ),
            {"t": team_id, "n": n, "tag": tag, "periods": periods},
        )
        _rollups(conn, team_id)


def _rollups(conn: Any, team_id: str) -> None:
    """The rollups and grant balances the history's charges leave, as the write path keeps."""
    t = {"t": team_id}
    charges = "FROM entries WHERE team_id = :t AND kind = 'charge'"
    for table in ("usage_by_period", "usage_by_key", "usage_by_hour", "usage_by_key_day"):
        conn.execute(text(f"DELETE FROM {table} WHERE team_id = :t"), t)
    conn.execute(
        text(
            "INSERT INTO usage_by_key (team_id, period_start_ms, key_id, credits) "
            f"SELECT team_id, period_start_ms, key_id, -SUM(amount) {charges} "
            "GROUP BY team_id, period_start_ms, key_id"
        ),
        t,
    )
    conn.execute(
        text(
            "INSERT INTO usage_by_period (team_id, period_start_ms, credits) "
            "SELECT team_id, period_start_ms, SUM(credits) FROM usage_by_key WHERE team_id = :t "
            "GROUP BY team_id, period_start_ms"
        ),
        t,
    )
    hour = "occurred_ms - occurred_ms % 3600000"
    conn.execute(
        text(
            "INSERT INTO usage_by_hour (team_id, hour_ms, credits) "
            f"SELECT team_id, {hour}, -SUM(amount) {charges} GROUP BY team_id, {hour}"
        ),
        t,
    )
    day = f"occurred_ms - occurred_ms % {MS_PER_DAY}"
    conn.execute(
        text(
            "INSERT INTO usage_by_key_day (team_id, period_start_ms, key_id, day_ms, credits, "
            f"last_ms) SELECT team_id, period_start_ms, key_id, {day}, -SUM(amount), "
            f"MAX(occurred_ms) {charges} GROUP BY team_id, period_start_ms, key_id, {day}"
        ),
        t,
    )
    spent = conn.execute(text(f"SELECT grant_id, SUM(amount) {charges} GROUP BY grant_id"), t).all()
    conn.execute(
        text("UPDATE grants SET remaining = amount + :spent WHERE team_id = :t AND id = :g"),
        [{"t": team_id, "g": g, "spent": int(s)} for g, s in spent if g is not None],
    )


def prepare(url: str) -> tuple[Database, list[tuple[int, str]]]:
    """A database with a team per size: (size, the key id its pairs reserve with)."""
    db = Database(url)
    upgrade(db)
    plans.create_plan(db, Plan(PLAN, 10**9, "month", 100, 10**6, 10**6), now())
    anchor = now() - 365 * MS_PER_DAY
    found = []
    for size in SIZES:
        team = teams.create_team(db, f"history-{size}", now(), plan_id=PLAN, anchor=anchor)
        key_ids = [keys.create_key(db, team.id, now(), name=f"k{i}").key.id for i in range(KEYS)]
        # the first write rolls the team forward: its 13 periods' grants exist before the history
        pair(db, key_ids[0])
        started = time.monotonic()
        _history(db, team.id, key_ids, size, f"h{size}-{uuid.uuid4().hex[:6]}")
        print(
            f"... {size:,} prior requests loaded in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
        found.append((size, key_ids[0]))
    bulk.analyze(db)
    return db, found


def pair(db: Database, key_id: str) -> None:
    """One reserve+settle, as the gateway runs them for a scrape."""
    held = reservations.reserve(
        db,
        reservations.ReserveRequest(key_id, 5, endpoint="scrape", api_version="v2"),
        now(),
        max_open=100,
        owner="bench",
    )
    reservations.settle(db, held.id, 1, now(), final=True)


def measure(db: Database, teams_: list[tuple[int, str]], rounds: int, per: int) -> list[Row]:
    cpu: dict[int, list[float]] = {size: [] for size, _ in teams_}
    wall: dict[int, list[float]] = {size: [] for size, _ in teams_}
    for _, key_id in teams_:  # warm: statements prepared, caches filled
        for _ in range(per):
            pair(db, key_id)
    for _ in range(rounds):
        for size, key_id in teams_:
            c, w = time.process_time(), time.perf_counter()
            for _ in range(per):
                pair(db, key_id)
            cpu[size].append((time.process_time() - c) / per * 1000)
            wall[size].append((time.perf_counter() - w) / per * 1000)
    base_cpu, base_wall = statistics.median(cpu[0]), statistics.median(wall[0])
    rows = []
    for size, _ in teams_:
        c, w = statistics.median(cpu[size]), statistics.median(wall[size])
        rows.append(
            {
                "size": size,
                "cpu_ms": round(c, 3),
                "wall_ms": round(w, 3),
                "cpu_ratio": c / base_cpu,
                "wall_ratio": w / base_wall,
            }
        )
    return rows


def bench_history(pg_url: str, rounds: int = 15, per: int = 20) -> list[Row]:
    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp())
    for name, url in (("SQLite", f"sqlite:///{tmp / 'history.db'}"), ("PostgreSQL", pg_url)):
        db, teams_ = prepare(url)
        try:
            for r in measure(db, teams_, rounds, per):
                rows.append(
                    {
                        "figure": f"reserve+settle, {r['size']:,} prior requests ({name})",
                        "value": r["wall_ms"],
                        "unit": "ms wall/pair",
                        "baseline": "0 prior",
                        "ratio": r["wall_ratio"],
                        "target": "ratio <= 1.2",
                        "cpu_ms": r["cpu_ms"],
                        "cpu_ratio": round(r["cpu_ratio"], 2),
                    }
                )
        finally:
            db.dispose()
    return rows
