"""The dashboard's acting forms over HTTP (no browser): each runs the admin API's operation and
changes exactly what it says; what cannot be undone asks first; a form acts once; and every
refusal (no or a forged CSRF token, a forged form id, a replayed form, another team's key, an
operator's action from a team's session, a GET) changes nothing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import MS_PER_DAY, parse_iso
from creditgate.services import account, alerts, dashboard, keys, ledger, teams
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN, Clock
from tests.dashboard.test_session import sign_in

Form = dict[str, str]


class _Forms(HTMLParser):
    """Every POST form of a page: its action and its fields' values (hidden ones included)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str | None, Form]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and found.get("method") == "post":
            self.forms.append((found.get("action") or "", found.get("data-testid"), {}))
        elif tag in ("input", "select") and self.forms and found.get("type") != "checkbox":
            self.forms[-1][2][found.get("name") or "_unnamed"] = found.get("value") or ""


def forms(html: str) -> list[tuple[str, str | None, Form]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form(html: str, test_id: str | None = None, key: str | None = None) -> tuple[str, Form]:
    """The form with this data-testid, or with `key` as "<action's path end>:<an id it
    carries>" a row's form (a key's revoke, a rule's removal)."""
    for action, tid, fields in forms(html):
        if test_id is not None and tid == test_id:
            return action, dict(fields)
        if (
            key is not None
            and key.split(":")[1] in (fields.get("key"), fields.get("rule"))
            and action.endswith(key.split(":")[0])
        ):
            return action, dict(fields)
    raise AssertionError(f"no form {test_id or key}")


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, follow_redirects=False
    ) as client:
        yield client


def remaining(db: Database, team_id: str, clock: Clock) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), clock()).remaining


def page(web: TestClient, team_id: str) -> str:
    answer = web.get(f"/dashboard/teams/{team_id}")
    assert answer.status_code == 200, answer.text
    return answer.text


def test_a_grant_and_a_top_up_add_exactly_what_was_asked_once(
    web: TestClient, db: Database, clock: Clock
) -> None:
    team = teams.create_team(db, "acme", clock(), plan_id="hobby")
    sign_in(web, ADMIN_TOKEN)
    before = remaining(db, team.id, clock)
    action, fields = form(page(web, team.id), "grant")
    fields.update(credits="1,250", kind="coupon", note="=HYPERLINK(1)")
    answer = web.post(action, data=fields)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/dashboard/teams/{team.id}?done=granted"
    assert remaining(db, team.id, clock) == before + 1_250
    assert "Credits granted." in web.get(answer.headers["location"]).text

    # The same form again (a double click, a resend): refused, nothing granted twice.
    again = web.post(action, data=fields)
    assert again.status_code == 409 and "already submitted" in again.text
    assert remaining(db, team.id, clock) == before + 1_250

    action, fields = form(page(web, team.id), "top-up")
    fields.update(credits="300")
    assert web.post(action, data=fields).status_code == 303
    assert remaining(db, team.id, clock) == before + 1_550
    kinds = sorted((g.kind, g.amount) for g in dashboard.grants(db, team.id) if g.kind != "plan")
    assert kinds == [("coupon", 1_250), ("topup", 300)]

    # Bad input is refused before the form is used: fixed and sent again, it still acts.
    action, fields = form(page(web, team.id), "grant")
    for bad in ("0", "-5", "1e3", "", str(10**16)):
        answer = web.post(action, data={**fields, "credits": bad, "kind": "pack"})
        assert answer.status_code == 400, bad
    assert web.post(action, data={**fields, "credits": "5", "kind": "plan"}).status_code == 400
    assert remaining(db, team.id, clock) == before + 1_550
    assert web.post(action, data={**fields, "credits": "5", "kind": "pack"}).status_code == 303
    assert remaining(db, team.id, clock) == before + 1_555


