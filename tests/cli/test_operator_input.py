"""Operators get what they typed: the CLI does what its words say and prints what the API does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from creditgate.cli import main
from creditgate.domain.instants import MS_PER_DAY, format_iso, now
from creditgate.services import keys as key_service
from creditgate.services import pages, plans, teams
from creditgate.services.pages import Page
from creditgate.storage.database import Database
from tests.cli.test_cli import envelope, run
from tests.conftest import ADMIN_TOKEN
from tests.helpers import bearer

ADMIN = bearer(ADMIN_TOKEN)
HOBBY = {
    "id": "hobby",
    "credits": 3000,
    "interval": "month",
    "concurrency": 5,
    "scrapeRpm": 100,
    "crawlRpm": 20,
}


def text(url: str, *args: str) -> Result:
    """A command as an operator runs it: readable text, no --json."""
    return CliRunner().invoke(main, [*args, "--database-url", url])


def test_one_json_shape_for_objects_and_lists_in_the_cli_and_the_admin_api(
    database_url: str, db: Database, client: TestClient
) -> None:
    created = envelope(database_url, "team", "create", "acme", "--plan", "hobby")
    team = created["data"]
    assert created == {"success": True, "data": team}
    assert (team["name"], team["plan"]) == ("acme", "hobby")
    assert client.get(f"/admin/teams/{team['id']}", headers=ADMIN).json() == created
    assert envelope(database_url, "team", "list") == {
        "success": True,
        "data": [team],
        "cursor": None,
        "hasMore": False,
    }
    assert client.get("/admin/teams", headers=ADMIN).json() == envelope(
        database_url, "team", "list"
    )
    assert client.get("/admin/plans", headers=ADMIN).json() == envelope(
        database_url, "plan", "list"
    )
    key = envelope(database_url, "key", "create", team["id"], "--name", "ci")["data"]
    listed = envelope(database_url, "key", "list", team["id"])
    assert listed == {
        "success": True,
        "data": [{k: v for k, v in key.items() if k != "key"}],
        "cursor": None,
        "hasMore": False,
    }
    assert client.get(f"/admin/teams/{team['id']}/keys", headers=ADMIN).json() == listed
    revoked = envelope(database_url, "key", "revoke", key["id"])
    assert set(revoked) == {"success", "data"} and revoked["data"]["revokedAt"] is not None
    usage = envelope(database_url, "usage", team["id"])  # the admin usage route's answer
    admin_usage = client.get(f"/admin/teams/{team['id']}/usage", headers=ADMIN).json()
    assert usage == admin_usage == {"success": True, "data": []}
    assert envelope(database_url, "migrate")["data"]["database"]


def test_plan_update_changes_only_the_options_given(database_url: str, db: Database) -> None:
    updated = run(database_url, "plan", "update", "hobby", "--credits", "3500")
    assert updated == {**HOBBY, "credits": 3500}  # concurrency, scrape/min, crawl/min kept
    assert [p for p in run(database_url, "plan", "list") if p["id"] == "hobby"] == [updated]
    said = text(database_url, "plan", "update", "hobby", "--concurrency", "8")
    assert (said.exit_code, said.stdout) == (
        0,
        "plan hobby: concurrency 5 -> 8 (credits and interval from each team's next period, "
        "limits at once); now 3500 credits a month, billed monthly; concurrency 8, "
        "100 scrape/min, 20 crawl/min\n",
    )
    same = text(database_url, "plan", "update", "hobby", "--concurrency", "8")
    assert same.stdout.startswith("plan hobby: nothing changed; now 3500 credits a month")
    assert run(database_url, "plan", "update", "hobby", ok=False) == {
        "success": False,
        "error": "nothing to update: give --credits, --interval, --concurrency, --scrape-rpm "
        "or --crawl-rpm",
        "status": 400,
    }
    assert run(database_url, "plan", "update", "nope", "--credits", "1", ok=False)["status"] == 404

    made = run(database_url, "plan", "create", "pro", "--credits", "20000")
    assert made == {
        "id": "pro",
        "credits": 20000,
        "interval": "month",
        "concurrency": 2,
        "scrapeRpm": 10,
        "crawlRpm": 2,
    }
    again = run(database_url, "plan", "create", "pro", "--credits", "1", ok=False)
    assert (again["status"], again["error"]) == (409, "Plan pro already exists")
    old = text(database_url, "plan", "set", "hobby", "--credits", "1")
    assert old.exit_code == 2
    assert "`plan create ID --credits N ...` makes a plan" in old.stderr
    assert "`plan update ID --credits N ...` changes only the options given" in old.stderr
    assert [p for p in run(database_url, "plan", "list") if p["id"] == "hobby"] == [
        {**HOBBY, "credits": 3500, "concurrency": 8}
    ]


def test_a_yearly_plan_is_described_as_what_it_grants_credits_every_month(
    database_url: str, db: Database, client: TestClient
) -> None:
    made = text(database_url, "plan", "create", "yr", "--credits", "12000", "--interval", "year")
    assert made.stdout == (
        "plan yr created: 12000 credits a month, billed yearly; concurrency 2, 10 scrape/min, "
        "2 crawl/min\n"
    )
    listing = text(database_url, "plan", "list").stdout.splitlines()
    assert listing[0].split() == [
        "id",
        "credits",
        "granted",
        "billed",
        "concurrency",
        "scrape/min",
        "crawl/min",
    ]
    rows = {line.split()[0]: line.split()[1:4] for line in listing[2:]}
    assert (rows["yr"], rows["hobby"], rows["free"]) == (
        ["12000", "monthly", "yearly"],
        ["3000", "monthly", "monthly"],
        ["500", "once", "once"],
    )
    help_text = " ".join(text(database_url, "plan", "create", "--help").stdout.split())
    assert "Credits granted every month, also when billed yearly" in help_text

    # What the words say is what a team on the plan gets: 12,000 for a month, not a year.
    team = client.post("/admin/teams", headers=ADMIN, json={"name": "y", "plan": "yr"})
    balance = client.get(f"/admin/teams/{team.json()['data']['id']}/balance", headers=ADMIN)
    assert balance.json()["data"] == {
        "remainingCredits": 12000,
        "planCredits": 12000,
        "billingPeriodStart": "2026-08-01T00:00:00.000Z",
        "billingPeriodEnd": "2026-09-01T00:00:00.000Z",
    }
    schemas = client.get("/openapi.json", headers=ADMIN).json()["components"]["schemas"]
    for name in ("PlanIn", "PlanPut", "PlanPatch"):
        described = schemas[name]["properties"]["credits"]["description"]
        assert "yearly plan is billed yearly and still resets credits monthly" in described
        assert "what a team gets each month" in described
        assert (
            "year (credits still granted monthly)"
            in (schemas[name]["properties"]["interval"]["description"])
        )


def test_team_update_without_an_option_is_refused_and_the_same_values_say_so(
    database_url: str, db: Database
) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    refusal = "nothing to update: give --plan, --name, --suspend/--resume or --overage/--no-overage"
    assert run(database_url, "team", "update", team["id"], ok=False) == {
        "success": False,
        "error": refusal,
        "status": 400,
    }
    plain = text(database_url, "team", "update", team["id"])
    assert (plain.exit_code, plain.stdout, plain.stderr) == (1, "", f"error: {refusal}\n")
    suspended = text(database_url, "team", "update", team["id"], "--suspend")
    assert suspended.stdout == f"team {team['id']}: suspended false -> true\n"
    again = text(database_url, "team", "update", team["id"], "--suspend")
    assert again.stdout == f"team {team['id']}: nothing changed\n"
    moved = text(database_url, "team", "update", team["id"], "--plan", "standard", "--resume")
    assert moved.stdout == (
        f"team {team['id']}: plan hobby -> standard, suspended true -> false (its limits apply "
        "at once, its credits from the next billing period)\n"
    )
    assert run(database_url, "team", "list") == [{**team, "plan": "standard"}]


def test_cli_lists_page_through_everything(
    database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [run(database_url, "team", "create", f"team-{i}")["id"] for i in range(5)]
    keys = [run(database_url, "key", "create", made[0])["id"] for _ in range(3)]
    monkeypatch.setattr(pages, "MAX_LIMIT", 2)  # pages of two rows, to see the CLI follow them
    asked: list[tuple[str, str | None]] = []
    for module, name in ((teams, "page_teams"), (key_service, "page_keys"), (plans, "page_plans")):
        monkeypatch.setattr(module, name, spy(getattr(module, name), name, asked))
    listed = envelope(database_url, "team", "list")
    assert ([t["id"] for t in listed["data"]], listed["cursor"], listed["hasMore"]) == (
        sorted(made),
        None,
        False,
    )
    assert [k["id"] for k in run(database_url, "key", "list", made[0])] == sorted(keys)
    assert [p["id"] for p in run(database_url, "plan", "list")] == [
        "free",
        "hobby",
        "standard",
        "growth",
        "scale",
    ]
    first_page = [True, False, False]  # the first call of a listing has no cursor
    assert [name for name, _ in asked] == [
        *["page_teams"] * 3,
        *["page_keys"] * 2,
        *["page_plans"] * 3,
    ]
    assert [cursor is None for _, cursor in asked] == [*first_page, True, False, *first_page]


def spy(
    fn: Callable[..., Page[Any]], name: str, asked: list[tuple[str, str | None]]
) -> Callable[..., Page[Any]]:
    def recorded(*args: Any) -> Page[Any]:
        asked.append((name, args[-1]))
        return fn(*args)

    return recorded


def test_negative_credits_are_refused_with_a_clear_message(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    key = run(database_url, "key", "create", team["id"])
    for args, error in (
        (["grant", team["id"], "-5"], "credits must be a positive integer (got -5)"),
        (
            ["grant", team["id"], "-5", "--kind", "coupon"],
            "credits must be a positive integer (got -5)",
        ),
        (["grant", team["id"], "0"], "credits must be a positive integer (got 0)"),
        (["charge", key["key"], "-5"], "credits must not be negative (got -5)"),
        (
            ["charge", key["id"], "-12", "--endpoint", "scrape"],
            "credits must not be negative (got -12)",
        ),
    ):
        assert run(database_url, *args, ok=False) == {
            "success": False,
            "error": error,
            "status": 400,
            "field": "credits",
        }, args
        plain = text(database_url, *args)
        assert (plain.exit_code, plain.stdout, plain.stderr) == (1, "", f"error: {error}\n"), args
    noted = run(database_url, "grant", team["id"], "5", "--note", "-5")  # an option's value
    assert (noted["credits"], noted["remainingCredits"]) == (5, 3005)
    assert run(database_url, "charge", key["key"], "0")["remainingCredits"] == 3005
    typo = text(database_url, "grant", team["id"], "5", "--kindd", "pack")
    assert typo.exit_code == 2 and "No such option '--kindd'" in typo.stderr


def table_rows(printed: str) -> list[list[str]]:
    """The cells of the table a command printed (its columns are as wide as their dashes)."""
    lines = printed.split("\n\n")[0].splitlines()
    spans, start = [], 0
    for dashes in lines[1].split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    return [[line[a:b].strip() for a, b in spans] for line in lines[2:]]


def test_usage_shows_the_same_rows_in_text_and_json_by_period_and_by_key(
    database_url: str, db: Database
) -> None:
    anchor = now() - 100 * MS_PER_DAY
    team = run(
        database_url, "team", "create", "acme", "--plan", "hobby", "--anchor", format_iso(anchor)
    )
    key = run(database_url, "key", "create", team["id"], "--name", "ci")
    run(database_url, "charge", key["key"], "7", "--at", format_iso(anchor + MS_PER_DAY))
    run(database_url, "charge", key["key"], "5")
    for by_key in ([], ["--by-key"]):
        report = run(database_url, "usage", team["id"], *by_key)
        rows = [
            [p["startDate"], p["endDate"], p["apiKey"] or "", str(p["creditsUsed"])] for p in report
        ]
        printed = text(database_url, "usage", team["id"], *by_key).stdout
        assert table_rows(printed) == rows, by_key
        used = [(p["apiKey"], p["creditsUsed"]) for p in report]
        name = "ci" if by_key else None
        assert used[0] == (name, 7) and used[-1] == (name, 5), by_key
        assert used[1:-1] == [(None, 0)] * (len(used) - 2) and len(used) >= 4, by_key
    by_period = run(database_url, "usage", team["id"])
    by_key_rows = run(database_url, "usage", team["id"], "--by-key")
    assert [p["startDate"] for p in by_key_rows] == [p["startDate"] for p in by_period]
