"""A redis-server of a test's own (to freeze with SIGSTOP or stop), on a free loopback port."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.conftest import IN_CI
from tests.server import free_port


@contextmanager
def own_redis_server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The process and its URL, answering PING; killed (thawed first) at the end.
    Under CI=true a missing redis-server fails the test, elsewhere it is skipped."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        if IN_CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis(port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:  # it takes a moment to listen
            try:
                client.ping()
                break
            except redis.RedisError:
                assert process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server never answered"
                time.sleep(0.05)
        client.close()
        yield process, url
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()
