"""The dashboard's forms in real headless Chromium, filled and submitted as a person would: the
ledger changes by exactly what was asked, revoke asks first, a new key is shown once, a team acts
on its own keys only; and the pages' layout at a phone's width and a wide screen's (the daily
chart's date labels under their bars, its y-axis, tables that scroll instead of clipping).
Screenshots go to tests/artifacts/dashboard/ (see conftest.py)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, Request, ViewportSize

from tests.conftest import ADMIN_TOKEN
from tests.dashboard.test_dashboard_browser import admin_api, number, seed, sign_in, table, text_of

VIEWPORTS: dict[str, ViewportSize] = {
    "narrow": {"width": 390, "height": 844},
    "wide": {"width": 1680, "height": 1000},
}


def balance(url: str, team: str) -> int:
    remaining: int = admin_api(url, f"/admin/teams/{team}/balance")["remainingCredits"]
    return remaining


def keys_of(url: str, team: str) -> dict[str, dict[str, Any]]:
    return {k["name"]: k for k in admin_api(url, f"/admin/teams/{team}/keys")}


def _note(into: list[str], request: Request) -> None:
    into.append(request.url)


def submit(page: Page, test_id: str) -> None:
    with page.expect_navigation():
        page.get_by_test_id(test_id).click()


def test_the_operator_acts_through_the_forms(server: str, browser: Browser, shots: Path) -> None:
    seeded = seed(server)
    context = browser.new_context(viewport=VIEWPORTS["wide"])
    page = context.new_page()
    sign_in(page, server, ADMIN_TOKEN)

    page.get_by_test_id("team-name-input").fill("gamma")
    page.get_by_test_id("team-plan").select_option("hobby")
    submit(page, "create-team-submit")
    assert text_of(page, "team-name") == "gamma" and text_of(page, "done") == "Team created."
    gamma = page.url.split("/dashboard/teams/")[1].split("?")[0]
    assert admin_api(server, f"/admin/teams/{gamma}")["plan"] == "hobby"

    page.goto(f"{server}/dashboard/teams/{seeded.team}")
    before = balance(server, seeded.team)
    page.get_by_test_id("grant-credits").fill("1250")
    page.get_by_test_id("grant-kind").select_option("coupon")
    page.get_by_test_id("grant-note").fill("=1+1 goodwill")
    sent = page.eval_on_selector(
        "[data-testid=grant]", "f => Object.fromEntries(new FormData(f).entries())"
    )
    page.get_by_test_id("grant-submit").dblclick()  # a double click: one grant
    page.wait_for_url("**/dashboard/teams/*?done=granted")
    assert text_of(page, "done") == "Credits granted."
    assert balance(server, seeded.team) == before + 1_250
    # The same form replayed later, with the browser's cookies: refused, nothing granted.
    replayed = context.request.post(page.url.split("?")[0] + "/grants", form=sent)
    assert replayed.status == 409 and "already submitted" in replayed.text()
    assert balance(server, seeded.team) == before + 1_250

    page.goto(f"{server}/dashboard/teams/{seeded.team}")
    page.get_by_test_id("topup-credits").fill("300")
    submit(page, "topup-submit")
    assert balance(server, seeded.team) == before + 1_550
    grants = {(g["kind"], number(g["amount"])) for g in table(page, "grants")}
    assert {("coupon", 1_250), ("topup", 300)} <= grants

    page.get_by_test_id("plan-choice").select_option("standard")
    submit(page, "change-plan-submit")
    assert text_of(page, "plan") == "standard"

    page.get_by_test_id("alert-kind").select_option("remaining")
    page.get_by_test_id("alert-threshold").fill("250")
    page.get_by_test_id("alert-key").select_option(label="capped")
    submit(page, "add-alert-submit")
    conditions = [r["condition"] for r in table(page, "alert-rules")]
    assert "250 credits left or fewer (key capped)" in conditions

    # Revoke asks first; Cancel changes nothing; confirming revokes.
    backend = keys_of(server, seeded.team)["backend"]["id"]
    row = page.locator(f"tr[data-key-id='{backend}']")
    with page.expect_navigation():
        row.get_by_test_id("revoke").click()
    assert "cannot be undone" in text_of(page, "question")
    page.screenshot(path=shots / "confirm-revoke.png", full_page=True)
    with page.expect_navigation():
        page.get_by_test_id("cancel").click()
    assert keys_of(server, seeded.team)["backend"]["revokedAt"] is None
    with page.expect_navigation():
        page.locator(f"tr[data-key-id='{backend}']").get_by_test_id("revoke").click()
    submit(page, "confirm-revoke")
    assert text_of(page, "done") == "Key revoked."
    assert keys_of(server, seeded.team)["backend"]["revokedAt"] is not None

    # Rotate: asked, then the new secret shown once; it works, the page never shows it again.
    capped = keys_of(server, seeded.team)["capped"]["id"]
    with page.expect_navigation():
        page.locator(f"tr[data-key-id='{capped}']").get_by_test_id("rotate").click()
    submit(page, "confirm-rotate")
    secret = text_of(page, "secret")
    page.screenshot(path=shots / "rotated-secret.png", full_page=True)
    usage = httpx.get(
        server + "/v2/team/credit-usage", headers={"Authorization": f"Bearer {secret}"}
    )
    assert usage.status_code == 200
    page.goto(f"{server}/dashboard/teams/{seeded.team}")
    assert secret not in page.content()
    page.screenshot(path=shots / "operator-team-after.png", full_page=True)
    context.close()


def test_a_team_manages_its_own_keys_and_only_those(
    server: str, browser: Browser, shots: Path
) -> None:
    seeded = seed(server)
    context = browser.new_context(viewport=VIEWPORTS["narrow"])
    page = context.new_page()
    sign_in(page, server, seeded.keys["backend"])
    assert page.get_by_test_id("grant").count() == 0 and page.get_by_test_id("rotate").count() == 0

    page.get_by_test_id("key-name").fill("ci runner")
    submit(page, "create-key-submit")
    secret = text_of(page, "secret")
    assert secret.startswith("fc-")
    page.screenshot(path=shots / "new-key-shown-once.png", full_page=True)
    assert keys_of(server, seeded.team)["ci runner"]["cap"] is None
    page.get_by_test_id("back").click()
    page.wait_for_load_state()
    assert secret not in page.content()

    ci = keys_of(server, seeded.team)["ci runner"]["id"]
    with page.expect_navigation():
        page.locator(f"tr[data-key-id='{ci}']").get_by_test_id("revoke").click()
    submit(page, "confirm-revoke")
    assert keys_of(server, seeded.team)["ci runner"]["revokedAt"] is not None

    # Another team's key, posted with this session's own token and a fresh form: not found.
    other_key = admin_api(server, f"/admin/teams/{seeded.other}/keys")[0]["id"]
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    form_id = page.locator("[data-testid=create-key] input[name=form]").get_attribute("value")
    for team in (seeded.team, seeded.other):
        answer = context.request.post(
            f"{server}/dashboard/teams/{team}/keys/revoke",
            form={"csrf": csrf, "form": form_id or "", "key": other_key, "confirm": "1"},
        )
        assert answer.status == 404
    assert admin_api(server, f"/admin/teams/{seeded.other}/keys")[0]["revokedAt"] is None
    context.close()


def test_the_layout_at_a_phone_and_a_wide_screen(
    server: str, browser: Browser, shots: Path
) -> None:
    seeded = seed(server)
    for name, viewport in VIEWPORTS.items():
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        fetched: list[str] = []
        page.on("request", functools.partial(_note, fetched))
        sign_in(page, server, ADMIN_TOKEN)
        page.screenshot(path=shots / f"operator-{name}.png", full_page=True)
        page.goto(f"{server}/dashboard/teams/{seeded.team}")
        page.screenshot(path=shots / f"team-{name}.png", full_page=True)
        for card in ("daily-chart", "history", "keys", "activity"):
            section = page.locator("section.card").filter(has=page.get_by_test_id(card))
            section.screenshot(path=shots / f"team-{name}-{card}.png")
        # The page itself never scrolls sideways: wide tables and the chart scroll in place.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (name, overflow)
        clipped = page.evaluate(
            """[...document.querySelectorAll('table')].filter(t => {
                const box = t.parentElement;
                const scrolls = getComputedStyle(box).overflowX === 'auto';
                return box.scrollWidth > box.clientWidth && !scrolls;
            }).length"""
        )
        assert clipped == 0, name
        # Each date label's centre is its bar's centre, on screen, at this width.
        offsets = page.evaluate(
            """[...document.querySelectorAll('[data-testid=daily-chart] text.label')].map(l => {
                const bars = [...document.querySelectorAll(
                    `[data-testid=daily-chart] rect[data-day="${l.dataset.day}"]`)];
                const lb = l.getBoundingClientRect();
                if (!bars.length) return null;
                const bb = bars[0].getBoundingClientRect();
                return Math.abs((lb.left + lb.width / 2) - (bb.left + bb.width / 2));
            }).filter(x => x !== null)"""
        )
        assert offsets and max(offsets) < 1.5, (name, offsets)
        ticks = page.eval_on_selector_all(
            "[data-testid=daily-chart] text.tick", "ts => ts.map(t => +t.dataset.tick)"
        )
        bars = page.eval_on_selector_all(
            "[data-testid=daily-chart] rect",
            "rs => rs.map(r => [r.dataset.day, +r.dataset.credits])",
        )
        per_day: dict[str, int] = {}
        for day, credits in bars:
            per_day[day] = per_day.get(day, 0) + credits
        assert ticks[0] == 0 and ticks[-1] >= max(per_day.values())
        # Labels stay readable: at least 10 px tall as drawn (the chart scrolls rather than
        # shrinking below its minimum width on a phone).
        heights = page.eval_on_selector_all(
            "[data-testid=daily-chart] text", "ts => ts.map(t => t.getBoundingClientRect().height)"
        )
        assert min(heights) >= 10, (name, min(heights))
        # No CDN: every request the pages made went to this server (assets ship in the package).
        assert fetched and all(u.startswith(server + "/") for u in fetched), fetched
        assert any(u.endswith("/dashboard/static/dashboard.css") for u in fetched)
        context.close()
