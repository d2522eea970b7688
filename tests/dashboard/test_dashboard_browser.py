"""The dashboard in real headless Chromium, against a live `creditgate serve`: every figure a
page shows is read from the DOM and compared with what the account API and the admin API answer
for the same data; a team key cannot see another team's page; a forged POST is refused; sign-out
ends the session; team and key names are text, never markup. Screenshots of every page go to
tests/artifacts/dashboard/ (see conftest.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page

from creditgate.dashboard import charts
from tests.conftest import ADMIN_TOKEN

XSS_KEY = "<script>window.__xss=1</script>"
XSS_TEAM = 'acme <img src=x onerror="window.__xss=2">'


@dataclass
class Seeded:
    team: str
    other: str
    keys: dict[str, str]  # name -> fc- key
    other_key: str


def _at(days: float) -> str:
    moment = datetime.now(UTC) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(path, json=body)
    assert answer.status_code in (200, 201), answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def seed(url: str) -> Seeded:
    """Two teams: one with several keys (one named as a script), usage on several days of this
    period and in the last, an open hold, a pack and a revoked key; one near its limit."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as api:
        team = _post(api, "/admin/teams", {"name": XSS_TEAM, "plan": "hobby", "anchor": _at(40)})
        keys: dict[str, str] = {}
        for name, cap in (("backend", None), (XSS_KEY, None), ("capped", 100), ("old", None)):
            created = _post(api, f"/admin/teams/{team['id']}/keys", {"name": name, "cap": cap})
            keys[name] = created["key"]
        capped_id = next(
            k["id"]
            for k in api.get(f"/admin/teams/{team['id']}/keys").json()["data"]
            if k["name"] == "capped"
        )
        low = {"kind": "remaining", "threshold": 2_990}  # fires on this period's charges
        _post(api, f"/admin/teams/{team['id']}/alerts", low)
        key_rule = {"kind": "percent", "threshold": 3, "keyId": capped_id}  # 3 of its 100
        _post(api, f"/admin/teams/{team['id']}/alerts", key_rule)
        for name, credits, days in (
            ("backend", 12, 1),
            ("backend", 5, 3),
            (XSS_KEY, 7, 3),
            (XSS_KEY, 20, 5),
            ("old", 2, 4),
            ("backend", 50, 35),  # last period: backfilled
        ):
            _post(
                api,
                "/admin/charges",
                {"key": keys[name], "credits": credits, "at": _at(days), "endpoint": "scrape"},
            )
        _post(api, "/admin/charges", {"key": keys["capped"], "credits": 3, "endpoint": "scrape"})
        _post(
            api, "/admin/reservations", {"key": keys["backend"], "credits": 30, "endpoint": "crawl"}
        )
        _post(api, f"/admin/teams/{team['id']}/grants", {"credits": 500, "kind": "pack"})
        old_id = next(
            k["id"]
            for k in api.get(f"/admin/teams/{team['id']}/keys").json()["data"]
            if k["name"] == "old"
        )
        _post(api, f"/admin/keys/{old_id}/revoke", {})
        other = _post(api, "/admin/teams", {"name": "beta", "plan": "free"})
        other_key = _post(api, f"/admin/teams/{other['id']}/keys", {"name": "main"})["key"]
        _post(api, "/admin/charges", {"key": other_key, "credits": 400, "endpoint": "map"})
    return Seeded(team["id"], other["id"], keys, other_key)


