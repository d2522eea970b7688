"""`python -m bench`: measure creditgate beside its limits on this machine, in one run.

Each figure is a ratio to a baseline measured in the same run (the bare route, a raw insert,
raw SQL transactions), so noisy machines still compare. Prints a table and one JSON line.
Needs PostgreSQL on 127.0.0.1:5432 (CREDITGATE_TEST_POSTGRES_URL) and wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from tests.conftest import POSTGRES_ADMIN_URL
from tests.haproxy import config as haproxy_config
from tests.haproxy import haproxy_binary
from tests.server import free_port, start, stop

from bench import bulk
from bench.cli import bench_cli
from bench.history import bench_history
from bench.load import wrk, wrk_post
from creditgate.domain.errors import Conflict
from creditgate.domain.instants import from_datetime, now, to_datetime
from creditgate.domain.plans import Plan
from creditgate.services import keys, ledger, plans, teams
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade

ROOT = Path(__file__).parent.parent
ADMIN = "bench-admin-token-16"
UNLIMITED = {"CREDITGATE_ACCOUNT_RPM": str(10**9)}  # measure the route, not the rate limiter
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
Row = dict[str, Any]


def fresh_postgres() -> str:
    name = f"creditgate_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(
        POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def prepared(url: str, plan: str = "scale", credits: int = 0) -> tuple[Database, str, str]:
    db = Database(url)
    upgrade(db)
    team = teams.create_team(db, f"bench-{uuid.uuid4().hex[:6]}", now(), plan_id=plan)
    if credits:
        ledger.grant(db, ledger.GrantRequest(team.id, credits), now())
    return db, team.id, keys.create_key(db, team.id, now(), name="bench").secret


# --- 1. the hot read route beside a bare route ------------------------------------------------


def bench_http(seconds: int) -> list[Row]:
    tmp = tempfile.mkdtemp()
    db, _, key = prepared(f"sqlite:///{tmp}/bench.db")
    server = start(db.url, ADMIN, free_port(), extra_env=UNLIMITED)
    port = free_port()
    hello = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.hello:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
    )
    time.sleep(2)
    rows = []
    try:
        for conns in (32, 128):
            bare = wrk(f"http://127.0.0.1:{port}/hello", conns, seconds)
            real = wrk(
                f"{server.url}/v2/team/credit-usage",
                conns,
                seconds,
                {"Authorization": f"Bearer {key}"},
            )
            rows.append(
                {
                    "figure": f"GET /v2/team/credit-usage, {conns} conns (SQLite)",
                    "value": round(real.rps),
                    "unit": "req/s",
                    "baseline": round(bare.rps),
                    "ratio": real.rps / bare.rps,
                    "target": 0.5,
                    "p50_ms": real.p50_ms,
                    "p99_ms": real.p99_ms,
                    "baseline_p50_ms": bare.p50_ms,
                    "baseline_p99_ms": bare.p99_ms,
                }
            )
    finally:
        stop(server)
        hello.terminate()
        hello.wait()
    return rows


# --- 2. batch ingestion beside a raw bulk insert ----------------------------------------------


def raw_insert_rate(url: str, rows: int) -> float:
    db = Database(url)
    with db.write() as conn:
        conn.execute(
            text(
                "CREATE TABLE raw_events (team_id VARCHAR(36), key VARCHAR(200), "
                "key_id VARCHAR(36), credits BIGINT, at BIGINT)"
            )
        )
        conn.execute(text("CREATE UNIQUE INDEX raw_events_idem ON raw_events (team_id, key)"))
    started = time.perf_counter()
    for batch in range(rows // 1000):
        values = [
            {"t": "team", "k": f"e{batch}-{i}", "kid": "key", "c": 1, "at": now()}
            for i in range(1000)
        ]
        with db.write() as conn:
            conn.execute(text("INSERT INTO raw_events VALUES (:t, :k, :kid, :c, :at)"), values)
    elapsed = time.perf_counter() - started
    db.dispose()
    return rows / elapsed


def ingestion_rate(url: str, batches: int) -> float:
    db, _, key = prepared(url, credits=10**9)
    server = start(db.url, ADMIN, free_port())
    try:
        started = time.perf_counter()
        for b in range(batches):
            events = [
                {"key": key, "credits": 1, "idempotencyKey": f"b{b}-{i}", "endpoint": "scrape"}
                for i in range(1000)
            ]
            response = httpx.post(
                f"{server.url}/admin/charges/batch",
                json={"events": events},
                headers=HEADERS,
                timeout=600,
            )
            assert response.status_code == 200, response.text
        elapsed = time.perf_counter() - started
    finally:
        stop(server)
        db.dispose()
    return batches * 1000 / elapsed


def bench_ingestion(pg_url: str, batches: int) -> list[Row]:
    tmp = tempfile.mkdtemp()
    rows = []
    for name, url in (("SQLite", f"sqlite:///{tmp}/ingest.db"), ("PostgreSQL", pg_url)):
        real = ingestion_rate(url, batches)
        raw = raw_insert_rate(url, 20_000)
        rows.append(
            {
                "figure": f"batch ingestion, 1,000/request ({name})",
                "value": round(real),
                "unit": "events/s",
                "baseline": round(raw),
                "ratio": real / raw,
                "target": 0.5,
            }
        )
    return rows


# --- 3. reserve + settle under 64 clients beside raw transactions -----------------------------


def _pairs(url: str, db: Database, keys_: list[str], seconds: int, clients: int) -> int:
    """Reservations reserved then settled over HTTP by wrk (bench/pairs.lua), counted in the
    ledger: a Python client could not keep 64 connections busy on this machine."""
    script = Path(tempfile.mkdtemp()) / "pairs.lua"
    listed = ", ".join(f'"{k}"' for k in keys_)
    script.write_text(
        f'KEYS = {{{listed}}}\nADMIN = "{ADMIN}"\n' + (ROOT / "bench" / "pairs.lua").read_text()
    )
    settled = "SELECT COUNT(*) FROM reservations WHERE status = 'settled'"
    with db.read() as conn:
        before = int(conn.execute(text(settled)).scalar_one())
    load = wrk(url, clients, seconds, script=script)
    with db.read() as conn:
        after = int(conn.execute(text(settled)).scalar_one())
    assert load.rps > 0
    return after - before


def raw_pairs(url: str, team_ids: list[str], seconds: float, clients: int) -> int:
    engine = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), pool_size=clients, max_overflow=0
    )
    deadline = time.monotonic() + seconds

    def loop(i: int) -> int:
        n = 0
        team = team_ids[i % len(team_ids)]
        while time.monotonic() < deadline:
            for step in ("reserve", "settle"):  # two transactions, as the API does
                with engine.begin() as conn:
                    conn.execute(
                        text("UPDATE teams SET last_charge_ms = :t WHERE id = :id"),
                        {"t": now(), "id": team},
                    )
                    conn.execute(
                        text(
                            "INSERT INTO raw_pairs (team_id, id, step, at) VALUES (:t, :i, :s, :a)"
                        ),
                        {"t": team, "i": str(uuid.uuid4()), "s": step, "a": now()},
                    )
            n += 1
        return n

    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS raw_pairs (team_id VARCHAR(36), "
                "id VARCHAR(36) PRIMARY KEY, step VARCHAR(8), at BIGINT)"
            )
        )
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(loop, range(clients)))
    engine.dispose()
    return total


def bench_reservations(pg_url: str, seconds: float) -> list[Row]:
    db, _, _ = prepared(pg_url)
    team_keys, team_ids = [], []
    for _ in range(8):
        _, team_id, key = prepared(pg_url, credits=10**9)
        team_keys.append(key)
        team_ids.append(team_id)
    server = start(pg_url, ADMIN, free_port(), workers=2)
    try:
        real = _pairs(server.url, db, team_keys, int(seconds), 64) / seconds
    finally:
        stop(server)
    raw = raw_pairs(pg_url, team_ids, seconds, 64) / seconds
    db.dispose()
    return [
        {
            "figure": "reserve+settle pairs, 64 clients, 8 teams (PostgreSQL)",
            "value": round(real),
            "unit": "pairs/s",
            "baseline": round(raw),
            "ratio": real / raw,
            "target": 0.5,
        }
    ]


# --- 4. reads for a team with millions of charges ---------------------------------------------


def load_history(url: str, charges: int) -> tuple[str, str]:
    """A team with `charges` charges over 13 periods and 50 keys, written in bulk SQL."""
    db = Database(url)
    # 13 periods (12 closed and the current one): the anchor a year back, the most a team
    # may be created with (366 days).
    today = to_datetime(now())
    leap_day = (today.month, today.day) == (2, 29)
    anchor = from_datetime(today.replace(year=today.year - 1, day=28 if leap_day else today.day))
    team, key_ids = bulk.big_team(db, "bench", anchor)
    first_key = keys.create_key(db, team.id, now(), name="reader").secret
    with db.write() as conn:
        starts = [
            int(r[0])
            for r in conn.execute(
                text(
                    "SELECT period_start_ms FROM grants WHERE team_id = :t ORDER BY period_start_ms"
                ),
                {"t": team.id},
            )
        ]
        bulk.key_table(conn, key_ids)
        conn.execute(text("CREATE TEMP TABLE bench_periods (n INTEGER, start BIGINT)"))
        conn.execute(
            text("INSERT INTO bench_periods VALUES (:n, :s)"),
            [{"n": i, "s": s} for i, s in enumerate(starts[:13])],
        )
        series = bulk.numbers(db)
        conn.execute(
            text(
                "INSERT INTO entries (team_id, movement_id, line, kind, amount, key_id, "
                "period_start_ms, endpoint, occurred_ms, recorded_ms) "
                f"SELECT :t, 'bench-' || i, 0, 'charge', -1, k.id, p.start, 'scrape', "
                "p.start + 1000 * (i % 100000), p.start + 1000 * (i % 100000) "
                f"FROM ({series}) AS g JOIN bench_keys k ON k.n = i % 50 "
                "JOIN bench_periods p ON p.n = i % 13"
            ),
            {"t": team.id, "n": charges},
        )
        conn.execute(
            text(
                "INSERT INTO usage_by_key (team_id, period_start_ms, key_id, credits) "
                "SELECT team_id, period_start_ms, key_id, -sum(amount) FROM entries "
                "WHERE team_id = :t AND kind = 'charge' GROUP BY team_id, period_start_ms, key_id"
            ),
            {"t": team.id},
        )
        conn.execute(
            text(
                "INSERT INTO usage_by_period (team_id, period_start_ms, credits) "
                "SELECT team_id, period_start_ms, sum(credits) FROM usage_by_key "
                "WHERE team_id = :t GROUP BY team_id, period_start_ms"
            ),
            {"t": team.id},
        )
    bulk.analyze(db)
    db.dispose()
    return team.id, first_key


def bench_reads(pg_url: str, charges: int, seconds: int) -> list[Row]:
    _, big_key = load_history(pg_url, charges)
    db, _, small_key = prepared(pg_url)
    for _ in range(10):
        ledger.charge(db, ledger.ChargeRequest(small_key, 1, endpoint="scrape"), now())
    server = start(pg_url, ADMIN, free_port(), extra_env=UNLIMITED)
    rows = []
    try:
        for path in ("/v2/team/credit-usage/historical?byApiKey=true", "/v2/team/credit-usage"):
            small = wrk(server.url + path, 1, seconds, {"Authorization": f"Bearer {small_key}"})
            big = wrk(server.url + path, 1, seconds, {"Authorization": f"Bearer {big_key}"})
            rows.append(
                {
                    "figure": f"GET {path}, {charges:,} charges vs 10 (PostgreSQL)",
                    "value": big.p99_ms,
                    "unit": "ms p99",
                    "baseline": small.p99_ms,
                    "ratio": big.p99_ms / small.p99_ms,
                    "target": "p99 < 10 ms",
                    "p50_ms": big.p50_ms,
                    "baseline_p50_ms": small.p50_ms,
                }
            )
    finally:
        stop(server)
        db.dispose()
    return rows


# --- 5. the gateway beside the upstream it fronts ----------------------------------------------

SCRAPE_LUA = """wrk.method = "POST"
wrk.body = '{"url": "https://example.com"}'
wrk.headers["Content-Type"] = "application/json"
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_gateway(seconds: int, pg_url: str) -> list[Row]:
    """The gateway beside the fake upstream it fronts: straight to the upstream, through the
    gateway with metering off (the proxy alone, same stack), and metered; with the gateway
    process's CPU milliseconds per request."""
    tmp = tempfile.mkdtemp()
    script = Path(tmp) / "scrape.lua"
    script.write_text(SCRAPE_LUA)
    fake_port = free_port()
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.gateway.fake_firecrawl:app",
            "--port",
            str(fake_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
    )
    fake_url = f"http://127.0.0.1:{fake_port}"
    rows: list[Row] = []
    try:
        time.sleep(1)
        rows += _floor_rows(f"127.0.0.1:{fake_port}", fake_url, script, seconds)
        for name, url in (("SQLite", f"sqlite:///{tmp}/gateway.db"), ("PostgreSQL", pg_url)):
            rows += _gateway_rows(name, url, fake_url, script, seconds)
    finally:
        fake.terminate()
        fake.wait()
    return rows


