"""Load generation with wrk (Debian package `wrk`), parsed into requests/s and percentiles."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


def _ms(text: str) -> float:
    found = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if found is None:
        raise SystemExit(f"wrk printed a latency this cannot read: {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def ensure_wrk() -> None:
    """wrk is a Debian package; install it when this runs as root on a machine without it."""
    if shutil.which("wrk") is None and shutil.which("apt-get") and os.geteuid() == 0:
        for command in (
            ["apt-get", "install", "-y", "-q", "wrk"],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "wrk"],
        ):
            subprocess.run(command, check=False, capture_output=True)
            if shutil.which("wrk"):
                return


def wrk_post(
    url: str, connections: int, seconds: int, script: Path, headers: dict[str, str]
) -> Load:
    """wrk with a Lua script that makes each request a POST with a JSON body."""
    return wrk(url, connections, seconds, headers, script=script)


def wrk(
    url: str,
    connections: int,
    seconds: int,
    headers: dict[str, str] | None = None,
    threads: int = 2,
    script: Path | None = None,
) -> Load:
    ensure_wrk()
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk: apt-get install -y wrk")
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if "Requests/sec" not in out or "50%" not in out:
        raise SystemExit(f"wrk against {url} printed no result:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    return Load(rps, p50, p99)
