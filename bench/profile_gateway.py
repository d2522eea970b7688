"""`python -m bench.profile_gateway`: where a metered scrape's CPU goes, by py-spy.

Serves the gateway (SQLite) in front of the fake upstream, loads it with wrk, samples the
gateway process with py-spy, and prints the functions holding the most samples, inclusive
(the whole call under them) and by file. Needs wrk and py-spy (`pip install py-spy`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import subprocess
import sys
import tempfile
import time
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

PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def main(seconds: int = 10, url: str | None = None, connections: int = 4) -> None:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "scrape.lua").write_text(SCRAPE_LUA)
    db = Database(url or f"sqlite:///{tmp}/gateway.db")
    upgrade(db)
    with contextlib.suppress(Conflict):
        plans.create_plan(db, Plan("unlimited", 10**12, "month", 10**6, 10**7, 10**7), now())
    team = teams.create_team(db, "gateway", now(), plan_id="unlimited")
    key = {"Authorization": f"Bearer {keys.create_key(db, team.id, now()).secret}"}
    fake_port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.gateway.fake_firecrawl:app", "--port",
         str(fake_port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
    )  # fmt: skip
    env = {"CREDITGATE_UPSTREAM_URL": f"http://127.0.0.1:{fake_port}", **UNLIMITED}
    try:
        server = start(db.url, ADMIN, free_port(), extra_env=env)
    except BaseException:  # the fake upstream is not left running
        fake.terminate()
        fake.wait()
        raise
    out = tmp / "profile.txt"
    try:
        time.sleep(1)
        spy = subprocess.Popen(
            [PY_SPY, "record", "-p", str(server.process.pid), "-o", str(out), "-f", "raw",
             "-d", str(seconds + 1), "-r", "250", "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        load = wrk_post(f"{server.url}/v2/scrape", connections, seconds, tmp / "scrape.lua", key)
        spy.wait()
    finally:
        stop(server)
        fake.terminate()
        fake.wait()
    print(f"{load.rps:.0f} req/s at {connections} connections, p50 {load.p50_ms} ms")
    report(out)


def report(path: Path, top: int = 25) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for name in set(frames):
            inclusive[name] += count
        leaf = frames[-1]
        by_file[leaf.split("(")[-1].split(":")[0].rstrip(")") if "(" in leaf else leaf] += count
    print(f"{total} samples")
    print("inclusive:")
    for name, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("inclusive, creditgate's own functions:")
    ours = [(n, c) for n, c in inclusive.most_common() if "creditgate/" in n][:top]
    for name, count in ours:
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("self, by file:")
    for name, count in by_file.most_common(15):
        print(f"  {100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_gateway")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    main(args.seconds, args.database_url, args.connections)
