"""`python -m bench.upstream_clients`: the upstream client alone, three ways, in one run.

A raw ASGI proxy (uvicorn, no framework, no meter) forwards `POST /v2/scrape` to the fake
upstream and streams its answer back, with httpx (the gateway's client until issue 20),
aiohttp's client, or creditgate's own pool (web/http1.py). wrk loads each at 1 and 32
connections; the proxy process's CPU milliseconds per request and its requests/s are printed.
This is how web/http1.py was chosen; its docstring holds the figures.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from tests.server import free_port

from bench.__main__ import ROOT, SCRAPE_LUA, cpu_seconds
from bench.load import wrk_post

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Forward = Callable[[bytes, Send], Awaitable[None]]
CLIENTS = ("httpx", "aiohttp", "pool")
JSON = {"content-type": "application/json"}


def _httpx(upstream: str) -> Forward:
    import httpx

    client = httpx.AsyncClient(
        base_url=upstream,
        timeout=httpx.Timeout(120.0, connect=5.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )

    async def forward(body: bytes, send: Send) -> None:
        request = client.build_request("POST", "/v2/scrape", headers=JSON, content=body)
        response = await client.send(request, stream=True)
        try:
            await send({"type": "http.response.start", "status": response.status_code})
            async for chunk in response.aiter_bytes():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body"})
        finally:
            await response.aclose()

    return forward


def _aiohttp(upstream: str) -> Forward:
    import aiohttp

    session: list[aiohttp.ClientSession] = []

    async def forward(body: bytes, send: Send) -> None:
        if not session:  # made in the running loop
            connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=4.0)
            timeout = aiohttp.ClientTimeout(sock_connect=5.0, sock_read=120.0)
            session.append(
                aiohttp.ClientSession(
                    upstream,
                    connector=connector,
                    timeout=timeout,
                    cookie_jar=aiohttp.DummyCookieJar(),
                )
            )
        async with session[0].post(
            "/v2/scrape", data=body, headers=JSON, allow_redirects=False
        ) as response:
            await send({"type": "http.response.start", "status": response.status})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body"})

    return forward


def _pool(upstream: str) -> Forward:
    from creditgate.web import http1

    pool = http1.Pool(upstream, 200, 50, http1.Timeouts(5.0, 120.0, 120.0, 120.0))

    async def forward(body: bytes, send: Send) -> None:
        response = await pool.request("POST", "/v2/scrape", "", JSON, body)
        try:
            await send({"type": "http.response.start", "status": response.status_code})
            async for chunk in response.aiter_bytes():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body"})
        finally:
            await response.aclose()

    return forward


def _app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    kind = os.environ.get("BENCH_CLIENT", "pool")
    upstream = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:1")
    forward = {"httpx": _httpx, "aiohttp": _aiohttp, "pool": _pool}[kind](upstream)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await forward(body, send)

    return app


app = _app() if os.environ.get("BENCH_CLIENT") else None


def wait_for_port(port: int, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _serve(kind: str, upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.upstream_clients:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log", "--lifespan", "off"],
        cwd=ROOT, env={**os.environ, "BENCH_CLIENT": kind, "BENCH_UPSTREAM": upstream},
    )  # fmt: skip
    try:
        wait_for_port(port)
    except OSError:
        process.terminate()
        raise
    return process, f"http://127.0.0.1:{port}"


def main(seconds: int, clients: tuple[str, ...] = CLIENTS) -> None:
    script = Path(tempfile.mkdtemp()) / "scrape.lua"
    script.write_text(SCRAPE_LUA)
    fake_port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.gateway.fake_firecrawl:app", "--port",
         str(fake_port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
    )  # fmt: skip
    upstream = f"http://127.0.0.1:{fake_port}"
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        wait_for_port(fake_port)
        for kind in clients:
            servers[kind] = _serve(kind, upstream)
        print(f"{'client':10} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'cpu ms/req':>11}")
        for conns in (1, 32):
            direct = wrk_post(f"{upstream}/v2/scrape", conns, seconds, script, {})
            print(f"{'(direct)':10} {conns:5} {direct.rps:8.0f} {direct.p50_ms:8.2f}")
            for kind, (process, url) in servers.items():
                wrk_post(f"{url}/v2/scrape", conns, 1, script, {})  # warm: connections open
                before = cpu_seconds(process.pid)
                load = wrk_post(f"{url}/v2/scrape", conns, seconds, script, {})
                cpu_ms = (cpu_seconds(process.pid) - before) * 1000 / max(load.rps * seconds, 1)
                print(f"{kind:10} {conns:5} {load.rps:8.0f} {load.p50_ms:8.2f} {cpu_ms:11.3f}")
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_clients")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    main(args.seconds, tuple(args.clients.split(",")))
