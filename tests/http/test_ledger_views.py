"""The ledger on view: a team's grants, entries, reservations and jobs, page by page, filtered;
its entries or usage exported as CSV or NDJSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from creditgate.services import export
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, Clock
from tests.ledger_fixture import Acme, acme

PLAN = "2026-08-01T00:00:00.000Z"


def get(admin: TestClient, path: str) -> Any:
    answer = admin.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


def refused(admin: TestClient, path: str) -> tuple[int, str]:
    answer = admin.get(path)
    return answer.status_code, answer.json()["error"]


def entry(a: Acme, movement: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "occurredAt": None,
        "recordedAt": "2026-08-04T00:00:00.000Z",
        "movementId": movement,
        "line": 0,
        "kind": "charge",
        "credits": None,
        "grantId": None,
        "keyId": None,
        "keyName": None,
        "periodStart": PLAN,
        "endpoint": None,
        "apiVersion": None,
        "jobId": None,
        "reservationId": None,
        "target": None,
        "note": None,
    }
    return base | fields


def expected_entries(a: Acme, plan_grant: str, plan_movement: str) -> list[dict[str, Any]]:
    ci5, web3, ci2, ci7 = a.charges
    charge = {"grantId": plan_grant}
    tie = [
        entry(a, web3, occurredAt="2026-08-02T00:00:00.000Z", credits=-3, keyId=a.web,
              keyName="web", endpoint="crawl", **charge),
        entry(a, ci2, occurredAt="2026-08-02T00:00:00.000Z", credits=-2, keyId=a.ci,
              keyName="ci", endpoint="scrape", **charge),
    ]  # fmt: skip
    tie.sort(key=lambda e: e["movementId"])  # same instant: by movement id
    return [
        entry(a, plan_movement, occurredAt=PLAN, recordedAt=PLAN, kind="grant", credits=3000,
              grantId=plan_grant, periodStart=None, note="plan hobby"),
        entry(a, ci5, occurredAt="2026-08-01T01:00:00.000Z", credits=-5, keyId=a.ci,
              keyName="ci", endpoint="scrape", target="https://example.com/a,b", **charge),
        *tie,
        entry(a, ci7, occurredAt="2026-08-03T12:00:00.000Z", credits=-7, keyId=a.ci,
              keyName="ci", endpoint="map", target='say "hi"', **charge),
        entry(a, a.pack, occurredAt="2026-08-04T00:00:00.000Z", kind="grant", credits=100,
              grantId=a.pack, periodStart=None, note="invoice, 12"),
    ]  # fmt: skip


@pytest.fixture
def team(db: Database, clock: Clock) -> Acme:
    return acme(db, clock)


def plan_ids(admin: TestClient, a: Acme) -> tuple[str, str]:
    """The plan grant's id and its grant entry's movement id (made at team creation)."""
    found = get(admin, f"/admin/teams/{a.team}/entries?kind=grant&limit=1")["data"][0]
    return found["grantId"], found["movementId"]


def test_entries_are_listed_in_time_order_with_every_field(admin: TestClient, team: Acme) -> None:
    answer = get(admin, f"/admin/teams/{team.team}/entries")
    assert answer == {
        "success": True,
        "data": expected_entries(team, *plan_ids(admin, team)),
        "cursor": None,
        "hasMore": False,
    }


def test_pages_of_entries_meet_end_to_end(admin: TestClient, team: Acme) -> None:
    everything = expected_entries(team, *plan_ids(admin, team))
    seen: list[dict[str, Any]] = []
    cursor = None
    sizes = []
    while True:
        path = f"/admin/teams/{team.team}/entries?limit=4"
        answer = get(admin, path + (f"&cursor={cursor}" if cursor else ""))
        seen += answer["data"]
        sizes.append((len(answer["data"]), answer["hasMore"]))
        cursor = answer["cursor"]
        assert (cursor is not None) == answer["hasMore"]
        if cursor is None:
            break
    assert sizes == [(4, True), (2, False)]
    assert seen == everything
    # exactly a page's worth: the last page says so, no empty page after it
    six = get(admin, f"/admin/teams/{team.team}/entries?limit=6")
    assert (len(six["data"]), six["cursor"], six["hasMore"]) == (6, None, False)
    three = get(admin, f"/admin/teams/{team.team}/entries?limit=3")
    rest = get(admin, f"/admin/teams/{team.team}/entries?limit=3&cursor={three['cursor']}")
    assert three["data"] + rest["data"] == everything and rest["hasMore"] is False


def test_entries_filter_by_time_key_and_kind(admin: TestClient, team: Acme) -> None:
    everything = expected_entries(team, *plan_ids(admin, team))
    base = f"/admin/teams/{team.team}/entries"
    window = get(admin, base + "?from=2026-08-01T01:00:00Z&to=2026-08-03T12:00:00Z")["data"]
    assert window == everything[1:4]  # from inclusive, to exclusive
    assert get(admin, base + "?from=2026-08-02")["data"] == everything[2:]  # a date: midnight
    ci = get(admin, base + f"?keyId={team.ci}")["data"]
    assert [e["credits"] for e in ci] == [-5, -2, -7]
    grants = get(admin, base + "?kind=grant")["data"]
    assert [e["credits"] for e in grants] == [3000, 100]
    both = get(admin, base + f"?keyId={team.ci}&kind=charge&from=2026-08-02T00:00:00Z")["data"]
    assert [e["credits"] for e in both] == [-2, -7]
    assert get(admin, base + "?keyId=no-such-key")["data"] == []


def test_grants_reservations_and_jobs_are_listed_with_their_filters(
    admin: TestClient, team: Acme
) -> None:
    plan_grant, _ = plan_ids(admin, team)
    grants = get(admin, f"/admin/teams/{team.team}/grants")["data"]
    assert [(g["id"], g["kind"], g["credits"], g["remaining"], g["startsAt"]) for g in grants] == [
        (plan_grant, "plan", 3000, 2983, PLAN),
        (team.pack, "pack", 100, 100, "2026-08-04T00:00:00.000Z"),
    ]
    assert grants[1] == {
        "id": team.pack,
        "kind": "pack",
        "credits": 100,
        "remaining": 100,
        "expired": 0,
        "startsAt": "2026-08-04T00:00:00.000Z",
        "expiresAt": None,
        "periodStart": None,
        "note": "invoice, 12",
        "createdAt": "2026-08-04T00:00:00.000Z",
        "expiredAt": None,
    }
    packs = get(admin, f"/admin/teams/{team.team}/grants?kind=pack")["data"]
    assert [g["id"] for g in packs] == [team.pack]
    holds = get(admin, f"/admin/teams/{team.team}/reservations")["data"]
    released, job_hold = team.holds
    assert holds == [
        {
            "id": released,
            "keyId": team.ci,
            "keyName": "ci",
            "credits": 10,
            "settled": 0,
            "status": "released",
            "endpoint": "scrape",
            "apiVersion": None,
            "jobId": None,
            "target": None,
            "createdAt": "2026-08-04T00:00:00.000Z",
            "expiresAt": "2026-08-04T01:00:00.000Z",
            "closedAt": "2026-08-04T00:01:00.000Z",
            "slots": 1,
        },
        {
            "id": job_hold,
            "keyId": team.web,
            "keyName": "web",
            "credits": 20,
            "settled": 0,
            "status": "open",
            "endpoint": "crawl",
            "apiVersion": None,
            "jobId": "job-1",
            "target": None,
            "createdAt": "2026-08-04T00:02:00.000Z",
            "expiresAt": "2026-08-04T01:02:00.000Z",
            "closedAt": None,
            "slots": 1,
        },
    ]
    path = f"/admin/teams/{team.team}/reservations"
    assert [h["id"] for h in get(admin, path + "?status=open")["data"]] == [job_hold]
    assert [h["id"] for h in get(admin, path + f"?keyId={team.ci}")["data"]] == [released]
    assert get(admin, path + "?to=2026-08-04T00:00:00Z")["data"] == []
    jobs = get(admin, f"/admin/teams/{team.team}/jobs")["data"]
    assert jobs == [
        {
            "id": "job-1",
            "keyId": team.web,
            "keyName": "web",
            "endpoint": "crawl",
            "status": "active",
            "reservationId": job_hold,
            "createdAt": "2026-08-04T00:02:00.000Z",
        }
    ]
    assert get(admin, f"/admin/teams/{team.team}/jobs?status=done")["data"] == []
    assert get(admin, f"/admin/teams/{team.team}/jobs?keyId={team.web}")["data"] == jobs


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("entries?from=yesterday", "Bad Request: from: not an ISO 8601 timestamp: 'yesterday'"),
        (
            "entries?to=2026-08-02T00:00:00",
            "Bad Request: to: timestamp '2026-08-02T00:00:00' has no time zone; add Z for UTC",
        ),
        ("entries?from=2026-08-02&to=2026-08-02", "Bad Request: to: must be after from"),
        ("entries?kind=refund", "Bad Request: kind: must be one of grant, charge, expiry, "
         "expiry_reversal"),
        ("grants?kind=charge", "Bad Request: kind: must be one of plan, pack, coupon, topup"),
        ("reservations?status=done", "Bad Request: status: must be one of open, settled, "
         "released, expired"),
        ("jobs?status=open", "Bad Request: status: must be one of active, cancelling, done"),
        ("entries?limit=0", "Bad Request: limit: must be an integer from 1 to 1000"),
        ("entries?status=open", "Bad Request: status: unknown query parameter (allowed: from, "
         "to, keyId, kind, limit, cursor)"),
        ("grants?keyId=x", "Bad Request: keyId: unknown query parameter (allowed: from, to, "
         "kind, limit, cursor)"),
        ("entries?kind=charge&kind=grant", "Bad Request: kind: given more than once"),
        ("entries?cursor=nonsense", "Invalid cursor."),
    ],
)  # fmt: skip
def test_bad_filters_are_refused_naming_the_parameter(
    admin: TestClient, team: Acme, query: str, error: str
) -> None:
    assert refused(admin, f"/admin/teams/{team.team}/{query}") == (400, error)


def test_a_cursor_serves_only_its_own_listing_and_filters(admin: TestClient, team: Acme) -> None:
    base = f"/admin/teams/{team.team}"
    cursor = get(admin, f"{base}/entries?limit=1&kind=charge")["cursor"]
    assert get(admin, f"{base}/entries?limit=1&kind=charge&cursor={cursor}")["hasMore"] is True
    for elsewhere in (
        f"entries?limit=1&cursor={cursor}",  # no filter
        f"entries?limit=1&kind=grant&cursor={cursor}",  # another filter
        f"entries?limit=1&kind=charge&keyId={team.ci}&cursor={cursor}",
        f"reservations?limit=1&cursor={cursor}",  # another listing
    ):
        assert refused(admin, f"{base}/{elsewhere}") == (400, "Invalid cursor."), elsewhere
    assert admin.post("/admin/teams", json={"name": "other"}).status_code == 201
    teams_cursor = admin.get("/admin/teams?limit=1").json()["cursor"]
    holds_cursor = get(admin, f"{base}/reservations?limit=1")["cursor"]
    assert teams_cursor is not None and holds_cursor is not None
    assert refused(admin, f"{base}/entries?cursor={teams_cursor}") == (400, "Invalid cursor.")
    assert refused(admin, f"{base}/jobs?cursor={holds_cursor}") == (400, "Invalid cursor.")


def test_an_unknown_team_is_a_404(admin: TestClient, team: Acme) -> None:
    for what in ("grants", "entries", "reservations", "jobs", "export?what=entries"):
        answer = admin.get(f"/admin/teams/nope/{what}")
        assert answer.status_code == 404, what
        assert answer.json()["error"] == "Team nope not found"


def test_the_ledger_routes_need_the_admin_token(client: TestClient, team: Acme) -> None:
    for what in ("entries", "export?what=entries"):
        assert client.get(f"/admin/teams/{team.team}/{what}").status_code == 401


# --- export ---------------------------------------------------------------------------------


def csv_line(*cells: Any) -> str:
    return ",".join("" if c is None else str(c) for c in cells) + "\r\n"


def test_entries_export_as_csv_byte_for_byte(admin: TestClient, team: Acme) -> None:
    rows = expected_entries(team, *plan_ids(admin, team))
    answer = admin.get(f"/admin/teams/{team.team}/export?what=entries")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="{team.team}-entries.csv"'
    )
    quoted = {"https://example.com/a,b": '"https://example.com/a,b"', 'say "hi"': '"say ""hi"""',
              "invoice, 12": '"invoice, 12"'}  # fmt: skip
    expected = csv_line(*rows[0].keys()) + "".join(
        csv_line(*(quoted.get(v, v) if isinstance(v, str) else v for v in r.values())) for r in rows
    )
    assert answer.content == expected.encode()