def test_the_operator_creates_a_team_changes_its_plan_and_adds_an_alert_rule(
    web: TestClient, db: Database, clock: Clock
) -> None:
    sign_in(web, ADMIN_TOKEN)
    action, fields = form(web.get("/dashboard").text, "create-team")
    answer = web.post(action, data={**fields, "name": "  Beta Corp ", "plan": "hobby"})
    assert answer.status_code == 303
    (team,) = teams.list_teams(db)
    assert (team.name, team.plan_id) == ("Beta Corp", "hobby")
    assert answer.headers["location"] == f"/dashboard/teams/{team.id}?done=team-created"
    assert web.post(action, data={**fields, "name": "x", "plan": "hobby"}).status_code == 409
    assert len(teams.list_teams(db)) == 1

    action, fields = form(page(web, team.id), "change-plan")
    assert web.post(action, data={**fields, "plan": "nope"}).status_code == 400
    assert web.post(action, data={**fields, "plan": "standard", "now": "1"}).status_code == 303
    assert teams.get_team(db, team.id).plan_id == "standard"

    before = {r.id for r in alerts.list_rules(db, team.id)}
    action, fields = form(page(web, team.id), "add-alert")
    answer = web.post(action, data={**fields, "kind": "remaining", "threshold": "700"})
    assert answer.status_code == 303
    (added,) = [r for r in alerts.list_rules(db, team.id) if r.id not in before]
    assert (str(added.kind), added.threshold, added.key_id) == ("remaining", 700, None)

    action, fields = form(page(web, team.id), key=f"alerts/remove:{added.id}")
    with_rule = {**fields}
    assert web.post(action, data=fields).status_code == 303
    assert {r.id for r in alerts.list_rules(db, team.id)} == before
    assert web.post(action, data=with_rule).status_code == 409  # the same form again
    # Another team's rule through this team's path: not found, and it stays.
    other = teams.create_team(db, "other", clock())
    theirs = alerts.add_rule(db, other.id, "percent", 50, clock()).id
    _, fresh = form(page(web, team.id), "add-alert")
    assert web.post(action, data={**fresh, "rule": theirs}).status_code == 404
    assert theirs in {r.id for r in alerts.list_rules(db, other.id)}


def test_a_taken_team_name_is_refused_with_its_reason_and_the_form_still_works(
    web: TestClient, db: Database, clock: Clock
) -> None:
    acme = teams.create_team(db, "acme", clock())
    sign_in(web, ADMIN_TOKEN)
    action, fields = form(web.get("/dashboard").text, "create-team")
    refused = web.post(action, data={**fields, "name": " acme ", "plan": "hobby"})
    assert refused.status_code == 409
    assert (
        '<h1 data-testid="error">A team named acme exists already: team names are unique, '
        "choose another. Nothing was changed.</h1>"
    ) in refused.text
    assert [(t.id, t.plan_id) for t in teams.list_teams(db)] == [(acme.id, "free")]
    # nothing was used up: the same form, with a free name, creates the team
    made = web.post(action, data={**fields, "name": "acme eu", "plan": "hobby"})
    assert made.status_code == 303
    assert sorted(t.name for t in teams.list_teams(db)) == ["acme", "acme eu"]


def test_revoke_and_rotate_ask_first_then_act_once(
    web: TestClient, db: Database, clock: Clock
) -> None:
    team = teams.create_team(db, "acme", clock())
    key = keys.create_key(db, team.id, clock(), name="backend").key
    sign_in(web, ADMIN_TOKEN)
    action, fields = form(page(web, team.id), key=f"revoke:{key.id}")
    asked = web.post(action, data=fields)
    assert asked.status_code == 200 and "cannot be undone" in asked.text
    assert keys.list_keys(db, team.id)[0].revoked_at is None  # asking changed nothing
    _, confirmed = form(asked.text, key=f":{key.id}")
    assert confirmed["confirm"] == "1" and confirmed["form"] == fields["form"]
    assert web.post(action, data=confirmed).status_code == 303
    assert keys.list_keys(db, team.id)[0].revoked_at == clock()
    assert web.post(action, data=confirmed).status_code == 400  # already revoked

    other = keys.create_key(db, team.id, clock(), name="worker").key
    action, fields = form(page(web, team.id), key=f"rotate:{other.id}")
    asked = web.post(action, data=fields)
    assert "Rotate key" in asked.text and len(keys.list_keys(db, team.id)) == 2
    _, confirmed = form(asked.text, key=f":{other.id}")
    made = web.post(action, data=confirmed)
    assert made.status_code == 201
    secret = re.search(r'data-testid="secret">(fc-[^<]+)<', made.text)
    assert secret is not None and made.headers["cache-control"] == "no-store"
    assert keys.authenticate(db, secret.group(1)) is not None
    assert len(keys.list_keys(db, team.id)) == 3
    assert web.post(action, data=confirmed).status_code == 409  # replayed: no second rotation
    assert len(keys.list_keys(db, team.id)) == 3


