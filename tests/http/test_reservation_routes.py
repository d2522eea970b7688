"""Reservations and the check call on the wire."""

from __future__ import annotations

from starlette.testclient import TestClient

from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer, team_with_key

ADMIN = bearer(ADMIN_TOKEN)
INSUFFICIENT = (
    "Insufficient credits to perform this request. For more credits, you can upgrade your plan "
    "at https://firecrawl.dev/pricing or try changing the request limit to a lower value."
)


def test_reserve_settle_release_and_check(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    made = client.post(
        "/admin/reservations",
        headers=ADMIN,
        json={"key": key, "credits": 2000, "endpoint": "crawl", "ttlSeconds": 600},
    )
    assert made.status_code == 201
    held = made.json()["data"]
    assert (held["status"], held["holding"], held["remainingCredits"]) == ("open", 2000, 1000)
    assert held["expiresAt"] == "2026-08-01T00:10:00.000Z"

    refused = client.post("/admin/reservations", headers=ADMIN, json={"key": key, "credits": 1001})
    assert refused.status_code == 402
    assert refused.json() == {
        "success": False,
        "error": INSUFFICIENT,
        "requiredCredits": 1001,
        "remainingCredits": 1000,
        "limitedBy": "team",
    }

    check = client.post("/admin/check", headers=ADMIN, json={"key": key, "credits": 1001})
    assert check.json()["data"] == {
        "allowed": False,
        "requiredCredits": 1001,
        "remainingCredits": 1000,
        "teamRemainingCredits": 1000,
        "keyRemainingCredits": None,
        "limitedBy": "team",
    }

    rid = held["id"]
    page = client.post(f"/admin/reservations/{rid}/settle", headers=ADMIN, json={"credits": 7})
    assert (page.json()["data"]["settled"], page.json()["data"]["holding"]) == (7, 1993)
    done = client.post(
        f"/admin/reservations/{rid}/settle", headers=ADMIN, json={"credits": 3, "final": True}
    ).json()["data"]
    assert (done["status"], done["settled"], done["remainingCredits"]) == ("settled", 10, 2990)
    late = client.post(f"/admin/reservations/{rid}/settle", headers=ADMIN, json={"credits": 1})
    assert (late.status_code, late.json()["error"]) == (409, f"Reservation {rid} is settled")

    other = client.post(
        "/admin/reservations", headers=ADMIN, json={"key": key, "credits": 5}
    ).json()["data"]
    released = client.post(f"/admin/reservations/{other['id']}/release", headers=ADMIN)
    assert released.json()["data"]["status"] == "released"
    assert (
        client.get(f"/admin/reservations/{other['id']}", headers=ADMIN).json()["data"]["holding"]
        == 0
    )
    assert client.get("/admin/reservations/nope", headers=ADMIN).status_code == 404

    queue = client.get("/v2/team/queue-status", headers=bearer(key)).json()
    assert queue["activeJobsInQueue"] == 0


def test_open_reservations_show_in_queue_status_and_concurrency(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    for _ in range(3):
        client.post("/admin/reservations", headers=ADMIN, json={"key": key, "credits": 1})
    assert client.get("/v2/concurrency-check", headers=bearer(key)).json() == {
        "success": True,
        "concurrency": 3,
        "maxConcurrency": 5,
    }
    queue = client.get("/v1/team/queue-status", headers=bearer(key)).json()
    assert (queue["jobsInQueue"], queue["activeJobsInQueue"]) == (3, 3)


def test_bad_reservation_input(client: TestClient, db: Database, clock: Clock) -> None:
    _, key, _ = team_with_key(db, clock.now)
    for body in (
        {"key": key, "credits": 0},
        {"key": key, "credits": 5, "ttlSeconds": 0},
        {"credits": 5},
        {"key": key, "credits": "5"},
    ):
        response = client.post("/admin/reservations", headers=ADMIN, json=body)
        assert response.status_code == 400, body
    assert (
        client.get("/v2/team/credit-usage", headers=bearer(key)).json()["data"]["remainingCredits"]
        == 3000
    )
