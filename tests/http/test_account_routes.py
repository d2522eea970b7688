"""Every account route of firecrawl-api.md §2, v1 and v2, checked on the wire."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from starlette.testclient import TestClient

from creditgate.domain.instants import parse_iso
from creditgate.services import keys, teams
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import Clock
from tests.helpers import bearer, charge, team_with_key

INSUFFICIENT = (
    "Insufficient credits to perform this request. For more credits, you can upgrade your plan "
    "at https://firecrawl.dev/pricing or try changing the request limit to a lower value."
)
ROUTES = [
    "/team/credit-usage",
    "/team/token-usage",
    "/team/credit-usage/historical",
    "/team/token-usage/historical",
    "/team/queue-status",
    "/concurrency-check",
]
ALL_PATHS = [f"/{v}{r}" for v in ("v1", "v2") for r in ROUTES] + ["/v2/team/activity"]


def get(client: TestClient, path: str, key: str, **params: Any) -> Any:
    return client.get(path, headers=bearer(key), params=params)


def test_v1_credit_usage_is_snake_case(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    charge(db, key, 120, clock.now)
    response = get(client, "/v1/team/credit-usage", key)
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {
            "remaining_credits": 2880,
            "plan_credits": 3000,
            "billing_period_start": "2026-08-01T00:00:00.000Z",
            "billing_period_end": "2026-09-01T00:00:00.000Z",
        },
    }


def test_v2_credit_usage_is_camel_case(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    charge(db, key, 120, clock.now)
    assert get(client, "/v2/team/credit-usage", key).json() == {
        "success": True,
        "data": {
            "remainingCredits": 2880,
            "planCredits": 3000,
            "billingPeriodStart": "2026-08-01T00:00:00.000Z",
            "billingPeriodEnd": "2026-09-01T00:00:00.000Z",
        },
    }


def test_token_usage_is_credits_times_15(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    charge(db, key, 1000, clock.now)
    v1 = get(client, "/v1/team/token-usage", key).json()["data"]
    v2 = get(client, "/v2/team/token-usage", key).json()["data"]
    assert (v1["remaining_tokens"], v1["plan_tokens"]) == (30_000, 45_000)
    assert (v2["remainingTokens"], v2["planTokens"]) == (30_000, 45_000)
    assert v2["billingPeriodEnd"] == "2026-09-01T00:00:00.000Z"


def test_remaining_includes_packs_but_plan_credits_do_not(
    client: TestClient, db: Database, clock: Clock
) -> None:
    from creditgate.services import ledger

    team, key, _ = team_with_key(db, clock.now)
    ledger.grant(db, ledger.GrantRequest(team.id, 700, "pack"), clock.now)
    data = get(client, "/v2/team/credit-usage", key).json()["data"]
    assert (data["remainingCredits"], data["planCredits"]) == (3700, 3000)


def test_free_plan_period_end_is_null(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now, plan="free")
    data = get(client, "/v2/team/credit-usage", key).json()["data"]
    assert data == {
        "remainingCredits": 500,
        "planCredits": 500,
        "billingPeriodStart": "2026-08-01T00:00:00.000Z",
        "billingPeriodEnd": None,
    }


def test_historical_rows_are_zero_filled_periods_with_both_credit_fields(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now, plan="standard", anchor="2026-05-01T00:00:00Z")
    charge(db, key, 3400, clock.now, at="2026-05-20T00:00:00Z", endpoint=None)
    charge(db, key, 560, clock.now)
    body = get(client, "/v2/team/credit-usage/historical", key).json()
    assert body == {
        "success": True,
        "periods": [
            {
                "startDate": "2026-05-01T00:00:00.000Z",
                "endDate": "2026-06-01T00:00:00.000Z",
                "apiKey": None,
                "creditsUsed": 3400,
                "totalCredits": 3400,
            },
            {
                "startDate": "2026-06-01T00:00:00.000Z",
                "endDate": "2026-07-01T00:00:00.000Z",
                "apiKey": None,
                "creditsUsed": 0,
                "totalCredits": 0,
            },
            {
                "startDate": "2026-07-01T00:00:00.000Z",
                "endDate": "2026-08-01T00:00:00.000Z",
                "apiKey": None,
                "creditsUsed": 0,
                "totalCredits": 0,
            },
            {
                "startDate": "2026-08-01T00:00:00.000Z",
                "endDate": "2026-09-01T00:00:00.000Z",
                "apiKey": None,
                "creditsUsed": 560,
                "totalCredits": 560,
            },
        ],
    }


def test_historical_is_empty_for_a_team_without_usage(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    for path in ("/v1/team/credit-usage/historical", "/v2/team/token-usage/historical"):
        assert get(client, path, key).json() == {"success": True, "periods": []}


def test_historical_by_api_key_names_keys_sorted_and_keeps_revoked_ones(
    client: TestClient, db: Database, clock: Clock
) -> None:
    team, key, key_id = team_with_key(db, clock.now, key_name="zeta")
    alpha = keys.create_key(db, team.id, clock.now, name="alpha")
    charge(db, key, 30, clock.now)
    charge(db, alpha.secret, 12, clock.now)
    keys.revoke_key(db, key_id, clock.now)
    clock.set("2026-09-03T00:00:00Z")
    charge(db, alpha.secret, 5, clock.now)
    rows = get(client, "/v2/team/credit-usage/historical", alpha.secret, byApiKey="true").json()
    assert [
        (r["startDate"][:10], r["apiKey"], r["creditsUsed"], r["totalCredits"])
        for r in rows["periods"]
    ] == [
        ("2026-08-01", "alpha", 12, 12),
        ("2026-08-01", "zeta", 30, 30),
        ("2026-09-01", "alpha", 5, 5),
    ]
    tokens = get(client, "/v1/team/token-usage/historical", alpha.secret, byApiKey="true").json()
    assert [(r["apiKey"], r["tokensUsed"], r["totalTokens"]) for r in tokens["periods"]] == [
        ("alpha", 180, 180),
        ("zeta", 450, 450),
        ("alpha", 75, 75),
    ]


def test_by_api_key_is_true_only_for_the_literal_true(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    charge(db, key, 3, clock.now)
    for value in ("1", "True", "yes"):
        rows = get(client, "/v2/team/credit-usage/historical", key, byApiKey=value).json()
        assert [r["apiKey"] for r in rows["periods"]] == [None]


def test_time_range_day_gives_24_hourly_zero_filled_bins(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now, anchor="2026-07-01T00:00:00Z")
    clock.set("2026-08-02T10:30:00Z")
    charge(db, key, 4, clock.now, at="2026-08-02T10:05:00Z")
    charge(db, key, 6, clock.now, at="2026-08-01T11:00:00Z")  # the window's first hour
    charge(db, key, 9, clock.now, at="2026-08-01T10:59:59Z")  # just outside
    body = get(client, "/v2/team/credit-usage/historical", key, timeRange="day").json()
    assert body["window"] == {
        "timeRange": "day",
        "binSize": "hour",
        "startDate": "2026-08-01T11:00:00.000Z",
        "endDate": "2026-08-02T11:00:00.000Z",
    }
    periods = body["periods"]
    assert len(periods) == 24
    assert periods[0]["creditsUsed"] == 6 and periods[-1]["creditsUsed"] == 4
    assert sum(p["creditsUsed"] for p in periods) == 10
    assert periods[1] == {
        "startDate": "2026-08-01T12:00:00.000Z",
        "endDate": "2026-08-01T13:00:00.000Z",
        "apiKey": None,
        "creditsUsed": 0,
        "totalCredits": 0,
    }


def test_time_range_week_and_month_give_daily_bins(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now, anchor="2026-07-01T00:00:00Z")
    clock.set("2026-08-10T08:00:00Z")
    charge(db, key, 2, clock.now, at="2026-08-04T23:59:00Z")
    charge(db, key, 3, clock.now, at="2026-08-10T07:00:00Z")
    week = get(client, "/v1/team/token-usage/historical", key, timeRange="week").json()
    assert week["window"]["startDate"] == "2026-08-04T00:00:00.000Z"
    assert [p["tokensUsed"] for p in week["periods"]] == [30, 0, 0, 0, 0, 0, 45]
    month = get(client, "/v2/team/credit-usage/historical", key, timeRange="month").json()
    assert len(month["periods"]) == 30 and month["window"]["binSize"] == "day"
    assert sum(p["creditsUsed"] for p in month["periods"]) == 5


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"timeRange": "year"}, "timeRange must be day, week, or month."),
        ({"timeRange": "day", "byApiKey": "true"}, "byApiKey cannot be combined with timeRange."),
    ],
)
def test_time_range_errors(
    client: TestClient, db: Database, clock: Clock, params: dict[str, str], error: str
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    for path in ("/v1/team/credit-usage/historical", "/v2/team/token-usage/historical"):
        response = get(client, path, key, **params)
        assert (response.status_code, response.json()) == (400, {"success": False, "error": error})


def test_queue_status_and_concurrency_check(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now, plan="standard")
    empty = get(client, "/v2/team/queue-status", key).json()
    assert empty == {
        "success": True,
        "jobsInQueue": 0,
        "activeJobsInQueue": 0,
        "waitingJobsInQueue": 0,
        "maxConcurrency": 50,
        "mostRecentSuccess": None,
    }
    charge(db, key, 1, clock.now, at="2026-08-01T00:00:00.123Z")
    after = get(client, "/v1/team/queue-status", key).json()
    assert after["mostRecentSuccess"] == "2026-08-01T00:00:00.123Z"
    for version in ("v1", "v2"):
        assert get(client, f"/{version}/concurrency-check", key).json() == {
            "success": True,
            "concurrency": 0,
            "maxConcurrency": 50,
        }


def test_activity_lists_the_last_24_hours_newest_first_with_a_cursor(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now, anchor="2026-07-01T00:00:00Z")
    clock.set("2026-08-02T12:00:00Z")
    charge(db, key, 1, clock.now, at="2026-08-01T11:59:59Z")  # older than 24 h
    made = [
        charge(
            db,
            key,
            1,
            clock.now,
            at=f"2026-08-02T0{h}:00:00Z",
            endpoint="crawl" if h % 2 else "scrape",
        )
        for h in range(1, 6)
    ]
    charge(db, key, 1, clock.now, endpoint=None)  # no endpoint: not activity
    first = get(client, "/v2/team/activity", key, limit="2").json()
    assert [r["id"] for r in first["data"]] == [made[4].id, made[3].id]
    assert first["has_more"] is True
    assert first["data"][0] == {
        "id": made[4].id,
        "endpoint": "crawl",
        "api_version": None,
        "created_at": "2026-08-02T05:00:00.000Z",
        "target": None,
    }
    assert base64.urlsafe_b64decode(first["cursor"] + "==").decode().endswith(made[3].id)
    second = get(client, "/v2/team/activity", key, limit="2", cursor=first["cursor"]).json()
    third = get(client, "/v2/team/activity", key, limit="2", cursor=second["cursor"]).json()
    assert [r["id"] for r in second["data"] + third["data"]] == [made[2].id, made[1].id, made[0].id]
    assert (third["has_more"], third["cursor"]) == (False, None)
    crawls = get(client, "/v2/team/activity", key, endpoint="crawl").json()
    assert [r["id"] for r in crawls["data"]] == [made[4].id, made[2].id, made[0].id]


def test_activity_limit_defaults_to_50_and_is_capped_at_100(
    client: TestClient, db: Database, clock: Clock
) -> None:
    from creditgate.services import ingest, ledger

    _, key, _ = team_with_key(db, clock.now)
    events: list[ledger.ChargeRequest | Exception] = [
        ledger.ChargeRequest(key=key, credits=0, endpoint="scrape") for _ in range(101)
    ]
    outcomes = ingest.charge_batch(db, events, clock.now)  # type: ignore[arg-type]
    assert {o.status for o in outcomes} == {"accepted"}
    for limit, expected in (("0", 50), ("abc", 50), ("-3", 50), ("7", 7), ("500", 100)):
        body = get(client, "/v2/team/activity", key, limit=limit).json()
        assert (len(body["data"]), body["has_more"]) == (expected, True), limit


def test_activity_errors(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    bad = get(client, "/v2/team/activity", key, endpoint="bogus")
    assert bad.status_code == 400
    assert bad.json()["error"] == (
        "Invalid endpoint filter. Must be one of: scrape, crawl, batch_scrape, search, extract, "
        "llmstxt, deep_research, map, agent, browser, interact"
    )
    for cursor in ("!!!", "bm90LWEtY3Vyc29y"):
        response = get(client, "/v2/team/activity", key, cursor=cursor)
        assert (response.status_code, response.json()) == (
            400,
            {"success": False, "error": "Invalid cursor."},
        )


# --- authentication and errors --------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_PATHS)
def test_every_route_refuses_missing_and_invalid_tokens_with_exact_texts(
    client: TestClient, db: Database, clock: Clock, path: str
) -> None:
    _team, key, _key_id = team_with_key(db, clock.now)
    cases = [
        ({}, 401, "Unauthorized"),
        ({"Authorization": "Bearer"}, 401, "Unauthorized: Token missing"),
        ({"Authorization": "Bearer "}, 401, "Unauthorized: Token missing"),
        ({"Authorization": "Bearer not-a-key"}, 401, "Unauthorized: Invalid token"),
        ({"Authorization": "Bearer fc-" + "a" * 32}, 401, "Unauthorized: Invalid token"),
    ]
    for headers, status, error in cases:
        response = client.get(path, headers=headers)
        assert (response.status_code, response.json()) == (
            status,
            {"success": False, "error": error},
        ), headers
    assert client.get(path, headers=bearer(key)).status_code == 200


def test_revoked_keys_get_401_and_suspended_teams_403(
    client: TestClient, db: Database, clock: Clock
) -> None:
    team, key, key_id = team_with_key(db, clock.now)
    other = keys.create_key(db, team.id, clock.now, name="other")
    keys.revoke_key(db, key_id, clock.now)
    revoked = get(client, "/v2/team/credit-usage", key)
    assert (revoked.status_code, revoked.json()["error"]) == (401, "Unauthorized: Invalid token")
    teams.update_team(db, team.id, clock.now, suspended=True)
    banned = get(client, "/v1/team/credit-usage", other.secret)
    assert (banned.status_code, banned.json()) == (
        403,
        {"success": False, "error": "Unauthorized: This account has been banned."},
    )


def test_a_team_without_any_balance_record_gets_404(
    client: TestClient, db: Database, clock: Clock, admin_plan_zero: str
) -> None:
    _, key, _ = team_with_key(db, clock.now, plan=admin_plan_zero)
    credit = get(client, "/v2/team/credit-usage", key)
    assert (credit.status_code, credit.json()) == (
        404,
        {"success": False, "error": "Could not find credit usage information"},
    )
    token = get(client, "/v1/team/token-usage", key)
    assert (token.status_code, token.json()) == (
        404,
        {"success": False, "error": "Could not find token usage information"},
    )


@pytest.fixture
def admin_plan_zero(db: Database, clock: Clock) -> str:
    from creditgate.domain.plans import Plan
    from creditgate.services import plans

    plans.create_plan(db, Plan("payg", 0, "month", 2, 10, 2), clock.now)
    return "payg"


def test_account_routes_are_rate_limited_per_team_with_the_firecrawl_text(
    ctx: AppContext, client: TestClient, db: Database, clock: Clock
) -> None:
    ctx.account_rpm = 3
    clock.set("2026-08-01T00:00:20Z")
    _, key, _ = team_with_key(db, clock.now)
    _, other, _ = team_with_key(db, clock.now, name="other")
    for _ in range(3):
        assert get(client, "/v2/team/credit-usage", key).status_code == 200
    limited = get(client, "/v1/team/queue-status", key)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "40"
    assert limited.json() == {
        "success": False,
        "error": (
            "Rate limit exceeded. Consumed (req/min): 3, Remaining (req/min): 0. Upgrade your plan "
            "at https://firecrawl.dev/pricing for increased rate limits or please retry after 40s, "
            "resets at Sat Aug 01 2026 00:01:00 GMT+0000 (Coordinated Universal Time)"
        ),
    }
    assert get(client, "/v2/team/credit-usage", other).status_code == 200  # per team
    clock.set("2026-08-01T00:01:00Z")
    assert get(client, "/v2/team/credit-usage", key).status_code == 200


def test_an_unexpected_failure_is_a_500_with_an_error_id(
    client: TestClient, db: Database, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from creditgate.services import account

    _, key, _ = team_with_key(db, clock.now)

    def broken(*_args: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(account, "credit_usage_from", broken)
    response = get(client, "/v2/team/credit-usage", key)
    assert response.status_code == 500
    error = response.json()["error"]
    prefix = "An error occurred. Please check your logs for more details. Error ID: "
    assert error.startswith(prefix) and len(error) == len(prefix) + 36
    assert "fire" not in error


def test_unknown_routes_get_a_firecrawl_shaped_404(client: TestClient) -> None:
    response = client.get("/v2/nothing-here")
    assert (response.status_code, response.json()) == (
        404,
        {"success": False, "error": "Not Found"},
    )


def test_periods_use_the_anchor_not_the_calendar_month(
    client: TestClient, db: Database, clock: Clock
) -> None:
    clock.set("2026-03-05T00:00:00Z")
    _, key, _ = team_with_key(db, clock.now, anchor="2026-01-31T09:00:00Z")
    data = get(client, "/v2/team/credit-usage", key).json()["data"]
    assert (data["billingPeriodStart"], data["billingPeriodEnd"]) == (
        "2026-02-28T09:00:00.000Z",
        "2026-03-31T09:00:00.000Z",
    )
    assert parse_iso(data["billingPeriodStart"]) < clock.now


def test_credit_usage_rolls_over_to_the_new_period_on_read(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    charge(db, key, 1000, clock.now)
    assert get(client, "/v2/team/credit-usage", key).json()["data"]["remainingCredits"] == 2000
    clock.set("2026-09-01T00:00:00Z")
    data = get(client, "/v2/team/credit-usage", key).json()["data"]
    assert (data["remainingCredits"], data["billingPeriodStart"]) == (
        3000,
        "2026-09-01T00:00:00.000Z",
    )
    queue = get(client, "/v2/team/queue-status", key).json()
    assert queue["mostRecentSuccess"] == "2026-08-01T00:00:00.000Z"


def test_history_after_a_period_change_includes_the_new_empty_period(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now, key_name="ci")
    charge(db, key, 70, clock.now)
    clock.set("2026-09-01T00:00:00Z")  # the first read after the boundary rolls the team over
    rows = get(client, "/v2/team/credit-usage/historical", key, byApiKey="true").json()
    assert [(r["startDate"][:10], r["apiKey"], r["creditsUsed"]) for r in rows["periods"]] == [
        ("2026-08-01", "ci", 70)
    ]
    totals = get(client, "/v1/team/credit-usage/historical", key).json()["periods"]
    assert [(r["startDate"][:10], r["creditsUsed"]) for r in totals] == [
        ("2026-08-01", 70),
        ("2026-09-01", 0),
    ]
