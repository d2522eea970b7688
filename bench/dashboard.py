"""How long a team's dashboard page takes to compute when its current period holds N charges.

The daily chart reads the current period's per-key-per-day rollup (usage_by_key_day, written
here in bulk beside the other rollups); this measures that read alone and the whole page's
service call (services/dashboard.py:team_view) for a team whose N charges all fall in the
current period, spread over its first 20 days and 50 keys; and the page's date-range reads
(the daily chart for a range, the newest ledger entries of a range).

    python -m bench.dashboard --charges 1000000 [--database-url URL] [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from sqlalchemy import text

from bench import bulk
from creditgate.domain.instants import MS_PER_DAY, now
from creditgate.domain.periods import period_at
from creditgate.services import dashboard, teams
from creditgate.storage import usage
from creditgate.storage.database import Database

SPAN_MS = 20 * MS_PER_DAY


def load(db: Database, charges: int) -> str:
    """A team with `charges` 1-credit charges in its current period, over 50 keys."""
    team, key_ids = bulk.big_team(db, "bench-dash", now() - SPAN_MS)
    series = bulk.numbers(db)
    with db.write() as conn:
        bulk.key_table(conn, key_ids)
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
            "INSERT INTO usage_by_key_day (team_id, period_start_ms, key_id, day_ms, credits, "
            "last_ms) SELECT team_id, period_start_ms, key_id, occurred_ms - occurred_ms % "
            "86400000, -sum(amount), max(occurred_ms) FROM entries "
            "WHERE team_id = :t AND kind = 'charge' "
            "GROUP BY team_id, period_start_ms, key_id, occurred_ms - occurred_ms % 86400000",
            "INSERT INTO usage_by_hour (team_id, hour_ms, credits) "
            "SELECT team_id, occurred_ms - occurred_ms % 3600000, -sum(amount) FROM entries "
            "WHERE team_id = :t AND kind = 'charge' "
            "GROUP BY team_id, occurred_ms - occurred_ms % 3600000",
            # The grant the charges spent (verify-consistent enough for a timing run).
            "UPDATE grants SET remaining = remaining - :n WHERE team_id = :t AND kind = 'plan'",
        ):
            conn.execute(text(sql), {"t": team.id, "n": charges})
    bulk.analyze(db)
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
    # The page's date-range reads: the daily chart over the default range (the current period)
    # and the newest entries of that range (read backwards on the entries' index).
    days = dashboard.day_range(None, None, current.start, now())
    daily = dashboard.daily_in(db, team_id, days)
    assert sum(sum(s) for _, s in daily.series) == args.charges
    p50, worst = timed(lambda: dashboard.daily_in(db, team_id, days), args.runs)
    print(f"daily chart for the range (daily_in): median {p50:.1f} ms, max {worst:.1f} ms")
    p50, worst = timed(lambda: dashboard.entries_in(db, team_id, days), args.runs)
    print(f"newest entries of the range (entries_in): median {p50:.1f} ms, max {worst:.1f} ms")
    db.dispose()


if __name__ == "__main__":
    main()
