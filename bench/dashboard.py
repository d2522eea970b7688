"""How long a team's dashboard page takes to compute when its current period holds N charges.

The daily chart reads the current period's charge entries per key and UTC day (there is no
per-key-per-day rollup); this measures that read alone and the whole page's service call
(services/dashboard.py:team_view) for a team whose N charges all fall in the current period,
spread over its first 20 days and 50 keys: the worst case for that read.

    python -m bench.dashboard --charges 1000000 [--database-url URL] [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from sqlalchemy import text

from creditgate.domain.instants import MS_PER_DAY, now
from creditgate.domain.periods import period_at
from creditgate.domain.plans import Plan
from creditgate.services import dashboard, keys, plans, teams
from creditgate.storage import usage
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade

SPAN_MS = 20 * MS_PER_DAY


def load(db: Database, charges: int) -> str:
    """A team with `charges` 1-credit charges in its current period, over 50 keys."""
    upgrade(db)
    with db.write() as conn:
        conn.execute(text("DELETE FROM plans WHERE id = 'bench-dash'"))
    plans.create_plan(db, Plan("bench-dash", 10**9, "month", 100, 10**6, 10**6), now())
    team = teams.create_team(db, "big", now(), plan_id="bench-dash", anchor=now() - SPAN_MS)
    key_ids = [keys.create_key(db, team.id, now(), name=f"key-{i:02d}").key.id for i in range(50)]
    series = (
        "SELECT generate_series(0, :n - 1) AS i"
        if db.dialect == "postgresql"
        else "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1)"
        " SELECT i FROM s"
    )
    with db.write() as conn:
        conn.execute(text("CREATE TEMP TABLE bench_keys (n INTEGER, id VARCHAR(36))"))
        conn.execute(
            text("INSERT INTO bench_keys VALUES (:n, :id)"),
            [{"n": i, "id": k} for i, k in enumerate(key_ids)],
        )
        conn.execute(
            text(
                "INSERT INTO entries (team_id, movement_id, line, kind, amount, key_id, "
                "period_start_ms, endpoint, occurred_ms, recorded_ms) "
                "SELECT :t, 'bench-' || i, 0, 'charge', -1, k.id, :start, 'scrape', "
                ":start + i * :step, :start + i * :step "
                f"FROM ({series}) AS g JOIN bench_keys k ON k.n = i % 50"
            ),
            {"t": team.id, "n": charges, "start": team.anchor, "step": SPAN_MS // charges},
        )
        for sql in (
            "INSERT INTO usage_by_key (team_id, period_start_ms, key_id, credits) "
            "SELECT team_id, period_start_ms, key_id, -sum(amount) FROM entries "
            "WHERE team_id = :t AND kind = 'charge' GROUP BY team_id, period_start_ms, key_id",
            "INSERT INTO usage_by_period (team_id, period_start_ms, credits) "
            "SELECT team_id, period_start_ms, sum(credits) FROM usage_by_key "
            "WHERE team_id = :t GROUP BY team_id, period_start_ms",
            "INSERT INTO usage_by_hour (team_id, hour_ms, credits) "
            "SELECT team_id, occurred_ms - occurred_ms % 3600000, -sum(amount) FROM entries "
            "WHERE team_id = :t AND kind = 'charge' "
            "GROUP BY team_id, occurred_ms - occurred_ms % 3600000",
            # The grant the charges spent (verify-consistent enough for a timing run).
            "UPDATE grants SET remaining = remaining - :n WHERE team_id = :t AND kind = 'plan'",
        ):
            conn.execute(text(sql), {"t": team.id, "n": charges})
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return team.id


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, max) in milliseconds over `runs` calls, after one warm-up."""
    fn()
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took), max(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/dash.db"
    db = Database(url)
    started = time.perf_counter()
    team_id = load(db, args.charges)
    print(
        f"loaded {args.charges:,} charges in {time.perf_counter() - started:.1f} s ({db.dialect})"
    )
    team = teams.get_team(db, team_id)
    current = period_at(team.anchor, True, now())
    assert current is not None

    def query() -> object:
        with db.read() as conn:
            return usage.usage_per_key_day(conn, team_id, current.start, current.start, now())

    days = query()
    assert isinstance(days, list) and sum(d.credits for d in days) == args.charges
    p50, worst = timed(query, args.runs)
    print(f"per-key-per-day read: median {p50:.1f} ms, max {worst:.1f} ms ({len(days)} rows)")
    p50, worst = timed(lambda: dashboard.team_view(db, team_id, now()), args.runs)
    print(f"whole team page (team_view): median {p50:.1f} ms, max {worst:.1f} ms")
    db.dispose()


if __name__ == "__main__":
    main()