def _floor_rows(fake_address: str, fake_url: str, script: Path, seconds: int) -> list[Row]:
    """HAProxy relaying to the same upstream (no key, no ledger): the floor a proxy's CPU per
    request can reach on this machine, beside which the gateway's figures read."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed (scripts/setup --dev installs it)")
    port = free_port()
    cfg = Path(tempfile.mkdtemp()) / "haproxy.cfg"
    cfg.write_text(haproxy_config(port, [fake_address]).replace("    option httpchk", "#"))
    quiet = subprocess.DEVNULL
    process = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=quiet, stderr=quiet)
    rows = []
    try:
        time.sleep(0.5)
        for conns in (1, 32):
            direct = wrk_post(f"{fake_url}/v2/scrape", conns, seconds, script, {})
            before = cpu_seconds(process.pid)
            load = wrk_post(f"http://127.0.0.1:{port}/v2/scrape", conns, seconds, script, {})
            cpu_ms = (cpu_seconds(process.pid) - before) * 1000 / max(load.rps * seconds, 1)
            rows.append(
                {
                    "unit": "req/s",
                    "figure": f"POST /v2/scrape via HAProxy (the floor) vs direct, {conns} conns",
                    "value": round(load.rps),
                    "baseline": round(direct.rps),
                    "ratio": load.rps / direct.rps,
                    "target": "-",
                    "p50_ms": load.p50_ms,
                    "cpu_ms": round(cpu_ms, 3),
                }
            )
    finally:
        process.terminate()
        process.wait()
    return rows


def _gateway_rows(name: str, url: str, fake_url: str, script: Path, seconds: int) -> list[Row]:
    db = Database(url)
    upgrade(db)
    with contextlib.suppress(Conflict):
        plans.create_plan(db, Plan("unlimited", 10**12, "month", 10**6, 10**7, 10**7), now())
    team = teams.create_team(db, "gateway", now(), plan_id="unlimited")
    key = {"Authorization": f"Bearer {keys.create_key(db, team.id, now()).secret}"}
    env = {"CREDITGATE_UPSTREAM_URL": fake_url, **UNLIMITED}  # request lines on, as deployed
    metered = start(db.url, ADMIN, free_port(), extra_env=env)
    bare = start(db.url, ADMIN, free_port(), extra_env={**env, "CREDITGATE_METERING": "false"})
    rows = []
    try:
        for conns in (1, 32):
            direct = wrk_post(f"{fake_url}/v2/scrape", conns, seconds, script, {})
            loads = {}
            for label, server in (("off", bare), ("on", metered)):
                before = cpu_seconds(server.process.pid)
                load = wrk_post(f"{server.url}/v2/scrape", conns, seconds, script, key)
                cpu_ms = (cpu_seconds(server.process.pid) - before) * 1000
                loads[label] = (load, cpu_ms / max(load.rps * seconds, 1))
            (off, off_cpu), (on, on_cpu) = loads["off"], loads["on"]
            common = {"unit": "req/s", "p50_ms": on.p50_ms, "cpu_ms": round(on_cpu, 2)}
            rows += [
                {
                    **common,
                    "figure": f"POST /v2/scrape metered vs direct, {conns} conns ({name})",
                    "value": round(on.rps),
                    "baseline": round(direct.rps),
                    "ratio": on.rps / direct.rps,
                    "target": 0.5,
                    "baseline_p50_ms": direct.p50_ms,
                    "added_p50_ms": round(on.p50_ms - direct.p50_ms, 2),
                },
                {
                    **common,
                    "figure": f"POST /v2/scrape metered vs metering off, {conns} conns ({name})",
                    "value": round(on.rps),
                    "baseline": round(off.rps),
                    "ratio": on.rps / off.rps,
                    "target": 0.8,
                    "baseline_p50_ms": off.p50_ms,
                    "baseline_cpu_ms": round(off_cpu, 2),
                },
            ]
    finally:
        stop(metered)
        stop(bare)
        db.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=int, default=8, help="per load run")
    parser.add_argument(
        "--charges",
        type=int,
        default=1_000_000,
        help="charges of the big team (the issue's figure: 10,000,000)",
    )
    parser.add_argument("--batches", type=int, default=3, help="1,000-event ingestion batches")
    parser.add_argument("--only", default="http,ingest,reserve,reads,gateway,history,cli")
    args = parser.parse_args()
    only = set(args.only.split(","))
    pg_url = fresh_postgres()
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("http", lambda: bench_http(args.seconds)),
        ("ingest", lambda: bench_ingestion(pg_url, args.batches)),
        ("reserve", lambda: bench_reservations(pg_url, args.seconds)),
        ("reads", lambda: bench_reads(pg_url, args.charges, args.seconds)),
        ("gateway", lambda: bench_gateway(args.seconds, pg_url)),
        ("history", lambda: bench_history(pg_url)),
        ("cli", lambda: bench_cli()),
    ]
    try:
        for name, step in steps:
            if name in only:
                rows += step()
                print(f"... {name} done", file=sys.stderr)
    finally:
        drop_postgres(pg_url)
    print(f"{'figure':<72} {'value':>10} {'baseline':>10} {'ratio':>7}  target  cpu ms/req")
    for r in rows:
        cpu = ""
        if "cpu_ms" in r:
            base = r.get("baseline_cpu_ms", "-")
            cpu = f"{r['cpu_ms']} (baseline {base})"
            if "cpu_ratio" in r:
                cpu = f"{r['cpu_ms']} (x{r['cpu_ratio']} of 0 prior)"
        print(
            f"{r['figure']:<72} {r['value']:>10} {r['baseline']:>10} {r['ratio']:>7.2f}  "
            f"{r['target']}  {cpu}"
        )
    machine = {
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    print(json.dumps({"machine": machine, "results": rows}))


if __name__ == "__main__":
    main()