def account(url: str, key: str, path: str) -> dict[str, Any]:
    answer = httpx.get(url + path, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def admin_api(url: str, path: str) -> Any:
    answer = httpx.get(url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def readable(stamp: str | None) -> str:
    """An ISO 8601 UTC instant as the dashboard prints it: 2026-12-07 21:04:05 UTC."""
    return "" if not stamp else f"{stamp[:10]} {stamp[11:19]} UTC"


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


def text_of(page: Page, test_id: str) -> str:
    return page.get_by_test_id(test_id).inner_text().strip()


def table(page: Page, test_id: str) -> list[dict[str, str]]:
    """The rows of a table as {data-col: text} (and the row's own data-* attributes)."""
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        f"[data-testid='{test_id}'] tbody tr",
        """rows => rows.map(r => {
            const out = {...r.dataset};
            r.querySelectorAll('[data-col]').forEach(c => out[c.dataset.col] = c.innerText.trim());
            return out;
        })""",
    )
    return rows


def rects(page: Page, test_id: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = page.eval_on_selector_all(
        f"[data-testid='{test_id}'] rect", "rs => rs.map(r => ({...r.dataset}))"
    )
    return found


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/dashboard")
    assert page.url.endswith("/dashboard/signin")
    page.fill("#token", token)
    page.get_by_test_id("signin").click()
    page.wait_for_load_state()


def check_team_page(page: Page, url: str, seeded: Seeded, key: str) -> None:
    """Every figure of the team's page against the account API's answers (and the admin API's
    key list for hints, caps and revocations)."""
    usage = account(url, key, "/v2/team/credit-usage")["data"]
    assert number(text_of(page, "remaining")) == usage["remainingCredits"]
    assert number(text_of(page, "plan-credits")) == usage["planCredits"]
    assert text_of(page, "period-start") == readable(usage["billingPeriodStart"])
    assert text_of(page, "period-end") == readable(usage["billingPeriodEnd"])
    gauge = charts.gauge(usage["remainingCredits"], usage["planCredits"])
    assert page.get_by_test_id("gauge-arc").get_attribute("d") == gauge.arc

    history = account(url, key, "/v2/team/credit-usage/historical")["periods"]
    shown = table(page, "history")
    assert [(r["start"], r["end"], number(r["credits"])) for r in shown] == [
        (readable(p["startDate"]), readable(p["endDate"]), p["creditsUsed"]) for p in history
    ]
    # Each period is a row with its number and a bar of its share of the largest: a period
    # that dominates cannot hide the others (a non-zero one always shows).
    bars_shown = page.eval_on_selector_all(
        "[data-testid='history'] tbody tr svg.hbar",
        "ss => ss.map(s => s.querySelector('rect')?.dataset.percent ?? '0').map(Number)",
    )
    assert bars_shown == [s.percent for s in charts.shares([p["creditsUsed"] for p in history])]
    assert all(b >= 0.5 for b, p in zip(bars_shown, history, strict=True) if p["creditsUsed"])
    current = history[-1]
    assert current["startDate"] == usage["billingPeriodStart"]
    assert number(text_of(page, "used")) == current["creditsUsed"]

    by_key = account(url, key, "/v2/team/credit-usage/historical?byApiKey=true")["periods"]
    used = {p["apiKey"]: p["creditsUsed"] for p in by_key if p["startDate"] == current["startDate"]}
    listed = admin_api(url, f"/admin/teams/{seeded.team}/keys")
    keys = {r["name"]: r for r in table(page, "keys")}
    assert set(keys) == {k["name"] for k in listed}
    for k in listed:
        row = keys[k["name"]]
        assert row["keyId"] == k["id"]
        assert row["hint"] == k["hint"]
        assert row["cap"] == ("none" if k["cap"] is None else f"{k['cap']:,}")
        assert row["revoked"] == readable(k["revokedAt"])
        assert number(row["used"]) == used.get(k["name"], 0)
        assert bool(row["last-use"]) == (used.get(k["name"], 0) > 0)

    # The daily chart: per key it sums to historical?byApiKey's current row; per day to
    # historical?timeRange=month's daily bins.
    bars = rects(page, "daily-chart")
    per_key: dict[str, int] = defaultdict(int)
    per_day: dict[str, int] = defaultdict(int)
    for bar in bars:
        per_key[bar["key"]] += int(bar["credits"])
        per_day[bar["day"]] += int(bar["credits"])
    assert dict(per_key) == {name: c for name, c in used.items() if c > 0}
    window = account(url, key, "/v2/team/credit-usage/historical?timeRange=month")["periods"]
    bins = {p["startDate"][:10]: p["creditsUsed"] for p in window}
    assert per_day and all(bins[day] == credits for day, credits in per_day.items())

    queue = account(url, key, "/v2/team/queue-status")
    assert number(text_of(page, "running")) == queue["activeJobsInQueue"]
    assert number(text_of(page, "max-concurrency")) == queue["maxConcurrency"]
    assert number(text_of(page, "waiting")) == queue["waitingJobsInQueue"]
    assert text_of(page, "last-charge") == readable(queue["mostRecentSuccess"])
    holds = table(page, "holds")
    assert sum(number(h["slots"]) for h in holds) == queue["activeJobsInQueue"] == 1
    assert (number(holds[0]["credits"]), number(holds[0]["holding"])) == (30, 30)

    # Ledger activity: the admin API's entries for the page's date range, newest first, with
    # credits, key and a readable UTC time.
    first, last = page.input_value("[data-testid=from]"), page.input_value("[data-testid=to]")
    end = (datetime.fromisoformat(last) + timedelta(days=1)).strftime("%Y-%m-%d")
    entries = admin_api(
        url,
        f"/admin/teams/{seeded.team}/entries?from={first}T00:00:00Z&to={end}T00:00:00Z&limit=500",
    )
    shown_activity = table(page, "activity")
    assert [(r["movement"], int(r["line"])) for r in shown_activity] == [
        (e["movementId"], e["line"]) for e in reversed(entries)
    ]
    for row, entry in zip(shown_activity, reversed(entries), strict=True):
        assert number(row["credits"]) == entry["credits"]
        assert row["key"] == (entry["keyName"] or "")
        stamp = entry["occurredAt"]
        assert row["at"] == readable(stamp)
    assert {r["kind"] for r in shown_activity} >= {"charge", "grant"}

    # Names are text: the script key and the markup in the team's name never ran.
    assert page.evaluate("window.__xss") is None
    assert text_of(page, "team-name") == XSS_TEAM
    assert XSS_KEY in keys
    # Alerts: the rules and what fired, as the admin API lists them.
    rules = admin_api(url, f"/admin/teams/{seeded.team}/alerts")
    assert [r["name"] for r in table(page, "alert-rules")] == [r["id"] for r in rules]
    fired = admin_api(url, f"/admin/teams/{seeded.team}/alerts/fired")
    shown_fired = table(page, "alerts-fired")
    assert len(fired) == 2  # the remaining rule and the capped key's
    assert [(r["rule"], r["when"]) for r in shown_fired] == [
        (f["ruleId"], readable(f["firedAt"])) for f in fired
    ]


def test_a_team_sees_its_own_figures_as_the_account_api_answers_them(
    server: str, browser: Browser, shots: Path
) -> None:
    seeded = seed(server)
    context = browser.new_context()
    page = context.new_page()
    page.goto(server + "/dashboard/signin")
    page.screenshot(path=shots / "signin.png", full_page=True)
    sign_in(page, server, seeded.keys["backend"])
    assert page.url == f"{server}/dashboard/teams/{seeded.team}"
    page.screenshot(path=shots / "team.png", full_page=True)
    check_team_page(page, server, seeded, seeded.keys["backend"])
    assert page.get_by_test_id("operator-section").count() == 0  # grants: the operator's

    # The session cookie: HttpOnly, SameSite=Strict, scoped to /dashboard, and no key in it.
    (cookie,) = [c for c in context.cookies() if c["name"] == "creditgate_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    assert "fc-" not in cookie["value"] and seeded.keys["backend"][3:] not in cookie["value"]

    # Another team's page, and the operator's overview, are not this key's.
    answer = page.goto(f"{server}/dashboard/teams/{seeded.other}")
    assert answer is not None and answer.status == 404
    assert "beta" not in page.content()
    page.screenshot(path=shots / "other-team-404.png", full_page=True)
    page.goto(server + "/dashboard")
    assert page.url == f"{server}/dashboard/teams/{seeded.team}"
    assert page.get_by_test_id("teams").count() == 0

    # Sign out: back to the sign-in page, and the pages need a sign-in again.
    page.get_by_test_id("signout").click()
    page.wait_for_load_state()
    assert page.url == f"{server}/dashboard/signin"
    page.goto(f"{server}/dashboard/teams/{seeded.team}")
    assert page.url == f"{server}/dashboard/signin"
    assert not [c for c in context.cookies() if c["name"] == "creditgate_session"]
    context.close()


def test_the_operator_sees_every_team_as_the_admin_api_answers(
    server: str, browser: Browser, shots: Path
) -> None:
    seeded = seed(server)
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, server, ADMIN_TOKEN)
    assert page.url == f"{server}/dashboard"
    page.screenshot(path=shots / "operator.png", full_page=True)
    rows = table(page, "teams")
    assert [r["team"] for r in rows] == [seeded.other, seeded.team]  # nearest its limit first
    for row in rows:
        balance = admin_api(server, f"/admin/teams/{row['team']}/balance")
        history = admin_api(server, f"/admin/teams/{row['team']}/usage")
        used = history[-1]["creditsUsed"] if history else 0
        assert number(row["remaining"]) == balance["remainingCredits"]
        assert number(row["plan-credits"]) == balance["planCredits"]
        assert number(row["used"]) == used
        assert row["percent"] == f"{used * 100 // balance['planCredits']}%"
        key = seeded.keys["backend"] if row["team"] == seeded.team else seeded.other_key
        queue = account(server, key, "/v2/team/queue-status")
        assert row["running"] == f"{queue['activeJobsInQueue']} / {queue['maxConcurrency']}"
    top = page.eval_on_selector_all(
        "[data-testid='top'] li",
        "ls => ls.map(l => [l.dataset.team, l.querySelector('[data-col]').innerText])",
    )
    assert [t for t, _ in top] == [seeded.other, seeded.team]
    assert page.evaluate("window.__xss") is None

    # A team's page: the team view, the same figures, and its plan and grants.
    page.goto(f"{server}/dashboard/teams/{seeded.team}")
    page.screenshot(path=shots / "operator-team.png", full_page=True)
    check_team_page(page, server, seeded, seeded.keys["backend"])
    grants = table(page, "grants")
    assert sorted((g["kind"], number(g["amount"])) for g in grants if g["kind"] == "pack") == [
        ("pack", 500)
    ]
    assert {number(g["amount"]) for g in grants if g["kind"] == "plan"} == {3000}
    plan = {r.get("id") or r.get("credits") for r in table(page, "plan-table")}
    assert "hobby" in plan and "3,000" in plan
    context.close()


def test_a_forged_post_is_refused_and_a_revoked_key_ends_its_session(
    server: str, browser: Browser, shots: Path
) -> None:
    seeded = seed(server)
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, server, seeded.keys["backend"])
    team_url = f"{server}/dashboard/teams/{seeded.team}"
    assert page.url == team_url

    # A page of another site posts to sign-out: SameSite=Strict keeps the cookie home and the
    # form has no token; refused, and the session lives on.
    evil = f"""<html><body><form id=f method=post action="{server}/dashboard/signout">
        <input type=hidden name=csrf value=guess></form>
        <script>document.getElementById('f').submit()</script></body></html>"""
    page.route(
        "http://evil.test/", lambda route: route.fulfill(body=evil, content_type="text/html")
    )
    with page.expect_navigation(url=f"{server}/dashboard/signout"):
        page.goto("http://evil.test/")
    assert "CSRF check failed" in page.content()
    page.screenshot(path=shots / "forged-post-refused.png", full_page=True)
    page.goto(team_url)
    assert page.url == team_url

    # With the cookie but a wrong token, or the right token from another origin: refused too.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    wrong = context.request.post(f"{server}/dashboard/signout", form={"csrf": "x" + csrf})
    assert wrong.status == 403
    cross = context.request.post(
        f"{server}/dashboard/signout", form={"csrf": csrf}, headers={"Origin": "http://evil.test"}
    )
    assert cross.status == 403
    page.goto(team_url)
    assert page.url == team_url

    # Revoking the key ends its sessions at the next request.
    key_id = next(
        k["id"]
        for k in admin_api(server, f"/admin/teams/{seeded.team}/keys")
        if k["name"] == "backend"
    )
    revoked = httpx.post(
        f"{server}/admin/keys/{key_id}/revoke", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert revoked.status_code == 200
    page.goto(team_url)
    assert page.url == f"{server}/dashboard/signin"

    # A revoked key cannot sign in.
    page.fill("#token", seeded.keys["backend"])
    page.get_by_test_id("signin").click()
    page.wait_for_load_state()
    assert "Sign-in failed" in text_of(page, "signin-error")
    context.close()
