"""The official Python SDK through the gateway (issue 7, "Tests that must exist and pass").

Findings: "an upstream 5xx becomes a 502 ... the Python SDK retries every 502 three times (3
upstream calls, 3 holds for one `scrape`) and raises a generic error instead of
`InternalServerError`", and "a cancelled crawl is settled at cancel time".
"""

from __future__ import annotations

from firecrawl import Firecrawl

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import team_with_key
from tests.security.support import charged, open_holds, remaining, settled, upstream_final


def _scrape_calls(fake: Fake) -> int:
    return sum(1 for method, path in fake.state.paths if (method, path) == ("POST", "/v2/scrape"))


def _raised(client: Firecrawl, url: str) -> type[BaseException] | None:
    try:
        client.scrape(url)
    except Exception as exc:
        return type(exc)
    return None


def test_the_sdk_raises_for_an_upstream_500_what_it_raises_against_firecrawl_with_one_call(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """A scrape whose every engine fails: against the upstream directly the SDK raises its
    class for a 500 after one call; through the gateway it raises the same class, the upstream
    was called once (no retries of a 502), and nothing is charged or held."""
    team, key, _ = team_with_key(db, now())
    url = "https://example.com/fail"
    direct = _raised(Firecrawl(api_key="fc-direct", api_url=fake.url), url)
    assert direct is not None and direct.__name__ == "InternalServerError"
    assert _scrape_calls(fake) == 1
    through = _raised(Firecrawl(api_key=key, api_url=gateway.url), url)
    assert (through, _scrape_calls(fake) - 1) == (direct, 1)
    assert (remaining(db, team.id), open_holds(db, team.id)) == (3000, 0)


def test_a_crawl_cancelled_through_the_sdk_is_charged_the_upstreams_final_credits_used(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Started and cancelled with the SDK: the team's final charge is the upstream's final
    creditsUsed, pages finished after the cancel included, and the SDK's own status says so."""
    team, key, _ = team_with_key(db, now())
    client = Firecrawl(api_key=key, api_url=gateway.url)
    job = client.start_crawl("https://site.example", limit=4)
    assert client.cancel_crawl(job.id) is True
    crawl = fake.state.crawls[job.id]
    assert crawl.done_at_cancel is not None, "the crawl had finished before the cancel"
    settled(db, team.id)
    final = upstream_final(fake, job.id)
    assert final == crawl.done_at_cancel + fake.state.after_cancel
    assert charged(db, team.id) == final
    status = client.get_crawl_status(job.id)
    assert (status.status, status.credits_used) == ("cancelled", final)
    assert charged(db, team.id) == final