def test_usage_exports_by_period_key_and_day(admin: TestClient, team: Acme) -> None:
    base = f"/admin/teams/{team.team}/export?what=usage"
    assert admin.get(base).text == "periodStart,credits\r\n" + csv_line(PLAN, 17)
    by_key = admin.get(base + "&by=key&format=ndjson")
    assert by_key.headers["content-type"] == "application/x-ndjson"
    keys = sorted([(team.ci, "ci", 14), (team.web, "web", 3)])  # within a period: by key id
    assert by_key.text == "".join(
        f'{{"periodStart":"{PLAN}","keyId":"{k}","keyName":"{n}","credits":{c}}}\n'
        for k, n, c in keys
    )
    day2 = sorted([(team.ci, "ci", 2), (team.web, "web", 3)])
    assert admin.get(base + "&by=day").text == (
        "periodStart,day,keyId,keyName,credits,lastUsedAt\r\n"
        + csv_line(PLAN, PLAN, team.ci, "ci", 5, "2026-08-01T01:00:00.000Z")
        + "".join(
            csv_line(PLAN, "2026-08-02T00:00:00.000Z", k, n, c, "2026-08-02T00:00:00.000Z")
            for k, n, c in day2
        )
        + csv_line(PLAN, "2026-08-03T00:00:00.000Z", team.ci, "ci", 7, "2026-08-03T12:00:00.000Z")
    )
    days = admin.get(base + "&by=day&format=ndjson&from=2026-08-02&to=2026-08-03").text
    assert [line.count('"day":"2026-08-02T00:00:00.000Z"') for line in days.splitlines()] == [1, 1]
    assert admin.get(base + "&from=2026-09-01").text == "periodStart,credits\r\n"


