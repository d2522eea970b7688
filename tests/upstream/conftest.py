"""The real Firecrawl (tests/upstream/firecrawl.py), once for this folder, and a gateway before it.

Under CI=true a missing prerequisite (Node, npm, redis-server, the source) or a failed build fails
these tests; elsewhere they are skipped with the reason. A Firecrawl that was built but does not
start fails them everywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from creditgate.app.asgi import create_app
from creditgate.cli.main import main
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import ADMIN_TOKEN, IN_CI
from tests.server import app_in_thread
from tests.upstream import firecrawl as fc

UPSTREAM_KEY = "fc-upstream-own-key"
SLOW_SECONDS = 1.0  # how long each of the test site's /slow/ pages takes

# What the summary at the end says about this suite's cost (CI's time is measured), per build.
TIMINGS: dict[str, dict[str, str]] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "real Firecrawl (tests/upstream), per build")
        for variant, timings in TIMINGS.items():
            for name, value in timings.items():
                terminalreporter.write_line(f"{variant}: {name}: {value}")


def _unavailable(exc: Exception) -> None:
    if IN_CI:
        pytest.fail(f"the real Firecrawl is required under CI=true: {exc}", pytrace=False)
    pytest.skip(f"the real Firecrawl is not available: {exc}")


# Package scope, one build at a time (pytest stops the first before it starts the second): each
# takes about 2.5 GB and its worker's polling, and is stopped once this folder's tests are done.
@pytest.fixture(scope="package", params=list(fc.VARIANTS))
def firecrawl(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[fc.Firecrawl]:
    variant: str = request.param
    timings = TIMINGS.setdefault(variant, {})
    began = time.monotonic()
    try:
        fc.run_prerequisites()
        built = fc.build(fc.VARIANTS[variant])
    except fc.Unavailable as exc:
        _unavailable(exc)
    how = "cached" if built.cached else "built"
    timings["build"] = f"{how} in {built.seconds:.1f} s ({built.key}, {built.api})"
    fc.log.warning("Firecrawl %s %s", variant, timings["build"])
    logs = tmp_path_factory.mktemp(f"firecrawl-{variant}-logs")
    up = time.monotonic()
    try:
        with fc.running(built, logs, slow_seconds=SLOW_SECONDS) as running:
            timings["start"] = f"{time.monotonic() - up:.1f} s (logs in {logs})"
            tests_began = time.monotonic()
            yield running
            timings["tests"] = f"{time.monotonic() - tests_began:.1f} s"
    except fc.Unavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        timings["in all"] = f"{time.monotonic() - began:.1f} s: build, start, tests, stop"


@pytest.fixture(autouse=True)
def verified(database_url: str) -> Iterator[None]:
    """`creditgate verify` (the CLI) finds the ledger consistent after each test."""
    yield
    result = CliRunner().invoke(main, ["verify", "--json", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["success"], report["data"]["differences"]) == (True, []), report


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
