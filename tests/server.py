"""A real `creditgate serve` process on a free port, for tests that need a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# Where the servers this suite starts write their logs.
SERVER_LOGS = Path(tempfile.mkdtemp(prefix="creditgate-server-logs-"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]


def start(
    database_url: str,
    admin_token: str,
    port: int,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Server:
    """Start `creditgate serve` and wait until it answers /health."""
    env = {
        **os.environ,
        "CREDITGATE_LOG_LEVEL": "info",
        "CREDITGATE_ADMIN_TOKEN": admin_token,  # from the environment: argv is public
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "creditgate",
        "serve",
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--workers",
        str(workers),
    ]
    # Its log goes to a file the suite checks for secrets at the end (tests/conftest.py).
    log = (SERVER_LOGS / f"serve-{port}-{time.monotonic_ns()}.log").open("wb")
    process = subprocess.Popen(command, env=env, stderr=log)
    log.close()
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            stop(server)
            raise RuntimeError(f"creditgate serve did not start (exit {server.process.poll()})")
        time.sleep(0.1)


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@contextmanager
def live_server(
    database_url: str,
    admin_token: str,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    server = start(database_url, admin_token, free_port(), workers, extra_env)
    try:
        yield server.url
    finally:
        stop(server)


@contextmanager
def app_in_thread(app: object) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a background thread; yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        # As `creditgate serve` runs it: X-Forwarded-* from a client is not trusted by default.
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", proxy_headers=False)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
