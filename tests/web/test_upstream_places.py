"""A team's wait for one of its upstream connections is bounded (issue 19, item 1): with all of
its places held by its own slow answers, its next call is a 503 that never reached the upstream,
after TEAM_PLACE_WAIT_S, not a wait as long as those answers take. Another team's call passes."""

from __future__ import annotations

import asyncio
import time

import pytest

from creditgate.web import upstream as upstream_module
from creditgate.web.upstream import Upstream, UpstreamFailed
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.server import app_in_thread


def test_a_teams_call_past_its_share_waits_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "TEAM_PLACE_WAIT_S", 0.3)
    state = FakeState()
    with app_in_thread(make_app(state)) as url:

        async def run() -> tuple[UpstreamFailed, float, int]:
            up = Upstream(url, None, connections=8, team_connections=1)
            held = await up.open("GET", "/v1/team/credit-usage", "", {}, b"", team="a")
            began = time.monotonic()
            with pytest.raises(UpstreamFailed) as refused:
                await up.open("GET", "/v1/team/credit-usage", "", {}, b"", team="a")
            waited = time.monotonic() - began
            other = await up.send("GET", "/v1/team/credit-usage", "", {}, b"", team="b")
            await held.aclose()
            again = await up.send("GET", "/v1/team/credit-usage", "", {}, b"", team="a")
            await up.close()
            assert (other.status, again.status) == (200, 200)
            return refused.value, waited, len(state.requests)

        failed, waited, sent = asyncio.run(run())
    assert (failed.status, failed.error) == (503, upstream_module.TEAM_BUSY)
    assert not failed.may_still_run
    assert 0.3 <= waited < 5  # the bound, not the held answer's time
    assert sent == 3  # the refused call never reached the upstream
