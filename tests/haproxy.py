"""Debian's haproxy in front of several `creditgate serve` processes: one address for clients.

The configuration is the one docs/deploy.md describes, with test-sized timings: round robin,
a health check on /health/ready, and retries only of connections that failed to open (the
request was never sent, so sending it elsewhere cannot run it twice). Nothing a server may have
received is retried by haproxy: no `retry-on` beyond `conn-failure`, so a POST that reached a
process killed mid-request becomes a 502 for the client, who retries it with the same
idempotency key.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.server import free_port


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None
    )


def config(port: int, servers: list[str]) -> str:
    """haproxy.cfg for `servers` (host:port each) behind 127.0.0.1:`port`."""
    lines = [
        "global",
        "    maxconn 1024",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 60s",
        # Longer than the longest answer creditgate can take (queue wait + upstream): a
        # timeout here would answer 504 for a request the server may still complete.
        "    timeout server 60s",
        "    timeout queue 5s",
        # Retry only connections that could not be opened, each on another server.
        "    retries 3",
        "    retry-on conn-failure",
        "    option redispatch 1",
        "    option forwardfor",
        "",
        "frontend clients",
        f"    bind 127.0.0.1:{port}",
        "    default_backend creditgate",
        "",
        "backend creditgate",
        "    balance roundrobin",
        "    option httpchk GET /health/ready",
        "    http-check expect status 200",
        "    default-server inter 300ms fall 2 rise 2",
        *(f"    server c{i} {address} check" for i, address in enumerate(servers)),
        "",
    ]
    return "\n".join(lines)


@contextmanager
def haproxy(servers: list[str]) -> Iterator[str]:
    """Run haproxy in the foreground with a generated config; yields the clients' URL."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed (scripts/setup --dev installs it)")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="creditgate-haproxy-"))
    cfg = directory / "haproxy.cfg"
    cfg.write_text(config(port, servers))
    check = subprocess.run([binary, "-c", "-q", "-f", str(cfg)], capture_output=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused its config: {check.stderr.decode()[:2000]}")
    log = (directory / "haproxy.log").open("wb")
    process = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=log)
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"haproxy did not start: {(directory / 'haproxy.log').read_text()}"
                )
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
