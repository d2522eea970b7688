"""The gateway in front of a (fake) self-hosted Firecrawl: admission, settlement, jobs."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import text

from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import account, keys, ledger, plans, teams
from creditgate.storage.database import Database
from tests.gateway.conftest import UPSTREAM_KEY, Fake, Gateway, early_in_a_minute
from tests.helpers import bearer, team_with_key

INSUFFICIENT = (
    "Insufficient credits to perform this request. For more credits, you can upgrade your plan "
    "at https://firecrawl.dev/pricing or try changing the request limit to a lower value."
)


def remaining(db: Database, team_id: str) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), now()).remaining


def scrape(gw: Gateway, key: str, url: str, **extra: object) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v2/scrape", json={"url": url, **extra}, headers=bearer(key), timeout=10
    )


def small_plan(db: Database, **limits: int) -> str:
    values = {"credits": 1000, "concurrency": 5, "scrape_rpm": 100, "crawl_rpm": 100, **limits}
    plans.create_plan(
        db,
        Plan(
            "tiny",
            values["credits"],
            "month",
            values["concurrency"],
            values["scrape_rpm"],
            values["crawl_rpm"],
        ),
        now(),
    )
    return "tiny"


def test_scrape_is_charged_what_the_upstream_reports(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    plain = scrape(gateway, key, "https://example.com")
    assert plain.status_code == 200
    assert plain.json()["data"]["metadata"]["creditsUsed"] == 1
    assert scrape(gateway, key, "https://example.com/x", formats=["json"]).status_code == 200
    assert scrape(gateway, key, "https://example.com/doc.pdf").status_code == 200
    missing = scrape(gateway, key, "https://example.com/missing")
    assert missing.json()["data"]["metadata"]["statusCode"] == 404  # still charged
    assert remaining(db, team.id) == 3000 - (1 + 5 + 3 + 1)
    assert fake.state.auth == [f"Bearer {UPSTREAM_KEY}"] * 4  # the client's key never leaves
    jobs = account.activity(db, teams.get_team(db, team.id), now(), "scrape", 10, None).rows
    assert [r.target for r in jobs][:2] == [
        "https://example.com/missing",
        "https://example.com/doc.pdf",
    ]


def test_map_and_search_without_a_reported_cost_fall_back_to_the_cost_table(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    mapped = httpx.post(
        f"{gateway.url}/v2/map", json={"url": "https://example.com"}, headers=bearer(key)
    )
    assert [link["url"] for link in mapped.json()["links"]] == [
        "https://example.com/a",
        "https://example.com/b",
    ]
    found = httpx.post(
        f"{gateway.url}/v2/search", json={"query": "creditgate"}, headers=bearer(key)
    )
    assert found.status_code == 200
    # v1 search reports nothing: charged what v2 reports for the same work, 1 per result.
    v1 = httpx.post(f"{gateway.url}/v1/search", json={"query": "creditgate"}, headers=bearer(key))
    assert v1.status_code == 200
    assert remaining(db, team.id) == 3000 - 1 - 3 - 3


def test_402_before_any_upstream_call(db: Database, fake: Fake, gateway: Gateway) -> None:
    team, key, _ = team_with_key(db, now(), plan=small_plan(db, credits=3))
    refused = scrape(gateway, key, "https://example.com", formats=["json"])
    assert refused.status_code == 402
    assert refused.json()["error"] == INSUFFICIENT
    assert fake.state.requests == []
    assert remaining(db, team.id) == 3


def test_unauthenticated_requests_never_reach_the_upstream(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    for headers, status in (({}, 401), ({"Authorization": "Bearer fc-" + "0" * 32}, 401)):
        response = httpx.post(
            f"{gateway.url}/v2/scrape", json={"url": "https://a.b"}, headers=headers
        )
        assert response.status_code == status
    assert fake.state.requests == []


def test_the_plans_rate_limit_gives_429_with_retry_after(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    _, key, _ = team_with_key(db, now(), plan=small_plan(db, scrape_rpm=2))
    early_in_a_minute()
    assert [scrape(gateway, key, "https://example.com").status_code for _ in range(2)] == [200, 200]
    limited = scrape(gateway, key, "https://example.com")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"].startswith(
        "Rate limit exceeded. Consumed (req/min): 2, Remaining (req/min): 0."
    )
    assert len(fake.state.requests) == 2


def three_half_second_scrapes(gateway: Gateway, key: str) -> list[httpx.Response]:
    """Three scrapes of half a second each, sent in order 50 ms apart, answers by status."""
    answers: list[httpx.Response] = []

    def slow() -> None:
        answers.append(scrape(gateway, key, "https://example.com/wait"))

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # in order, all three well within the first one's half second
    for t in threads:
        t.join()
    return sorted(answers, key=lambda a: a.status_code)


def test_requests_beyond_the_concurrency_wait_in_a_bounded_queue(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    # The queue's room is CREDITGATE_QUEUE_ROOM now, no longer the plan's concurrency (issue
    # 18, item 3): set to 1 here, one runs, one waits its turn, one finds the queue full: told
    # to retry in a second (a slot frees when a page ends).
    gateway.ctx.queue_room = 1
    _, key, _ = team_with_key(db, now(), plan=small_plan(db, concurrency=1))
    answers = three_half_second_scrapes(gateway, key)
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2:]
    assert refused[0].headers["Retry-After"] == "1"
    assert refused[0].json() == {
        "success": False,
        "error": "Concurrency limit reached: 1 of 1 concurrent pages are in flight. Retry when "
        "one finishes, or upgrade your plan at https://firecrawl.dev/pricing.",
        "running": 1,
        "maxConcurrency": 1,
    }


def test_a_keys_cap_applies_through_the_gateway(db: Database, fake: Fake, gateway: Gateway) -> None:
    team, _, _ = team_with_key(db, now())
    capped = keys.create_key(db, team.id, now(), name="capped", cap=2)
    assert [scrape(gateway, capped.secret, "https://e.com").status_code for _ in range(3)] == [
        200,
        200,
        402,
    ]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://example.com/slow", 504),  # no answer in time
        ("https://example.com/drop", 502),  # the connection dropped before an answer
    ],
)
def test_no_answer_from_the_upstream_charges_nothing(
    db: Database, fake: Fake, gateway: Gateway, url: str, status: int
) -> None:
    """Nothing is charged. The upstream got the request and may still be scraping the page
    (outside test: a retry after a 504 ran 4 pages upstream on a plan of 2), so its hold and
    page slot stay the page grace (0.5 s here), then are released."""
    team, key, _ = team_with_key(db, now())
    started = time.monotonic()
    response = scrape(gateway, key, url)
    assert response.status_code == status
    assert response.json()["success"] is False
    assert account.queue_status(db, teams.get_team(db, team.id), now()).active == 1
    while account.queue_status(db, teams.get_team(db, team.id), now()).active:
        assert time.monotonic() - started < 10, "the slot was never given back"
        time.sleep(0.05)
    assert remaining(db, team.id) == 3000
    assert history_of(db, team.id) == []  # nothing charged, ever


def history_of(db: Database, team_id: str) -> list[int]:
    return [r.credits for r in account.history(db, teams.get_team(db, team_id), False, now())]


def test_an_upstream_that_cannot_be_reached_gives_the_slot_back_at_once(db: Database) -> None:
    """It never got the request: nothing can be running there."""
    from creditgate.app.asgi import create_app
    from creditgate.web.context import AppContext
    from creditgate.web.upstream import Upstream
    from tests.server import app_in_thread, free_port

    ctx = AppContext(db=db, upstream=Upstream(f"http://127.0.0.1:{free_port()}", None))
    team, key, _ = team_with_key(db, now())
    with app_in_thread(create_app(ctx)) as url:
        body = {"url": "https://e.com"}
        response = httpx.post(f"{url}/v2/scrape", json=body, headers=bearer(key))
    assert (response.status_code, response.json()["error"]) == (
        502,
        "The upstream Firecrawl could not be reached.",
    )
    assert account.queue_status(db, teams.get_team(db, team.id), now()).active == 0
    assert remaining(db, team.id) == 3000


def test_an_upstream_5xx_passes_through_with_its_code_and_charges_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    response = scrape(gateway, key, "https://example.com/fail")
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "code": "SCRAPE_ALL_ENGINES_FAILED",
        "error": "All scraping engines failed!",
    }
    assert remaining(db, team.id) == 3000
    assert account.queue_status(db, teams.get_team(db, team.id), now()).active == 0


def test_upstream_validation_errors_pass_through_and_cost_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    response = scrape(gateway, key, "not a url")
    assert response.status_code == 400
    assert response.json()["details"] == [{"message": "Invalid URL"}]
    assert remaining(db, team.id) == 3000


def test_a_crawl_is_followed_and_settled_page_by_page(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    started = httpx.post(
        f"{gateway.url}/v2/crawl",
        json={"url": "https://site.example", "limit": 4},
        headers=bearer(key),
    )
    assert started.status_code == 200
    job_id = started.json()["id"]
    assert started.json()["url"] == f"{gateway.url}/v2/crawl/{job_id}"
    assert remaining(db, team.id) == 3000 - 4  # the limit is held
    deadline = time.monotonic() + 10
    while account.queue_status(db, teams.get_team(db, team.id), now()).active:
        assert time.monotonic() < deadline, "the follower never finished the crawl"
        time.sleep(0.1)
    assert remaining(db, team.id) == 3000 - 4  # four pages, charged once each
    status = httpx.get(f"{gateway.url}/v2/crawl/{job_id}", headers=bearer(key)).json()
    assert (status["status"], status["creditsUsed"]) == ("completed", 4)
    assert status["next"] == f"{gateway.url}/v2/crawl/{job_id}?skip=2"
    assert remaining(db, team.id) == 3000 - 4
    usage = account.history(db, teams.get_team(db, team.id), True, now())
    assert [(r.key_name, r.credits) for r in usage] == [("default", 4)]
    with db.read() as conn:
        charged = conn.execute(
            text("SELECT DISTINCT job_id, endpoint, target FROM entries WHERE kind = 'charge'")
        ).all()
    assert [tuple(r) for r in charged] == [(job_id, "crawl", "https://site.example")]


def test_a_crawl_limit_is_lowered_to_the_remaining_credits(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    _, key, _ = team_with_key(db, now(), plan=small_plan(db, credits=3))
    started = httpx.post(
        f"{gateway.url}/v2/crawl",
        json={"url": "https://site.example", "limit": 50},
        headers=bearer(key),
    )
    assert started.status_code == 200
    assert fake.state.requests[0][2]["limit"] == 3


def test_other_teams_cannot_see_a_job(db: Database, fake: Fake, gateway: Gateway) -> None:
    _, key, _ = team_with_key(db, now())
    _, other, _ = team_with_key(db, now(), name="other")
    job_id = httpx.post(
        f"{gateway.url}/v2/crawl",
        json={"url": "https://s.example", "limit": 2},
        headers=bearer(key),
    ).json()["id"]
    peek = httpx.get(f"{gateway.url}/v2/crawl/{job_id}", headers=bearer(other))
    assert (peek.status_code, peek.json()["error"]) == (404, "Job not found")


def test_a_cancelled_crawl_is_followed_until_its_total_stops_moving(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    job_id = httpx.post(
        f"{gateway.url}/v2/crawl",
        json={"url": "https://s.example", "limit": 4},
        headers=bearer(key),
    ).json()["id"]
    cancelled = httpx.delete(f"{gateway.url}/v2/crawl/{job_id}", headers=bearer(key))
    assert cancelled.json()["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while account.queue_status(db, teams.get_team(db, team.id), now()).active:
        assert time.monotonic() < deadline, "the cancelled crawl was never settled"
        time.sleep(0.1)
    final = fake.state.crawls[job_id]
    assert final.status == "cancelled"
    assert remaining(db, team.id) == 3000 - final.completed  # what the upstream did, in all


def test_account_routes_are_answered_by_creditgate_not_the_upstream(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    _, key, _ = team_with_key(db, now())
    usage = httpx.get(f"{gateway.url}/v2/team/credit-usage", headers=bearer(key)).json()
    assert usage["data"]["remainingCredits"] == 3000
    assert fake.state.requests == []


def test_grants_show_up_through_the_gateway(db: Database, fake: Fake, gateway: Gateway) -> None:
    team, key, _ = team_with_key(db, now(), plan=small_plan(db, credits=0))
    assert scrape(gateway, key, "https://example.com").status_code == 402
    ledger.grant(db, ledger.GrantRequest(team.id, 10), now())
    assert scrape(gateway, key, "https://example.com").status_code == 200
    assert remaining(db, team.id) == 9


def test_answers_stream_and_a_client_that_leaves_early_is_still_charged(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    with httpx.stream(
        "POST",
        f"{gateway.url}/v2/scrape",
        json={"url": "https://e.com/big"},
        headers=bearer(key),
        timeout=10,
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first.startswith(b'{"success"')
    deadline = time.monotonic() + 10
    while account.queue_status(db, teams.get_team(db, team.id), now()).active:
        assert time.monotonic() < deadline, "the abandoned answer was never settled"
        time.sleep(0.05)
    # Settled from the rest of the answer, read without the client: charged, not released.
    used = account.history(db, teams.get_team(db, team.id), False, now())
    assert [r.credits for r in used] == [1]
    assert remaining(db, team.id) == 3000 - 1


def test_a_whole_streamed_answer_is_settled_before_its_last_byte(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    response = scrape(gateway, key, "https://e.com/big")
    assert len(response.json()["data"]["markdown"]) == 4 << 20
    # No waiting: the charge is in the ledger before the body's last byte was sent.
    used = account.history(db, teams.get_team(db, team.id), False, now())
    assert [r.credits for r in used] == [1]
    assert account.queue_status(db, teams.get_team(db, team.id), now()).active == 0


def test_routes_outside_the_table_are_404_and_never_forwarded(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    for method, path in (
        ("GET", "/v2/stream"),
        ("POST", "/v2/something-new"),
        ("GET", "/v2/deep-thing/42"),
        ("POST", "/v2/agent"),
        ("PUT", "/v2/scrape"),
        ("GET", "/v2/scrape"),
    ):
        response = httpx.request(method, f"{gateway.url}{path}", json={}, headers=bearer(key))
        assert (response.status_code, response.json()) == (
            404,
            {"success": False, "error": "Not Found"},
        ), (method, path)
    assert fake.state.requests == []
    assert remaining(db, team.id) == 3000


def test_an_operator_may_add_a_route_with_its_kind(db: Database, fake: Fake) -> None:
    from creditgate.app.asgi import create_app
    from creditgate.domain.routes import parse_extra_routes, table_with
    from creditgate.web.context import AppContext
    from creditgate.web.upstream import Upstream
    from tests.server import app_in_thread

    extra = '[{"method": "POST", "path": "/v2/something-new", "kind": "metered"}]'
    ctx = AppContext(
        db=db,
        upstream=Upstream(fake.url, UPSTREAM_KEY),
        routes=table_with(parse_extra_routes(extra)),
    )
    team, key, _ = team_with_key(db, now())
    with app_in_thread(create_app(ctx)) as url:
        posted = httpx.post(f"{url}/v2/something-new", json={}, headers=bearer(key))
        assert posted.json() == {"success": True, "creditsUsed": 7}
        assert httpx.get(f"{url}/v2/stream", headers=bearer(key)).status_code == 404
    assert remaining(db, team.id) == 3000 - 7  # charged what the answer reports


@pytest.mark.parametrize(
    ("routes", "reason"),
    [
        ("not json", "not JSON"),
        ('{"method": "GET"}', "JSON list"),
        ('[{"method": "GET", "path": "/admin/x", "kind": "free"}]', "must start with /v1/"),
        ('[{"method": "GET", "path": "/v2/a/../b", "kind": "free"}]', "segments"),
        ('[{"method": "GET", "path": "/v2/x", "kind": "account"}]', "kind must be one of"),
        ('[{"method": "POST", "path": "/v2/scrape", "kind": "free"}]', "already in the table"),
    ],
)
def test_a_malformed_route_configuration_is_refused(routes: str, reason: str) -> None:
    from creditgate.domain.routes import parse_extra_routes, table_with

    with pytest.raises(ValueError, match=reason):
        table_with(parse_extra_routes(routes))
