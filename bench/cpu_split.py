"""`python -m bench.cpu_split [--database-url URL] [--leases]`: one metered gateway before the
fake upstream, loaded by wrk at 1 and 32 connections; its user and system CPU per request
(Linux /proc), apart. The README's lease rows come from two runs of it, without and with
`--leases` (CREDITGATE_LEASES=true)."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.server import free_port, start, stop

from bench.__main__ import ADMIN, ROOT, SCRAPE_LUA, UNLIMITED
from bench.load import wrk_post
from creditgate.domain.errors import Conflict
from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import keys, plans, teams
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade


def user_and_system(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main(url: str | None, leases: bool, seconds: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    script = tmp / "scrape.lua"
    script.write_text(SCRAPE_LUA)
    db = Database(url or f"sqlite:///{tmp}/gateway.db")
    upgrade(db)
    with contextlib.suppress(Conflict):
        plans.create_plan(db, Plan("unlimited", 10**12, "month", 10**6, 10**7, 10**7), now())
    team = teams.create_team(db, f"split-{uuid.uuid4().hex[:8]}", now(), plan_id="unlimited")
    key = {"Authorization": f"Bearer {keys.create_key(db, team.id, now()).secret}"}
    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.gateway.fake_firecrawl:app", "--port",
         str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
    )  # fmt: skip
    env = {"CREDITGATE_UPSTREAM_URL": f"http://127.0.0.1:{port}", **UNLIMITED}
    if leases:
        env["CREDITGATE_LEASES"] = "true"
    time.sleep(1)
    server = start(db.url, ADMIN, free_port(), extra_env=env)
    try:
        for conns in (1, 32):
            before = user_and_system(server.process.pid)
            load = wrk_post(f"{server.url}/v2/scrape", conns, seconds, script, key)
            after = user_and_system(server.process.pid)
            n = max(load.rps * seconds, 1)
            user, system = ((a - b) * 1000 / n for a, b in zip(after, before, strict=True))
            print(
                f"{conns} conns: {load.rps:.0f} req/s, CPU {user:.2f} user + {system:.2f} "
                f"system = {user + system:.2f} ms a request (leases {'on' if leases else 'off'})"
            )
    finally:
        stop(server)
        fake.terminate()
        fake.wait()
        db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_split")
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--leases", action="store_true", help="CREDITGATE_LEASES=true")
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    main(args.database_url, args.leases, args.seconds)