def test_entries_export_as_ndjson_within_a_time_range(admin: TestClient, team: Acme) -> None:
    rows = expected_entries(team, *plan_ids(admin, team))
    answer = admin.get(
        f"/admin/teams/{team.team}/export?what=entries&format=ndjson"
        "&from=2026-08-01T01:00:00Z&to=2026-08-04T00:00:00Z"
    )
    assert answer.content == b"".join(orjson.dumps(r) + b"\n" for r in rows[1:5])


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("", "Bad Request: what: must be one of entries, usage"),
        ("what=keys", "Bad Request: what: must be one of entries, usage"),
        ("what=usage&by=hour", "Bad Request: by: must be one of period, key, day"),
        ("what=entries&by=key", "Bad Request: by: only for what=usage"),
        ("what=entries&format=xlsx", "Bad Request: format: must be one of csv, ndjson"),
        ("what=entries&from=soon", "Bad Request: from: not an ISO 8601 timestamp: 'soon'"),
        ("what=entries&limit=5", "Bad Request: limit: unknown query parameter (allowed: what, "
         "by, format, from, to)"),
    ],
)  # fmt: skip
def test_bad_export_parameters_are_refused_before_any_byte(
    admin: TestClient, team: Acme, query: str, error: str
) -> None:
    answer = admin.get(f"/admin/teams/{team.team}/export?{query}")
    assert (answer.status_code, answer.json()["error"]) == (400, error)
    assert answer.headers["content-type"] == "application/json"


