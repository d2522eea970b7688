"""Alert rules and webhook endpoints on the wire (admin API)."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks.webhooks
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from creditgate.domain.plans import Plan
from creditgate.services import plans
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


def test_the_alert_payloads_the_account_api_and_the_dashboard_say_one_remaining(
    client: TestClient, db: Database, clock: Clock
) -> None:
    """Issue #17, item 5: a settlement's alerts read the balance after its own hold closed.
    The 80% payload said -9 where 4 were left, the 100% payload and the dashboard's alert
    said -4 where 0 were."""
    plans.create_plan(db, Plan("twenty", 20, "month", 5, 100, 100), clock.now)
    team, key, _ = team_with_key(db, clock.now, plan="twenty")
    page = client.get("/dashboard/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    signed = client.post(
        "/dashboard/signin",
        data={"csrf": csrf.group(1), "token": ADMIN_TOKEN},
        follow_redirects=False,
    )
    assert signed.status_code == 303

    def remaining_everywhere() -> dict[str, int]:
        """Each face's remaining now."""
        fired = client.get(f"/admin/teams/{team.id}/alerts/fired", headers=ADMIN).json()["data"]
        v1 = client.get("/v1/team/credit-usage", headers=bearer(key)).json()["data"]
        v2 = client.get("/v2/team/credit-usage", headers=bearer(key)).json()["data"]
        balance = client.get(f"/admin/teams/{team.id}/balance", headers=ADMIN).json()["data"]
        html = client.get(f"/dashboard/teams/{team.id}").text
        shown = re.search(r'data-testid="remaining">(-?[\d,]+)<', html)
        line = re.search(r'data-col="detail">[\d,]+ used, (-?[\d,]+) left', html)
        assert shown is not None and line is not None
        return {
            "newest alert's payload": fired[0]["event"]["data"]["remainingCredits"],
            "v1 credit-usage": v1["remaining_credits"],
            "v2 credit-usage": v2["remainingCredits"],
            "admin balance": balance["remainingCredits"],
            "dashboard": int(shown.group(1).replace(",", "")),
            "dashboard's newest alert": int(line.group(1).replace(",", "")),
        }

    def everywhere(n: int) -> dict[str, int]:
        return dict.fromkeys(
            (
                "newest alert's payload",
                "v1 credit-usage",
                "v2 credit-usage",
                "admin balance",
                "dashboard",
                "dashboard's newest alert",
            ),
            n,
        )

    def settle_a_hold(credits: int, settled: int) -> dict[str, Any]:
        held = client.post(
            "/admin/reservations", headers=ADMIN, json={"key": key, "credits": credits}
        )
        assert held.status_code == 201
        done = client.post(
            f"/admin/reservations/{held.json()['data']['id']}/settle",
            headers=ADMIN,
            json={"credits": settled, "final": True},
        )
        assert done.status_code == 200
        data: dict[str, Any] = done.json()["data"]
        return data

    charge(db, key, 7, clock.now)  # 13 left
    assert settle_a_hold(13, 9)["remainingCredits"] == 4  # 16 used: 80%
    assert remaining_everywhere() == everywhere(4)
    assert settle_a_hold(4, 4)["remainingCredits"] == 0  # 20 used: 100%
    assert remaining_everywhere() == everywhere(0)
    fired = client.get(f"/admin/teams/{team.id}/alerts/fired", headers=ADMIN).json()["data"]
    assert [f["ruleId"] for f in fired] == ["default-100", "default-80"]
