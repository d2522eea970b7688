"""Charged what Firecrawl charges, never more than a team has (issue 17).

Each test is a finding of an attack against an upstream that bills pages as Firecrawl's billing
code does (tests/gateway/fake_firecrawl.py `page_cost`, written apart from creditgate's price
table), with its exact request. Before the fix the hold was an estimate from a hand-kept table
and the work ran past it: a team of 100 credits ended at -400 or -800; llms.txt and deep
research were free; an answer claiming a billion credits was believed, or crashed the
settlement. Now the table knows §3's items, what it does not know is held at its dearest page,
every job's hold follows what its reports show, and a figure above what the request could cost
is capped.
"""

from __future__ import annotations

import httpx
import pytest

from creditgate.domain.instants import now
from creditgate.domain.price_table import DEFAULT_PRICES
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import bearer, team_with_key
from tests.metrics_support import scrape as read_metrics
from tests.metrics_support import value
from tests.security.support import (
    charged,
    make_plan,
    post,
    remaining,
    settled,
    start_crawl,
)

DEAREST = DEFAULT_PRICES.dearest_page


def _team(db: Database, credits: int, concurrency: int = 5) -> tuple[str, str]:
    plan = make_plan(db, f"c{credits}x{concurrency}", credits, concurrency=concurrency)
    team, key, _ = team_with_key(db, now(), plan=plan)
    return team.id, key


def _billed(fake: Fake, job_id: str) -> int:
    return fake.state.billed[job_id]


def _in_flight_bound(fake: Fake, price: int) -> int:
    """What a job may overdraw: the pages the upstream finishes between two status reports
    and after a cancel, at their price."""
    return (fake.state.pages_per_poll + fake.state.after_cancel) * price


