"""A fake Firecrawl upstream and a gateway in front of it, both real HTTP servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from creditgate.app.asgi import create_app
from creditgate.gateway import discovery
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import ADMIN_TOKEN
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.server import app_in_thread

UPSTREAM_KEY = "fc-upstream-own-key"


@dataclass
class Fake:
    url: str
    state: FakeState


@pytest.fixture
def fake() -> Iterator[Fake]:
    state = FakeState()
    with app_in_thread(make_app(state)) as url:
        state.base_url = url
        yield Fake(url, state)


@dataclass
class Gateway:
    url: str
    ctx: AppContext


@pytest.fixture
def gateway(db: Database, fake: Fake) -> Iterator[Gateway]:
    ctx = AppContext(
        db=db,
        admin_token=ADMIN_TOKEN,
        upstream=Upstream(fake.url, UPSTREAM_KEY, timeout_s=1.0),
        follow_seconds=0.2,
        queue_wait_seconds=3.0,
        page_grace_seconds=0.5,  # a cancelled job's pages may run this long (tests set more)
        # The whole gateway suite runs on credit leases with CREDITGATE_TEST_LEASES=1.
        use_leases=os.environ.get("CREDITGATE_TEST_LEASES") == "1",
    )
    known_without_a_probe(ctx, fake)
    with app_in_thread(create_app(ctx)) as url:
        yield Gateway(url, ctx)


def known_without_a_probe(ctx: AppContext, fake: Fake) -> None:
    """What the gateway learns of the fake by its probe, set beforehand, so that the fake's
    record holds only what a test sent (the probe itself: test_upstream_discovery.py)."""
    assert ctx.upstream is not None
    discovery.traits(ctx.upstream).v2_crawl_concurrency = fake.state.v2_crawl_takes_concurrency


def early_in_a_minute() -> None:
    """Rate limits count in fixed one-minute windows of the real clock: a test that counts
    requests waits, if need be, so they all fall in one window."""
    import time

    into = time.time() % 60
    if into > 40:
        time.sleep(60 - into + 0.05)