def test_an_export_reads_in_chunks_that_meet_end_to_end(db: Database, team: Acme) -> None:
    """Chunks of 1, 2 or 4 rows give the same bytes as one chunk: each starts right after the
    last row of the one before, the tie at 08-02 included."""
    for what, by in (("entries", None), ("usage", "key"), ("usage", "day")):
        for fmt in export.FORMATS:
            chosen = export.prepare(db, team.team, what, by, fmt)
            whole = b"".join(export.stream(db, chosen, 10_000))
            for size in (1, 2, 4):
                assert b"".join(export.stream(db, chosen, size)) == whole, (what, by, fmt, size)
            assert export.count(db, chosen) == sum(1 for _ in whole.splitlines()) - (fmt == "csv")


def test_openapi_describes_the_ledger_routes_and_their_parameters(client: TestClient) -> None:
    spec = client.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()[
        "paths"
    ]
    for name, query in (
        ("grants", ["from", "to", "kind", "limit", "cursor"]),
        ("entries", ["from", "to", "keyId", "kind", "limit", "cursor"]),
        ("reservations", ["from", "to", "keyId", "status", "limit", "cursor"]),
        ("jobs", ["from", "to", "keyId", "status", "limit", "cursor"]),
        ("export", ["what", "by", "format", "from", "to"]),
    ):
        op = spec[f"/admin/teams/{{team_id}}/{name}"]["get"]
        assert [p["name"] for p in op["parameters"]] == ["team_id", *query], name
    exported = spec["/admin/teams/{team_id}/export"]["get"]["responses"]["200"]["content"]
    assert list(exported) == ["text/csv", "application/x-ndjson"]
