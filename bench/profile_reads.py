"""`python -m bench.profile_reads`: where an account read's CPU goes, by py-spy.

Serves creditgate (SQLite, request lines at `info`, as `python -m bench` runs it), loads
`GET /v2/team/credit-usage` (or `--path`) with wrk, samples the server process with py-spy, and
prints the functions holding the most samples (bench/profile_gateway.py's report), with the
server's CPU milliseconds per request. `--svg FILE` also writes a flame graph.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from tests.server import free_port, start, stop

from bench.__main__ import ADMIN, UNLIMITED, cpu_seconds, prepared
from bench.load import wrk
from bench.profile_gateway import PY_SPY, report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_reads")
    parser.add_argument("--path", default="/v2/team/credit-usage")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--svg", default=None, help="also write a flame graph here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    db, _, key = prepared(f"sqlite:///{tmp}/reads.db")
    server = start(db.url, ADMIN, free_port(), extra_env=UNLIMITED)
    out = tmp / "profile.txt"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        time.sleep(1)
        before = cpu_seconds(server.process.pid)
        load = wrk(server.url + args.path, args.connections, args.seconds, headers)
        cpu_ms = (cpu_seconds(server.process.pid) - before) * 1000 / (load.rps * args.seconds)
        print(f"unsampled: {load.rps:.0f} req/s, p50 {load.p50_ms} ms, {cpu_ms:.3f} ms CPU/req")
        for fmt, target in (("raw", out), ("flamegraph", args.svg)):
            if target is None:
                continue
            spy = subprocess.Popen(
                [PY_SPY, "record", "-p", str(server.process.pid), "-o", str(target), "-f", fmt,
                 "-d", str(args.seconds + 1), "-r", "250", "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            wrk(server.url + args.path, args.connections, args.seconds, headers)
            spy.wait()
    finally:
        stop(server)
        db.dispose()
    report(out)


if __name__ == "__main__":
    main()
