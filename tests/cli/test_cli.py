"""The CLI as scripts use it: --json prints one object, refusals exit non-zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from creditgate.cli import main
from creditgate.storage.database import Database


def envelope(url: str, *args: str, ok: bool = True) -> dict[str, Any]:
    """The one JSON object a command prints with --json."""
    result = CliRunner().invoke(main, [*args, "--json", "--database-url", url])
    assert (result.exit_code == 0) == ok, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    parsed: dict[str, Any] = json.loads(lines[0])
    assert parsed["success"] is ok, parsed
    return parsed


def run(url: str, *args: str, ok: bool = True) -> Any:
    """What a command printed: its `data` when it succeeded, the whole refusal otherwise."""
    parsed = envelope(url, *args, ok=ok)
    return parsed["data"] if ok else parsed


def test_operator_flow_through_the_cli(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    assert (team["name"], team["plan"]) == ("acme", "hobby")
    key = run(database_url, "key", "create", team["id"], "--name", "ci", "--cap", "50")
    assert key["key"].startswith("fc-") and key["cap"] == 50
    charged = run(database_url, "charge", key["key"], "30", "--endpoint", "scrape", "--id", "e1")
    assert (charged["credits"], charged["remainingCredits"], charged["replayed"]) == (
        30,
        2970,
        False,
    )
    again = run(database_url, "charge", key["id"], "30", "--endpoint", "scrape", "--id", "e1")
    assert (again["replayed"], again["id"]) == (True, charged["id"])
    refused = run(database_url, "charge", key["key"], "21", ok=False)
    assert refused["status"] == 402 and refused["limitedBy"] == "key cap"
    granted = run(
        database_url,
        "grant",
        team["id"],
        "100",
        "--kind",
        "coupon",
        "--expires",
        "2099-01-01T00:00:00Z",
    )
    assert granted["remainingCredits"] == 3070
    usage = run(database_url, "usage", team["id"], "--by-key")  # the admin usage route's rows
    assert [(p["apiKey"], p["creditsUsed"]) for p in usage] == [("ci", 30)]
    assert run(database_url, "team", "show", "acme")["balance"]["remainingCredits"] == 3070
    revoked = run(database_url, "key", "revoke", key["id"])
    assert revoked["revokedAt"] is not None
    assert run(database_url, "verify")["differences"] == []


def test_cli_refusals_exit_non_zero_with_a_clear_message(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme")
    assert run(database_url, "grant", team["id"], "0", ok=False)["status"] == 400
    assert run(database_url, "grant", "nope", "5", ok=False)["status"] == 404
    bad_time = run(database_url, "team", "create", "x", "--anchor", "yesterday", ok=False)
    assert "anchor" in bad_time["error"]
    plain = CliRunner().invoke(
        main, ["charge", "fc-" + "0" * 32, "1", "--database-url", database_url]
    )
    assert plain.exit_code == 1 and "error: API key not found" in plain.stderr


def test_plans_can_be_listed_created_and_updated(database_url: str, db: Database) -> None:
    assert [p["id"] for p in run(database_url, "plan", "list")][:2] == ["free", "hobby"]
    made = run(database_url, "plan", "create", "pro", "--credits", "20000", "--concurrency", "10")
    assert (made["credits"], made["concurrency"]) == (20000, 10)
    assert run(database_url, "plan", "update", "pro", "--credits", "25000")["credits"] == 25000


def test_usage_prints_a_readable_table_without_json(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    key = run(database_url, "key", "create", team["id"], "--name", "ci")
    run(database_url, "charge", key["key"], "12")
    result = CliRunner().invoke(
        main, ["usage", team["id"], "--by-key", "--database-url", database_url]
    )
    assert result.exit_code == 0
    assert "credits used" in result.stdout and " ci " in result.stdout
    assert "remaining: 2988 of 3000 plan credits" in result.stdout


def test_verify_names_every_difference(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    key = run(database_url, "key", "create", team["id"])
    run(database_url, "charge", key["key"], "12")
    with db.write() as conn:  # tamper: a rollup and a grant drift from the entries
        conn.execute(text("UPDATE usage_by_period SET credits = credits + 1"))
        conn.execute(text("UPDATE grants SET remaining = remaining + 5"))
    report = run(database_url, "verify", ok=False)
    checks = sorted({d["check"] for d in report["differences"]})
    assert checks == [
        "grant balances = sum of their entries",
        "per-period rollups = entries",
        "team balances = sum of all entries",
    ]
    assert any("entries say 12, rollup says 13" in d["detail"] for d in report["differences"])
    with db.write() as conn:  # repair so the fixture's own verify passes
        conn.execute(text("UPDATE usage_by_period SET credits = credits - 1"))
        conn.execute(text("UPDATE grants SET remaining = remaining - 5"))


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CREDITGATE_PORT", "abc", "Input should be a valid integer"),
        ("CREDITGATE_LOG_LEVEL", "chatty", "Input should be 'critical', 'error', 'warning'"),
        ("CREDITGATE_LOG_FORMAT", "yaml", "Input should be 'text' or 'json'"),
        ("CREDITGATE_SQLITE_SYNCHRONOUS", "FUL", "Input should be 'NORMAL' or 'FULL'"),
        ("CREDITGATE_WORKERS", "0", "Input should be greater than or equal to 1"),
    ],
)
def test_serve_names_a_malformed_setting_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    """A typo in a setting is refused at start in one line (a misspelt log level was a
    traceback; a misspelt synchronous mode silently meant NORMAL instead of FULL)."""
    from click.testing import CliRunner

    from creditgate.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["serve"], env={name: value})
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if not x.startswith("using ")]
    assert line.startswith(f"Error: {name}: {says}"), line


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["plan", "create", "x", "--credits", "5", "--interval", "week"],
            "Invalid value for '--interval': 'week' is not one of 'month', 'year', 'once'.",
        ),
        (["charge", "fc-x", "abc"], "Invalid value for 'CREDITS': 'abc' is not a valid integer."),
        (["team", "list", "--colour"], "No such option '--colour'."),
    ],
)
def test_with_json_a_usage_error_is_one_json_object_too(
    tmp_path: Path, args: list[str], error: str
) -> None:
    """An operator found that `--json` printed click's text usage message for a bad option."""
    from click.testing import CliRunner

    from creditgate.cli import main

    url = f"sqlite:///{tmp_path}/none.db"
    result = CliRunner().invoke(main, [*args, "--json", "--database-url", url])
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"success": False, "error": error, "status": 400}
    assert not (tmp_path / "none.db").exists()


