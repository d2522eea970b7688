"""Alert rules and webhook endpoints on the wire (admin API)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks.webhooks
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer, charge, team_with_key

ADMIN = bearer(ADMIN_TOKEN)


def test_alert_rules_on_the_wire(client: TestClient, db: Database, clock: Clock) -> None:
    team, key, key_id = team_with_key(db, clock.now)
    base = f"/admin/teams/{team.id}/alerts"
    made = client.post(
        base, headers=ADMIN, json={"kind": "percent", "threshold": 50, "keyId": key_id}
    )
    assert made.status_code == 201
    rule = made.json()["data"]
    assert (rule["kind"], rule["threshold"], rule["keyId"], rule["teamId"]) == (
        "percent",
        50,
        key_id,
        team.id,
    )
    listed = client.get(base, headers=ADMIN).json()["data"]
    # Listed by creation, then kind and threshold: the new 50% rule was made the same instant.
    assert [r["id"] for r in listed] == [rule["id"], "default-80", "default-100"]
    for bad, field in (
        ({"kind": "ratio", "threshold": 5}, "kind"),
        ({"kind": "percent", "threshold": 0}, "threshold"),
        ({"kind": "percent", "threshold": "5"}, "threshold"),
        ({"kind": "remaining", "threshold": 5, "keyId": "nope"}, None),
    ):
        refused = client.post(base, headers=ADMIN, json=bad)
        assert refused.status_code in (400, 404), (bad, refused.text)
        assert refused.json()["success"] is False
        if field:  # named by the rule check, or by the body's schema
            said = refused.json()
            named = [said.get("field")] + [d["field"] for d in said.get("details", [])]
            assert field in named, said
    assert len(client.get(base, headers=ADMIN).json()["data"]) == 3  # nothing changed
    charge(db, key, 2_400, clock.now)
    fired = client.get(f"{base}/fired", headers=ADMIN).json()["data"]
    # Newest first: the team's rule fired first (seq 1), then the key's (no cap: of the team's).
    assert [(f["ruleId"], f["event"]["data"]["creditsUsed"]) for f in fired] == [
        (rule["id"], 2_400),
        ("default-80", 2_400),
    ]
    gone = client.delete(f"{base}/{rule['id']}", headers=ADMIN)
    assert gone.status_code == 200
    assert client.delete(f"{base}/{rule['id']}", headers=ADMIN).status_code == 404
    assert client.get(base, headers={"Authorization": f"Bearer {key}"}).status_code == 401


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/in"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_endpoints_on_the_wire(
    client: TestClient, db: Database, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Now(datetime):  # the library checks the signature's age against its clock: ours
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Now:
            return cls.fromtimestamp(clock.now / 1000, tz=tz)

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", Now)
    team, _, _ = team_with_key(db, clock.now)
    receiver = Receiver()
    try:
        made = client.post(
            "/admin/webhooks",
            headers=ADMIN,
            json={"url": receiver.url, "teamId": team.id, "eventTypes": ["credits.granted"]},
        )
        assert made.status_code == 201
        endpoint = made.json()["data"]
        assert endpoint["secret"].startswith("whsec_")
        assert endpoint["eventTypes"] == ["credits.granted"]
        listed = client.get(f"/admin/webhooks?teamId={team.id}", headers=ADMIN).json()["data"]
        assert [(e["id"], "secret" in e) for e in listed] == [(endpoint["id"], False)]
        tested = client.post(f"/admin/webhooks/{endpoint['id']}/test", headers=ADMIN)
        assert tested.json()["data"] == {"delivered": True, "status": 200, "error": None}
        headers, body = receiver.got[-1]
        assert Webhook(endpoint["secret"]).verify(body, headers)["type"] == "webhook.test"
        assert json.loads(body)["data"] == {"endpointId": endpoint["id"], "teamId": team.id}
        rotated = client.post(f"/admin/webhooks/{endpoint['id']}/rotate", headers=ADMIN)
        assert rotated.json()["data"]["secret"] not in (None, endpoint["secret"])
        log = client.get(f"/admin/webhooks/{endpoint['id']}/deliveries", headers=ADMIN)
        assert log.json()["data"] == []
        for bad in ({"url": "ftp://x"}, {"url": receiver.url, "eventTypes": ["nope"]}, {}):
            assert client.post("/admin/webhooks", headers=ADMIN, json=bad).status_code == 400
        assert client.post("/admin/webhooks/none/rotate", headers=ADMIN).status_code == 404
        removed = client.delete(f"/admin/webhooks/{endpoint['id']}", headers=ADMIN)
        assert removed.json()["data"]["disabledAt"] is not None
    finally:
        receiver.close()


def test_top_up_rules_on_the_wire(client: TestClient, db: Database, clock: Clock) -> None:
    team, key, _ = team_with_key(db, clock.now)
    base = f"/admin/teams/{team.id}/topups"
    made = client.post(base, headers=ADMIN, json={"below": 500, "credits": 700})
    assert made.status_code == 201
    rule = made.json()["data"]
    assert (rule["maxPerPeriod"], rule["expiresDays"], rule["grantedInPeriod"]) == (1, None, 0)
    for bad in ({"below": 0, "credits": 5}, {"below": 5}, {"below": 5, "credits": 5, "x": 1}):
        assert client.post(base, headers=ADMIN, json=bad).status_code == 400
    charge(db, key, 2_600, clock.now)
    [listed] = client.get(base, headers=ADMIN).json()["data"]
    assert listed["grantedInPeriod"] == 1
    balance = client.get(f"/admin/teams/{team.id}/balance", headers=ADMIN).json()["data"]
    assert balance["remainingCredits"] == 3_000 - 2_600 + 700
    assert client.delete(f"{base}/{rule['id']}", headers=ADMIN).status_code == 200
    assert client.delete(f"{base}/{rule['id']}", headers=ADMIN).status_code == 404


def test_rotate_and_test_take_no_body_and_leave_a_disabled_endpoint_alone(
    client: TestClient, db: Database, clock: Clock
) -> None:
    team, _, _ = team_with_key(db, clock.now)
    made = client.post(
        "/admin/webhooks", headers=ADMIN, json={"url": "http://127.0.0.1:9/x", "teamId": team.id}
    ).json()["data"]
    base = f"/admin/webhooks/{made['id']}"
    assert client.post(f"{base}/rotate", headers=ADMIN, json={"x": 1}).status_code == 400
    assert client.post(f"{base}/rotate", headers=ADMIN).status_code == 200
    again = client.post(f"{base}/rotate", headers=ADMIN)
    assert again.status_code == 409 and "in progress" in again.json()["error"]
    client.delete(base, headers=ADMIN)
    for action in ("test", "rotate"):
        refused = client.post(f"{base}/{action}", headers=ADMIN)
        assert refused.status_code == 409 and "is disabled" in refused.json()["error"]
    assert client.get("/admin/webhooks?teamId=nope", headers=ADMIN).status_code == 404
