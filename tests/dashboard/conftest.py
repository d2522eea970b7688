"""Fixtures for the dashboard's browser tests: Debian's Chromium driven by Playwright, a live
`creditgate serve`, and where screenshots go.

Screenshots are test artifacts: tests/artifacts/dashboard/ (gitignored), or the folder named by
CREDITGATE_TEST_ARTIFACTS. Without /usr/bin/chromium the browser tests are skipped locally and
fail under CI=true (scripts/setup --dev installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, IN_CI
from tests.server import live_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get(
        "CREDITGATE_TEST_ARTIFACTS", Path(__file__).parent.parent / "artifacts" / "dashboard"
    )
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: Playwright's sync API runs an event loop in this thread while it is
    open, and later modules' asyncio.run() must not find it."""
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: scripts/setup --dev installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (scripts/setup --dev installs it as root)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(db: Database, database_url: str) -> Iterator[str]:
    """A live server on the test's database (`db` runs verify after the test)."""
    del db
    with live_server(database_url, ADMIN_TOKEN) as url:
        yield url


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot folder: artifacts/dashboard/<test name with its parameters>."""
    folder: Path = ARTIFACTS / request.node.name.replace("[", "-").replace("]", "")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
