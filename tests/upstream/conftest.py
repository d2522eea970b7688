"""The real Firecrawl (tests/upstream/firecrawl.py), once for this folder, and a gateway before it.

Under CI=true a missing prerequisite (Node, npm, redis-server, the source) or a failed build fails
these tests; elsewhere they are skipped with the reason. A Firecrawl that was built but does not
start fails them everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from creditgate.app.asgi import create_app
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import ADMIN_TOKEN, IN_CI
from tests.server import app_in_thread
from tests.upstream import firecrawl as fc

UPSTREAM_KEY = "fc-upstream-own-key"
SLOW_SECONDS = 1.0  # how long each of the test site's /slow/ pages takes

# What the summary at the end says about this suite's cost (CI's time is measured).
TIMINGS: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "real Firecrawl (tests/upstream)")
        for name, value in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {value}")


# Package scope: stopped (its 2.5 GB and its worker's polling) once this folder's tests are done.
@pytest.fixture(scope="package")
def firecrawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fc.Firecrawl]:
    began = time.monotonic()
    try:
        fc.run_prerequisites()
        built = fc.build()
    except fc.Unavailable as exc:
        if IN_CI:
            pytest.fail(f"the real Firecrawl is required under CI=true: {exc}", pytrace=False)
        pytest.skip(f"the real Firecrawl is not available: {exc}")
    how = "cached" if built.cached else "built"
    TIMINGS["build"] = f"{how} in {built.seconds:.1f} s ({built.key}, {built.api})"
    fc.log.warning("Firecrawl %s", TIMINGS["build"])
    logs = tmp_path_factory.mktemp("firecrawl-logs")
    up = time.monotonic()
    try:
        with fc.running(built, logs, slow_seconds=SLOW_SECONDS) as running:
            TIMINGS["start"] = f"{time.monotonic() - up:.1f} s (logs in {logs})"
            yield running
    except fc.Unavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        TIMINGS["in all"] = f"{time.monotonic() - began:.1f} s: build, start, tests, stop"


@dataclass
class Gateway:
    url: str
    ctx: AppContext
    upstream: fc.Firecrawl


@pytest.fixture
def gateway(db: Database, firecrawl: fc.Firecrawl) -> Iterator[Gateway]:
    ctx = AppContext(
        db=db,
        admin_token=ADMIN_TOKEN,
        upstream=Upstream(firecrawl.url, UPSTREAM_KEY, timeout_s=60.0),
        follow_seconds=0.3,
    )
    with app_in_thread(create_app(ctx)) as url:
        yield Gateway(url, ctx, firecrawl)


def standin_pages(log: Path, since: float) -> list[tuple[float, float, str]]:
    """(began, ended, url) of every page the browser stand-in loaded that began after `since`
    (epoch seconds), from its log lines `END <t> <url> began=<t>`."""
    pages = []
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "END" and parts[3].startswith("began="):
            began = float(parts[3].removeprefix("began="))
            if began >= since:
                pages.append((began, float(parts[1]), parts[2]))
    return pages


def peak_in_flight(pages: list[tuple[float, float, str]]) -> int:
    events = sorted([(b, 1) for b, _, _ in pages] + [(e, -1) for _, e, _ in pages])
    peak = now = 0
    for _, step in events:  # at a tie an end sorts first: back to back is not overlapping
        now += step
        peak = max(peak, now)
    return peak
