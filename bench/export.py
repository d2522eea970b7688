"""`python -m bench.export`: an export's peak memory and speed as the team's ledger grows.

For each size, a team gets that many charge entries (bulk SQL, over 50 keys), then
`creditgate export TEAM --what entries --format csv -o FILE` runs as a child process: its peak
resident memory (ru_maxrss, from wait4) should stay flat from the smallest size to the largest,
since the export reads keyset chunks of 5,000 rows and writes each before reading the next.

    python -m bench.export [--sizes 100000,1000000,3000000] [--database sqlite|postgresql] [--http]

With --http, the same export through `GET /admin/teams/{id}/export` of a `creditgate serve`
process, whose peak RSS (VmHWM) is read at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from bench import bulk
from creditgate.domain.instants import now
from creditgate.storage.database import Database


def load(url: str, rows: int) -> str:
    """A team with `rows` 1-credit charges over 50 keys, one every 10 ms from its anchor."""
    db = Database(url)
    team, key_ids = bulk.big_team(db, "bench-export", now() - 10**9)
    series = bulk.numbers(db)
    with db.write() as conn:
        bulk.key_table(conn, key_ids)
        conn.execute(
            text(
                "INSERT INTO entries (team_id, movement_id, line, kind, amount, key_id, "
                "period_start_ms, endpoint, target, occurred_ms, recorded_ms) "
                "SELECT :t, 'bench-' || i, 0, 'charge', -1, k.id, :start, 'scrape', "
                "'https://example.com/page-' || i, :start + i * 10, :start + i * 10 "
                f"FROM ({series}) AS g JOIN bench_keys k ON k.n = i % 50"
            ),
            {"t": team.id, "n": rows, "start": team.anchor},
        )
    bulk.analyze(db)
    db.dispose()
    return team.id


def measure(url: str, team_id: str, out: Path) -> tuple[float, int, int]:
    """Seconds, peak RSS in bytes and rows written by one `creditgate export` child."""
    command = [
        sys.executable, "-m", "creditgate", "export", team_id, "--what", "entries",
        "--format", "csv", "-o", str(out), "--json", "--database-url", url,
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert child.stdout is not None
    said = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, said
    written = int(json.loads(said)["data"]["rows"])
    return elapsed, usage.ru_maxrss * 1024, written  # ru_maxrss: KiB on Linux


def measure_http(url: str, team_id: str) -> tuple[float, int, int]:
    """Seconds, the server's peak RSS (VmHWM) and bytes of one GET .../export streamed from a
    `creditgate serve` (one process) to nowhere."""
    from tests.server import free_port, start, stop

    server = start(url, "bench-admin", free_port())
    try:
        started = time.perf_counter()
        received = 0
        with httpx.stream(
            "GET",
            f"{server.url}/admin/teams/{team_id}/export?what=entries&format=csv",
            headers={"Authorization": "Bearer bench-admin"},
            timeout=3600,
        ) as answer:
            assert answer.status_code == 200, answer.read()
            for chunk in answer.iter_bytes():
                received += len(chunk)
        elapsed = time.perf_counter() - started
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        peak = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")
        )
    finally:
        stop(server)
    return elapsed, peak * 1024, received


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000,3000000")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--http", action="store_true", help="also through GET .../export")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        tmp = Path(tempfile.mkdtemp())
        if args.database == "postgresql":
            from bench.__main__ import drop_postgres, fresh_postgres

            url = fresh_postgres()
        else:
            url = f"sqlite:///{tmp}/export.db"
        try:
            started = time.perf_counter()
            team_id = load(url, size)
            loaded = time.perf_counter() - started
            seconds, peak, written = measure(url, team_id, tmp / "out.csv")
            assert written == size + 1, (written, size)  # the charges and the plan's grant
            row = {
                "database": args.database,
                "rows": written,
                "load_s": round(loaded, 1),
                "export_s": round(seconds, 2),
                "rows_per_s": round(written / seconds),
                "peak_rss_mb": round(peak / 2**20, 1),
                "file_mb": round((tmp / "out.csv").stat().st_size / 2**20, 1),
            }
            if args.http:
                http_s, http_peak, received = measure_http(url, team_id)
                assert received == (tmp / "out.csv").stat().st_size
                row |= {
                    "http_export_s": round(http_s, 2),
                    "http_rows_per_s": round(written / http_s),
                    "server_peak_rss_mb": round(http_peak / 2**20, 1),
                }
            results.append(row)
            print(
                f"{row['database']:10} {row['rows']:>10,} rows  export {row['export_s']:>7} s  "
                f"{row['rows_per_s']:>8,} rows/s  peak RSS {row['peak_rss_mb']:>6} MB  "
                f"file {row['file_mb']} MB  (load {row['load_s']} s)"
                + (
                    f"; HTTP {row['http_rows_per_s']:,} rows/s, server peak RSS "
                    f"{row['server_peak_rss_mb']} MB"
                    if args.http
                    else ""
                ),
                flush=True,
            )
        finally:
            if args.database == "postgresql":
                drop_postgres(url)
            for path in tmp.iterdir():
                path.unlink()
            tmp.rmdir()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