def test_a_team_creates_names_and_revokes_its_own_keys_only(
    web: TestClient, db: Database, clock: Clock
) -> None:
    team = teams.create_team(db, "acme", clock())
    mine = keys.create_key(db, team.id, clock(), name="signin")
    other_team = teams.create_team(db, "beta", clock())
    theirs = keys.create_key(db, other_team.id, clock(), name="theirs").key
    sign_in(web, mine.secret)
    html = page(web, team.id)
    assert 'data-testid="grant"' not in html and 'data-testid="rotate"' not in html
    assert 'name="cap"' not in html  # a team names its keys; caps are the operator's

    action, fields = form(html, "create-key")
    made = web.post(action, data={**fields, "name": "ci <b>bot</b>", "cap": "5"})
    assert made.status_code == 201
    assert "ci &lt;b&gt;bot&lt;/b&gt;" in made.text and "<b>bot" not in made.text
    secret = re.search(r'data-testid="secret">(fc-[^<]+)<', made.text)
    assert secret is not None
    (created,) = [k for k in keys.list_keys(db, team.id) if k.name == "ci <b>bot</b>"]
    assert created.cap is None  # the cap field is not the team's to set
    found = keys.authenticate(db, secret.group(1))
    assert found is not None and found[0].id == created.id
    assert secret.group(1) not in page(web, team.id)  # shown once, never again

    # Another team's key through this team's path, or through the other team's: not found.
    action, fields = form(page(web, team.id), key=f"revoke:{created.id}")
    for path in (action, f"/dashboard/teams/{other_team.id}/keys/revoke"):
        answer = web.post(path, data={**fields, "key": theirs.id, "confirm": "1"})
        assert answer.status_code == 404
    assert keys.list_keys(db, other_team.id)[0].revoked_at is None

    # The operator's actions, on its own team: refused.
    for path in ("grants", "topups", "plan", "alerts", "keys/rotate"):
        data = {**fields, "credits": "100", "kind": "pack", "plan": "scale", "key": created.id}
        answer = web.post(f"/dashboard/teams/{team.id}/{path}", data=data)
        assert answer.status_code == 403, path
    assert web.post("/dashboard/teams", data={**fields, "name": "x"}).status_code == 403
    assert remaining(db, team.id, clock) == 500 and len(teams.list_teams(db)) == 2
    assert teams.get_team(db, team.id).plan_id == "free"

    # Its own key: asked, then revoked.
    asked = web.post(action, data=fields)
    assert asked.status_code == 200
    _, confirmed = form(asked.text, key=f":{created.id}")
    assert web.post(action, data=confirmed).status_code == 303
    revoked = {k.name: k.revoked_at for k in keys.list_keys(db, team.id)}
    assert revoked == {"signin": None, "ci <b>bot</b>": clock()}


def test_forged_missing_replayed_and_get_requests_change_nothing(
    web: TestClient, db: Database, clock: Clock
) -> None:
    team = teams.create_team(db, "acme", clock())
    key = keys.create_key(db, team.id, clock(), name="k").key
    sign_in(web, ADMIN_TOKEN)
    action, fields = form(page(web, team.id), "grant")
    fields.update(credits="100", kind="pack")
    before = remaining(db, team.id, clock)
    refusals = [
        ({k: v for k, v in fields.items() if k != "csrf"}, {}),  # no CSRF token
        ({**fields, "csrf": fields["csrf"][:-2] + "xx"}, {}),  # a forged one
        ({**fields, "form": "made-up"}, {}),  # a forged form id
        ({k: v for k, v in fields.items() if k != "form"}, {}),  # none
        (fields, {"Origin": "http://evil.test"}),  # the right token from another site
    ]
    for data, headers in refusals:
        assert web.post(action, data=data, headers=headers).status_code == 403
    assert web.post(action, json=fields).status_code == 403  # not a form
    # A GET to an action path never acts; nor does one with the form's fields in the query.
    assert web.get(action, params=fields).status_code == 405
    assert (
        web.get(f"/dashboard/teams/{team.id}/keys/revoke?key={key.id}&confirm=1").status_code == 405
    )
    assert remaining(db, team.id, clock) == before
    assert keys.list_keys(db, team.id)[0].revoked_at is None

    # Signed out, the same form is refused too.
    web.cookies.clear()
    assert web.post(action, data=fields).status_code == 403
    assert remaining(db, team.id, clock) == before

    # Signed in again, the page's new form acts once; that form replayed later does not.
    sign_in(web, ADMIN_TOKEN)
    action, fields = form(page(web, team.id), "grant")
    fields.update(credits="100", kind="pack")
    assert web.post(action, data=fields).status_code == 303
    clock.advance(3_600_000)
    assert web.post(action, data=fields).status_code == 409
    assert remaining(db, team.id, clock) == before + 100