def test_alert_rules_and_webhook_endpoints_through_the_cli(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    rules = run(database_url, "alert", "list", team["id"])
    assert [(r["id"], r["kind"], r["threshold"]) for r in rules] == [
        ("default-80", "percent", 80),
        ("default-100", "percent", 100),
    ]
    low = run(database_url, "alert", "add", team["id"], "--remaining", "500")
    assert (low["kind"], low["threshold"], low["keyId"]) == ("remaining", 500, None)
    refused = run(database_url, "alert", "add", team["id"], ok=False)
    assert refused["status"] == 400 and "exactly one" in refused["error"]
    assert run(database_url, "alert", "remove", team["id"], "default-100")["removed"] is True
    key = run(database_url, "key", "create", team["id"])
    run(database_url, "charge", key["key"], "2400")  # 80%, 600 left
    fired = run(database_url, "alert", "fired", team["id"])
    assert [f["ruleId"] for f in fired] == ["default-80"]
    assert fired[0]["event"]["data"]["creditsUsed"] == 2400
    made = run(database_url, "webhook", "add", "https://hooks.example/in", "--team", team["id"])
    assert made["secret"].startswith("whsec_") and made["teamId"] == team["id"]
    listed = run(database_url, "webhook", "list")
    assert [(e["id"], "secret" in e) for e in listed] == [(made["id"], False)]
    rotated = run(database_url, "webhook", "rotate", made["id"])
    assert rotated["secret"] != made["secret"] and rotated["previousSecretUntil"] is not None
    run(database_url, "charge", key["key"], "200")  # 400 left: the 500-remaining rule
    log = run(database_url, "webhook", "deliveries", made["id"])
    assert [(d["type"], d["status"], d["attempts"]) for d in log] == [
        ("credits.threshold_crossed", "pending", 0)
    ]
    assert run(database_url, "webhook", "remove", made["id"])["disabledAt"] is not None
    bad = run(database_url, "webhook", "add", "ftp://nope", ok=False)
    assert bad["status"] == 400 and bad["field"] == "url"


def test_a_plan_upgrade_now_through_the_cli_and_the_api(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    assert run(database_url, "team", "show", "acme")["balance"]["remainingCredits"] == 3_000
    run(database_url, "team", "update", team["id"], "--plan", "standard", "--now")
    assert run(database_url, "team", "show", "acme")["balance"]["remainingCredits"] == 100_000
    refused = run(database_url, "team", "update", team["id"], "--now", ok=False)
    assert refused["status"] == 400


def test_top_up_rules_through_the_cli(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    key = run(database_url, "key", "create", team["id"])
    rule = run(
        database_url, "topup", "add", team["id"], "--below", "500", "--credits", "1000",
        "--expires-days", "30", "--max-per-period", "2",
    )  # fmt: skip
    assert (rule["below"], rule["credits"], rule["maxPerPeriod"]) == (500, 1000, 2)
    charged = run(database_url, "charge", key["key"], "2600")
    assert charged["remainingCredits"] == 1400
    [listed] = run(database_url, "topup", "list", team["id"])
    assert (listed["id"], listed["grantedInPeriod"]) == (rule["id"], 1)
    bad = run(database_url, "topup", "add", team["id"], "--below", "0", "--credits", "5", ok=False)
    assert bad["status"] == 400 and bad["field"] == "below"
    assert run(database_url, "topup", "remove", team["id"], rule["id"])["removed"] is True
    assert run(database_url, "topup", "list", team["id"]) == []


def test_team_names_are_unique_and_every_command_takes_a_name(
    database_url: str, db: Database
) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    taken = run(database_url, "team", "create", "acme", ok=False)
    assert taken == {
        "success": False,
        "error": "A team named acme exists already: team names are unique, choose another",
        "status": 409,
        "field": "name",
    }
    other = run(database_url, "team", "create", "beta")
    assert run(database_url, "team", "update", "beta", "--name", "acme", ok=False)["status"] == 409
    assert run(database_url, "team", "create", other["id"], ok=False)["status"] == 400
    key = run(database_url, "key", "create", "acme", "--name", "ci")
    assert key["teamId"] == team["id"]
    assert run(database_url, "grant", "acme", "10")["teamId"] == team["id"]
    run(database_url, "charge", key["key"], "4")
    assert [k["id"] for k in run(database_url, "key", "list", "acme")] == [key["id"]]
    assert [r["creditsUsed"] for r in run(database_url, "usage", "acme")] == [4]
    shown = run(database_url, "team", "show", "acme")
    assert shown == {
        **team,
        "balance": {
            "remainingCredits": 3006,
            "planCredits": 3000,
            "billingPeriodStart": shown["balance"]["billingPeriodStart"],
            "billingPeriodEnd": shown["balance"]["billingPeriodEnd"],
        },
        "creditsUsed": 4,
        "keys": 1,
        "liveKeys": 1,
    }
    printed = CliRunner().invoke(main, ["team", "show", "acme", "--database-url", database_url])
    assert "remaining         3006 of 3000 plan credits" in printed.stdout
    assert "used this period  4" in printed.stdout
    missing = run(database_url, "usage", "nobody", ok=False)
    assert (missing["status"], missing["error"]) == (404, "Team nobody not found")
