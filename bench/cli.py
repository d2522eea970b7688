"""`python -m bench.cli`: how much CPU the `creditgate` command spends before it answers.

Each figure is the median, over --runs runs, of the user + system CPU seconds of one process
(resource.getrusage of the child), beside the bare interpreter's start (`python -c pass`) in the
same run. `--src DIR` measures another source tree (e.g. an older checkout's `src`, put first
on PYTHONPATH), for before/after figures. Also one part of `python -m bench` (`--only cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

Row = dict[str, Any]
TARGETS = {"--help": 0.3, "usage": 0.5}


def _env(src: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}
    env["CREDITGATE_CONFIG"] = os.devnull  # no profile of the machine's user
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: compiled once, then from .pyc
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
    return env


def cpu(args: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median CPU seconds and median wall seconds of `args` as a child process."""
    subprocess.run(args, env=env, capture_output=True, check=False)  # warm: .pyc, page cache
    spent, walls = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert done.returncode == 0, done.stderr.decode()
        spent.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(spent), statistics.median(walls)


def bench_cli(runs: int = 7, src: str | None = None) -> list[Row]:
    env = _env(src)
    command = [sys.executable, "-m", "creditgate"]
    path = Path(tempfile.mkdtemp()) / "cli.db"
    path.touch()  # an existing (empty) file: `migrate` needs no --yes, which an older CLI lacks
    url = f"sqlite:///{path}"
    subprocess.run(
        [*command, "migrate", "--database-url", url], env=env, check=True, capture_output=True
    )
    made = subprocess.run(
        [*command, "team", "create", "bench", "--plan", "hobby", "--json", "--database-url", url],
        env=env,
        check=True,
        capture_output=True,
    )
    team = json.loads(made.stdout)["data"]["id"]  # by id: an older CLI takes no name
    bare, _ = cpu([sys.executable, "-c", "pass"], env, runs)
    # the floor of a command on a database: the CLI's library and SQLAlchemy, nothing else
    floor, _ = cpu([sys.executable, "-c", "import click, sqlalchemy"], env, runs)
    rows = []
    for name, args in (
        ("--help", ["--help"]),
        ("usage", ["usage", team, "--by-key", "--database-url", url]),
    ):
        spent, wall = cpu([*command, *args], env, runs)
        rows.append(
            {
                "figure": f"creditgate {name} (SQLite), CPU s",
                "value": round(spent, 3),
                "unit": "CPU s",
                "baseline": round(bare, 3),
                "ratio": spent / bare,
                "target": f"<= {TARGETS[name]} s CPU",
                "met": spent <= TARGETS[name],
                "wall_s": round(wall, 3),
                "floor_s": round(floor, 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cli")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--src", default=None, help="measure this source tree instead")
    args = parser.parse_args()
    rows = bench_cli(args.runs, args.src)
    for r in rows:
        print(
            f"{r['figure']:<40} {r['value']:>7} (python -c pass {r['baseline']}, "
            f"import click, sqlalchemy {r['floor_s']}, wall {r['wall_s']} s)  "
            f"target {r['target']}  met {r['met']}"
        )
    print(json.dumps({"src": args.src or str(Path(__file__).parent.parent / "src"), "rows": rows}))


if __name__ == "__main__":
    main()