def test_the_csv_is_the_ledger_in_the_pages_range_with_formulas_defused(
    web: TestClient, db: Database, clock: Clock
) -> None:
    clock.set("2026-03-10T06:00:00Z")
    team = teams.create_team(db, "acme", clock(), plan_id="hobby")
    made = keys.create_key(db, team.id, clock(), name="=cmd|' /C calc'!A0")
    for day, credits in (("2026-03-10", 4), ("2026-03-12", 7), ("2026-03-14", 9)):
        clock.set(f"{day}T08:00:00Z")
        ledger.charge(db, ledger.ChargeRequest(key=made.secret, credits=credits), clock())
    other = teams.create_team(db, "beta", clock())
    sign_in(web, made.secret)
    html = web.get(f"/dashboard/teams/{team.id}?from=2026-03-11&to=2026-03-12").text
    shown = re.findall(r'data-col="credits">(-?[\d,]+)<', html.split('data-testid="activity"')[1])
    assert shown == ["-7"]  # the page: only the charge of the 12th

    answer = web.get(
        f"/dashboard/teams/{team.id}/export.csv?what=entries&from=2026-03-11&to=2026-03-12"
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["kind"], int(r["credits"]), r["keyName"]) for r in rows] == [
        ("charge", -7, "'=cmd|' /C calc'!A0")
    ]
    daily = web.get(f"/dashboard/teams/{team.id}/export.csv?what=day&from=2026-03-10&to=2026-03-14")
    got = [(r["day"][:10], int(r["credits"])) for r in csv.DictReader(io.StringIO(daily.text))]
    assert got == [("2026-03-10", 4), ("2026-03-12", 7), ("2026-03-14", 9)]
    assert web.get(f"/dashboard/teams/{other.id}/export.csv?what=entries").status_code == 404
    bad = web.get(
        f"/dashboard/teams/{team.id}/export.csv?what=entries&from=2026-03-12&to=2026-03-11"
    )
    assert bad.status_code == 400


def test_a_date_range_is_checked_and_defaults_to_the_period() -> None:
    now = parse_iso("2026-03-10T12:00:00Z")
    start = parse_iso("2026-02-20T05:00:00Z")
    found = dashboard.day_range(None, None, start, now)
    assert (found.first, found.last) == (
        parse_iso("2026-02-20T00:00:00Z"),
        parse_iso("2026-03-10T00:00:00Z"),
    )
    assert found.end - found.first == 19 * MS_PER_DAY
    with pytest.raises(InvalidInput, match="to: must not be before from"):
        dashboard.day_range(now, now - MS_PER_DAY, start, now)
    with pytest.raises(InvalidInput, match="at most 92 days"):
        dashboard.day_range(now - 92 * MS_PER_DAY, now, start, now)
    assert len(dashboard.day_range(now - 91 * MS_PER_DAY, now, start, now).days) == 92
    far = dashboard.day_range(None, None, now - 400 * MS_PER_DAY, now)
    assert len(far.days) == 92  # a long period's default: its last 92 days


def test_the_page_lists_the_newest_entries_of_its_range_and_says_when_there_are_more(
    db: Database, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "ENTRIES_SHOWN", 3)
    clock.set("2026-03-10T06:00:00Z")
    team = teams.create_team(db, "acme", clock(), plan_id="hobby")
    made = keys.create_key(db, team.id, clock(), name="k")
    for credits in (1, 2, 3, 4, 5):
        clock.advance(60_000)
        ledger.charge(db, ledger.ChargeRequest(key=made.secret, credits=credits), clock())
    days = dashboard.day_range(None, None, team.anchor, clock())
    found = dashboard.entries_in(db, team.id, days)
    assert [(e["kind"], e["credits"], e["keyName"]) for e in found.rows] == [
        ("charge", -5, "k"),
        ("charge", -4, "k"),
        ("charge", -3, "k"),
    ]
    assert found.truncated
    monkeypatch.setattr(dashboard, "ENTRIES_SHOWN", 6)  # 5 charges and the plan's grant
    wide = dashboard.entries_in(db, team.id, days)
    assert not wide.truncated and [e["kind"] for e in wide.rows][-1] == "grant"