def test_a_crawl_in_change_tracking_json_mode_is_held_at_five_a_page(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding: a crawl with a changeTracking format in json mode (5 credits a page) was held
    at 1 a page; a team of 100 credits ended at -400. It is held at 5 now: the limit of 100 is
    lowered to the 20 pages the team can pay for, and it pays what Firecrawl bills."""
    fake.state.unlimited_total = 100
    team, key = _team(db, 100)
    tracking = {"type": "changeTracking", "modes": ["json"]}
    body = {
        "url": "https://site.example",
        "limit": 100,
        "scrapeOptions": {"formats": ["markdown", tracking]},
    }
    job_id = start_crawl(gateway, key, body)
    assert fake.state.requests[-1][2]["limit"] == 20
    settled(db, team)
    assert _billed(fake, job_id) == 100
    assert (charged(db, team), remaining(db, team)) == (100, 0)


def test_a_batch_scrape_with_redact_pii_is_held_at_five_a_page(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding: a batch scrape with `redactPII` (+4 a page, later releases) ended a team of 100
    at -400. 100 URLs at 5 are refused up front (402, nothing forwarded); 20 are paid in full."""
    team, key = _team(db, 100)
    urls = [f"https://site.example/p{i}" for i in range(100)]
    refused = post(gateway, key, "/v2/batch/scrape", {"urls": urls, "redactPII": True})
    assert refused.status_code == 402, refused.text
    assert not [r for r in fake.state.requests if r[1].endswith("/batch/scrape")]
    job_id = start_crawl(gateway, key, {"urls": urls[:20], "redactPII": True}, "/v2/batch/scrape")
    settled(db, team)
    assert _billed(fake, job_id) == 100
    assert (charged(db, team), remaining(db, team)) == (100, 0)


def test_a_crawl_with_query_and_lockdown_is_held_at_nine_a_page(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding: a crawl with the `query` format and `lockdown` (9 a page, later releases) ended
    a team of 100 at -800. It is held at 9: 11 pages, 99 credits, as billed."""
    fake.state.unlimited_total = 100
    team, key = _team(db, 100)
    options = {"formats": ["markdown", {"type": "query", "prompt": "price?"}], "lockdown": True}
    job_id = start_crawl(
        gateway, key, {"url": "https://site.example", "limit": 100, "scrapeOptions": options}
    )
    assert fake.state.requests[-1][2]["limit"] == 11
    settled(db, team)
    assert (_billed(fake, job_id), charged(db, team), remaining(db, team)) == (99, 99, 1)


def test_an_option_the_table_does_not_know_is_held_at_the_dearest_page(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """An option of a release newer than the table (here `newOption`, free upstream) cannot be
    priced in advance: the page is held at the table's dearest page, never at 1; the charge is
    what the upstream reports."""
    team, key = _team(db, 3000)
    body = {"url": "https://site.example", "limit": 5, "scrapeOptions": {"newOption": True}}
    started = post(gateway, key, "/v2/crawl", body)
    assert started.status_code == 200, started.text
    holds = httpx.get(f"{gateway.url}/v2/team/credit-usage", headers=bearer(key)).json()
    assert holds["data"]["remainingCredits"] == 3000 - 5 * DEAREST  # a page held at 39
    settled(db, team)
    assert (charged(db, team), remaining(db, team)) == (5, 2995)


@pytest.mark.parametrize("limit", [None, 100])
def test_a_crawl_of_pdfs_grows_its_hold_with_its_reports_and_stops_when_the_team_cannot_pay(
    db: Database, fake: Fake, gateway: Gateway, limit: int | None
) -> None:
    """PDF pages are known only after the page (a `pdf` page here costs 3: two pages beyond the
    first): the hold at 1 a page cannot bound the crawl; the hold following the reports does.
    A team of 100 crawling 100 such pages (with or without a limit) had been charged 300 and
    ended at -200. Now the hold grows by steps at the price the reports show until the team
    cannot pay the next, the crawl is cancelled upstream, and what was done is charged: the
    team goes below zero by no more than the pages between two reports and after the cancel."""
    fake.state.unlimited_total = 100
    team, key = _team(db, 100)
    body: dict[str, object] = {"url": "https://site.example/pdf"}
    if limit is not None:
        body["limit"] = limit
    job_id = start_crawl(gateway, key, body)
    settled(db, team, timeout=40)
    crawl = fake.state.crawls[job_id]
    assert crawl.status == "cancelled", "the crawl ran to its end: nothing stopped it"
    assert crawl.completed < 100
    assert charged(db, team) == _billed(fake, job_id) == 3 * crawl.completed
    assert remaining(db, team) >= -_in_flight_bound(fake, 3)


def test_llmstxt_and_deep_research_are_charged_what_their_answers_show(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding: their status answers carry no credit figure, so the hold (`maxUrls`) was
    released and the work was free. Now llms.txt is charged the URLs its text lists and deep
    research the URLs it analysed, each at most `maxUrls`, as Firecrawl bills them."""
    team, key = _team(db, 3000)
    llms = start_crawl(gateway, key, {"url": "https://site.example"}, "/v1/llmstxt")
    research = start_crawl(gateway, key, {"query": "q", "maxUrls": 5}, "/v1/deep-research")
    settled(db, team)
    assert (_billed(fake, llms), _billed(fake, research)) == (4, 5)
    assert (charged(db, team), remaining(db, team)) == (9, 2991)


def test_a_plain_scrape_claiming_a_billion_credits_is_capped_at_the_dearest_page(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding: an answer claiming 10**9 credits for one plain scrape was believed (a team went
    to -999,999,900). It moves at most what the request could cost: the dearest page; it is
    counted in /metrics; the client still gets the upstream's answer whole."""
    team, key = _team(db, 100)
    before = read_metrics(gateway.url)
    answer = post(gateway, key, "/v2/scrape", {"url": "https://example.com/liar-billion"})
    assert answer.status_code == 200
    assert answer.json()["data"]["metadata"]["creditsUsed"] == 10**9  # relayed as it came
    settled(db, team)
    assert (charged(db, team), remaining(db, team)) == (DEAREST, 100 - DEAREST)
    after = read_metrics(gateway.url)
    name = "creditgate_upstream_figures_capped_total"
    assert value(after, name, endpoint="scrape") - value(before, name, endpoint="scrape") == 1


def test_a_thousand_documents_of_a_billion_credits_neither_crash_nor_overflow(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding: an answer of 1,001 documents x 10**9 credits crashed the settlement (a 500, the
    connection cut). It is capped like any other figure; the answer reaches the client whole."""
    team, key = _team(db, 100)
    answer = post(gateway, key, "/v2/scrape", {"url": "https://example.com/liar-many"})
    assert answer.status_code == 200
    assert len(answer.json()["data"]) == 1001
    settled(db, team)
    assert (charged(db, team), remaining(db, team)) == (DEAREST, 100 - DEAREST)


def test_a_crawl_claiming_a_billion_credits_is_capped_at_its_pages_at_the_dearest_page(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """A crawl's status claiming 10**9 moves at most its limit at the dearest page, and the
    team's balance never goes below what it can pay for (the hold grows to the cap only as far
    as the team can pay; the crawl is cancelled when it cannot)."""
    team, key = _team(db, 3000)
    start_crawl(gateway, key, {"url": "https://site.example/liar", "limit": 4})
    settled(db, team)
    assert charged(db, team) == 4 * DEAREST
    assert remaining(db, team) == 3000 - 4 * DEAREST


def test_a_figure_that_is_no_count_is_charged_at_the_tables_price(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """`creditsUsed: -5` is no count of credits: logged, and the table's price is charged (1)."""
    team, key = _team(db, 100)
    answer = post(gateway, key, "/v2/scrape", {"url": "https://example.com/liar"})
    assert answer.status_code == 200
    settled(db, team)
    assert (charged(db, team), remaining(db, team)) == (1, 99)


def test_a_scrape_whose_proxy_escalates_overdraws_by_its_own_excess_at_most(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """A synchronous request is held at the table's price and charged what it reports: `proxy:
    "auto"` that escalates to stealth costs 5 where 1 was held. A team of 1 credit goes to -4:
    the request's own excess over its hold, the one overdraft a synchronous request can make
    (docs/security.md §8)."""
    team, key = _team(db, 1)
    answer = post(gateway, key, "/v2/scrape", {"url": "https://example.com/escalates"})
    assert answer.status_code == 200
    settled(db, team)
    assert (charged(db, team), remaining(db, team)) == (5, -4)
    again = post(gateway, key, "/v2/scrape", {"url": "https://example.com/plain"})
    assert again.status_code == 402


def test_a_bad_body_is_refused_in_firecrawls_shape_with_its_code(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Issue 18: creditgate's own 400s lacked Firecrawl's `code`. A body that cannot be priced
    is `BAD_REQUEST` with zod-like details; one that is not JSON is Firecrawl's own
    `BAD_REQUEST_INVALID_JSON`. Nothing is held or forwarded either way."""
    team, key = _team(db, 100)
    bad = post(gateway, key, "/v2/crawl", {"url": "https://site.example", "limit": -1})
    assert bad.status_code == 400
    assert {k: bad.json()[k] for k in ("success", "code", "error")} == {
        "success": False,
        "code": "BAD_REQUEST",
        "error": "Bad Request",
    }
    assert bad.json()["details"][0]["path"] == ["limit"]
    broken = httpx.post(
        f"{gateway.url}/v2/scrape",
        content=b'{"url": ',
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert (broken.status_code, broken.json()) == (
        400,
        {
            "success": False,
            "code": "BAD_REQUEST_INVALID_JSON",
            "error": "Bad request, malformed JSON",
        },
    )
    assert not fake.state.requests
    assert (charged(db, team), remaining(db, team)) == (0, 100)


def test_a_crawl_limit_of_zero_is_forwarded_as_firecrawl_takes_it(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Issue 18: Firecrawl accepts `limit: 0`; creditgate refused it. It is forwarded as sent,
    held as one page (its start page may still be scraped)."""
    team, key = _team(db, 100)
    started = post(gateway, key, "/v2/crawl", {"url": "https://site.example", "limit": 0})
    assert started.status_code == 200, started.text
    assert fake.state.requests[-1][2]["limit"] == 0
    settled(db, team)
    assert remaining(db, team) == 100 - charged(db, team)


def test_append_to_id_is_refused_before_anything_is_held_or_forwarded(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Outside test of issue 17: `appendToId` added a batch's URLs to an existing job (any
    team's, behind the shared upstream key): 90 pages were billed upstream and the team
    charged 1; another team's pages landed on the first team's bill (-2). It is refused in
    Firecrawl's shape; nothing is held or forwarded."""
    team, key = _team(db, 100)
    job_id = start_crawl(gateway, key, {"urls": ["https://a.example/0"]}, "/v2/batch/scrape")
    settled(db, team)
    forwarded = len(fake.state.requests)
    urls = [f"https://a.example/{i}" for i in range(90)]
    answer = post(gateway, key, "/v2/batch/scrape", {"urls": urls, "appendToId": job_id})
    assert (answer.status_code, answer.json()["code"]) == (400, "BAD_REQUEST")
    assert answer.json()["details"][0]["path"] == ["appendToId"]
    assert len(fake.state.requests) == forwarded
    assert (charged(db, team), remaining(db, team)) == (1, 99)


def test_a_v2_search_of_several_sources_is_held_for_each(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Outside test of issue 17: a v2 search returns `limit` results from each source; it was
    held and capped as one source (billed 60, charged 20). It is held for every source and
    charged what it reports."""
    team, key = _team(db, 100)
    sources = [{"type": "web"}, {"type": "news"}, {"type": "images"}]
    answer = post(gateway, key, "/v2/search", {"query": "x", "limit": 20, "sources": sources})
    assert answer.status_code == 200
    settled(db, team)
    assert (charged(db, team), remaining(db, team)) == (60, 40)
    too_many = post(gateway, key, "/v2/search", {"query": "x", "limit": 20, "sources": sources})
    assert too_many.status_code == 402  # 60 held for 40 left: refused before the work


@pytest.mark.parametrize("quirk", ["fraction", "text", "nofigure"])
def test_a_job_status_without_a_count_of_credits_is_charged_its_pages_at_the_tables_price(
    db: Database, fake: Fake, gateway: Gateway, quirk: str
) -> None:
    """Outside test of issue 17: a crawl whose status sent `creditsUsed` as 30.5, as "30" or
    not at all was charged 0. Its pages done are charged at the table's price."""
    team, key = _team(db, 100)
    job_id = start_crawl(gateway, key, {"url": f"https://site.example/{quirk}", "limit": 6})
    settled(db, team)
    assert fake.state.crawls[job_id].completed == 6
    assert (charged(db, team), remaining(db, team)) == (6, 94)
