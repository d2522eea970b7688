"""Webhooks from the outbox: signed per Standard Webhooks, a team's events in order, retried
with backoff while the receiver is down, dead-lettered after a day, secrets rotated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

import httpx
import pytest
import standardwebhooks.webhooks
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from creditgate.domain.instants import MS_PER_HOUR, parse_iso
from creditgate.services import ledger, metrics, webhooks
from creditgate.storage.database import Database
from tests.helpers import charge, team_with_key

NOW = parse_iso("2026-03-10T12:00:00Z")


class Receiver:
    """A webhook receiver behind httpx.MockTransport: up or down, and what it got."""

    def __init__(self) -> None:
        self.up = True
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503)
        self.got.append((dict(request.headers), request.content))
        return httpx.Response(204)

    def verified(self, secret: str, now_s: int) -> list[dict[str, Any]]:
        """Every body received, verified with `secret` by the library, signed at `now_s`."""
        out = []
        for headers, body in self.got:
            assert headers["webhook-timestamp"] == str(now_s)
            out.append(Webhook(secret).verify(body, headers))
        return out


def deliver(db: Database, receiver: Receiver, now: int) -> int:
    return asyncio.run(webhooks.deliver_due(db, receiver.client, now))


def drain(db: Database, receiver: Receiver, now: int) -> int:
    total = 0
    while n := deliver(db, receiver, now):
        total += n
    return total


@pytest.fixture
def frozen_verify(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Webhook.verify refuses a timestamp 5 minutes off the wall clock; the tests sign at
    their own clock, so `pin(now_ms)` moves the library's clock there."""

    def pin(now_ms: int) -> None:
        class Clock(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> Clock:
                return cls.fromtimestamp(now_ms / 1000, tz=tz)

        monkeypatch.setattr(standardwebhooks.webhooks, "datetime", Clock)

    return pin


def test_events_reach_the_endpoint_signed_in_order(
    db: Database, frozen_verify: Callable[[int], None]
) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    made = webhooks.add_endpoint(db, "https://hooks.example/in", NOW, team_id=team.id)
    assert made.secret.startswith("whsec_")
    charge(db, key, 2_400, NOW)  # 80%
    charge(db, key, 600, NOW)  # 100%
    receiver = Receiver()
    frozen_verify(NOW)
    assert drain(db, receiver, NOW) == 2
    bodies = [json.loads(b) for _, b in receiver.got]
    assert [(b["type"], b["data"]["ruleId"]) for b in bodies] == [
        ("credits.threshold_crossed", "default-80"),
        ("credits.threshold_crossed", "default-100"),
    ]
    for headers, _ in receiver.got:
        assert headers["webhook-id"].startswith("evt_")
        assert headers["webhook-signature"].startswith("v1,")
    assert [v["data"]["ruleId"] for v in receiver.verified(made.secret, NOW // 1000)] == [
        "default-80",
        "default-100",
    ]
    with pytest.raises(WebhookVerificationError):  # another secret does not verify them
        receiver.verified(webhooks.new_secret(), NOW // 1000)
    log = webhooks.deliveries(db, made.endpoint.id)
    assert {(d.status, d.attempts, d.last_status) for d in log} == {("delivered", 1, 204)}
    assert drain(db, receiver, NOW + 60_000) == 0  # delivered once


def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_back(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    other, other_key, _ = team_with_key(db, NOW, anchor="2026-03-01", name="other")
    endpoint = webhooks.add_endpoint(db, "https://hooks.example/all", NOW).endpoint
    receiver = Receiver()
    receiver.up = False
    now = NOW  # two events per team over the outage: 80%, then 100%
    charge(db, key, 2_400, now)
    charge(db, other_key, 2_400, now)
    assert drain(db, receiver, now) == 2  # tried, failed
    charge(db, key, 600, now)
    charge(db, other_key, 600, now)
    for minutes in (1, 3, 10, 60, 180):  # retries while it is down: the heads of each line
        deliver(db, receiver, now + minutes * 60_000)
    log = {d.event_seq: d for d in webhooks.deliveries(db, endpoint.id) if d.team_id == team.id}
    assert log[1].status == "pending" and log[1].attempts >= 3 and log[1].last_status == 503
    assert log[2].attempts == 0  # waits behind the first: order per team
    receiver.up = True
    back = now + 6 * MS_PER_HOUR
    assert drain(db, receiver, back) == 4
    got = [json.loads(b) for _, b in receiver.got]
    per_team: dict[str, list[str]] = {}
    for body in got:
        per_team.setdefault(body["data"]["teamId"], []).append(body["data"]["ruleId"])
    assert per_team == {
        team.id: ["default-80", "default-100"],
        other.id: ["default-80", "default-100"],
    }
    assert {d.status for d in webhooks.deliveries(db, endpoint.id)} == {"delivered"}


def test_a_delivery_failing_for_a_day_is_dead_lettered_and_the_next_moves_on(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    endpoint = webhooks.add_endpoint(db, "https://hooks.example/x", NOW, team_id=team.id).endpoint
    receiver = Receiver()
    receiver.up = False
    charge(db, key, 2_400, NOW)
    charge(db, key, 600, NOW)
    deliver(db, receiver, NOW)
    deliver(db, receiver, NOW + 25 * MS_PER_HOUR)  # a day on, still failing: dead
    first, second = sorted(webhooks.deliveries(db, endpoint.id), key=lambda d: d.event_seq)
    assert (first.status, first.attempts) == ("dead", 2)
    assert second.status == "pending"
    receiver.up = True
    assert drain(db, receiver, NOW + 26 * MS_PER_HOUR) == 1
    assert [json.loads(b)["data"]["ruleId"] for _, b in receiver.got] == ["default-100"]
    assert webhooks.backlog(db) == {"dead": 1, "delivered": 1}


def test_retries_back_off_exponentially_with_jitter() -> None:
    delays = [webhooks.retry_delay_ms(n) for n in range(1, 15)]
    bases = [min(5_000 * 2 ** (n - 1), 2 * MS_PER_HOUR) for n in range(1, 15)]
    assert all(0.8 * b <= d <= 1.2 * b for d, b in zip(delays, bases, strict=True))
    assert bases[-1] == 2 * MS_PER_HOUR


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(
    db: Database, frozen_verify: Callable[[int], None]
) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    made = webhooks.add_endpoint(db, "https://hooks.example/r", NOW, team_id=team.id)
    rotated = webhooks.rotate_secret(db, made.endpoint.id, NOW)
    assert rotated.secret != made.secret
    charge(db, key, 2_400, NOW)
    receiver = Receiver()
    frozen_verify(NOW)
    drain(db, receiver, NOW)
    assert receiver.got[0][0]["webhook-signature"].count("v1,") == 2
    assert receiver.verified(made.secret, NOW // 1000)[0]["type"] == "credits.threshold_crossed"
    assert receiver.verified(rotated.secret, NOW // 1000)[0]["type"] == "credits.threshold_crossed"
    charge(db, key, 600, NOW)
    later = NOW + 25 * MS_PER_HOUR
    receiver.got.clear()
    frozen_verify(later)
    drain(db, receiver, later)
    assert receiver.got[0][0]["webhook-signature"].count("v1,") == 1
    receiver.verified(rotated.secret, later // 1000)
    with pytest.raises(WebhookVerificationError):
        receiver.verified(made.secret, later // 1000)


def test_endpoint_input_is_checked_and_changes_nothing(db: Database) -> None:
    team, _, _ = team_with_key(db, NOW, anchor="2026-03-01")
    for url in ("ftp://x", "not a url", "http://", "https://a.example/\x00"):
        with pytest.raises(Exception, match="url must be"):
            webhooks.add_endpoint(db, url, NOW, team_id=team.id)
    with pytest.raises(Exception, match="eventTypes must be"):
        webhooks.add_endpoint(db, "https://a.example", NOW, event_types=["credits.nope"])
    with pytest.raises(Exception, match="not found"):
        webhooks.add_endpoint(db, "https://a.example", NOW, team_id="no-such-team")
    assert webhooks.list_endpoints(db) == []


def test_an_endpoint_gets_only_the_event_types_it_asked_for(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    wants_grants = webhooks.add_endpoint(
        db, "https://a.example", NOW, team_id=team.id, event_types=["credits.granted"]
    ).endpoint
    charge(db, key, 2_400, NOW)
    assert webhooks.deliveries(db, wants_grants.id) == []


def test_delivery_attempts_are_counted_in_the_metrics(db: Database) -> None:
    def count(outcome: str, reason: str) -> float:
        found = metrics.REGISTRY.get_sample_value(
            "creditgate_webhook_deliveries_total", {"outcome": outcome, "reason": reason}
        )
        return found or 0.0

    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    webhooks.add_endpoint(db, "https://hooks.example/m", NOW, team_id=team.id)
    before = (count("delivered", ""), count("failed", "http_5xx"))
    receiver = Receiver()
    receiver.up = False
    charge(db, key, 2_400, NOW)
    deliver(db, receiver, NOW)
    assert webhooks.pending(db) == 1
    receiver.up = True
    drain(db, receiver, NOW + 60_000)
    after = (count("delivered", ""), count("failed", "http_5xx"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    assert webhooks.pending(db) == 0


def test_a_hanging_receiver_holds_only_its_own_deliveries(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an outside test: a receiver trickling its answer held every team's deliveries
    for minutes (each round waited for all its sends, and the read timeout restarted with each
    byte); then a slow one delayed every other team's by its 10 s timeout, and its retry was
    timed from the round's start rather than the failure."""
    monkeypatch.setattr(webhooks, "SEND_TIMEOUT_S", 0.3)
    hanging, fine = (
        team_with_key(db, NOW, anchor="2026-03-01"),
        team_with_key(db, NOW, anchor="2026-03-01", name="fine"),
    )
    webhooks.add_endpoint(db, "https://hang.example/in", NOW, team_id=hanging[0].id)
    good = webhooks.add_endpoint(db, "https://fine.example/in", NOW, team_id=fine[0].id)
    got: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "hang.example":
            await asyncio.sleep(3_600)
        got.append(json.loads(request.content)["data"]["teamId"])
        return httpx.Response(204)

    charge(db, hanging[1], 2_400, NOW)
    charge(db, fine[1], 2_400, NOW)
    clock = {"now": NOW}

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            dispatcher = webhooks.Dispatcher(db, lambda: clock["now"], 0.05)
            assert await dispatcher.round(client) == 2
            for _ in range(100):  # the fine team's arrives while the other hangs
                if got:
                    break
                await asyncio.sleep(0.01)
            assert got == [fine[0].id]
            clock["now"] = NOW + 1_000  # the hanging one ends (by its total bound) later
            for _ in range(100):
                if not dispatcher._flying:
                    break
                await asyncio.sleep(0.02)

    asyncio.run(run())
    assert [d.status for d in webhooks.deliveries(db, good.endpoint.id)] == ["delivered"]
    [hung] = [d for d in webhooks.deliveries(db, webhooks.list_endpoints(db)[0].id)]
    assert (hung.status, hung.attempts, hung.last_error) == (
        "pending",
        1,
        "no answer within 0 s (TimeoutError)",
    )
    assert hung.next_attempt >= NOW + 1_000 + 4_000  # backoff counted from the failure


def test_a_url_the_sender_cannot_use_is_refused_up_front(db: Database) -> None:
    """Found by an outside test: a newline in a URL was accepted, then failed every delivery
    round it was in (other teams got the same event again and again)."""
    for url in (
        "http://a.example/a\nb",
        "http://a.example/a\tb",
        " http://a.example/x",
        "http://a.example:99999/",
        "http://exa mple.example/",
        "http://a.example/\x7f",
    ):
        with pytest.raises(Exception, match="url must be"):
            webhooks.add_endpoint(db, url, NOW)
    assert webhooks.list_endpoints(db) == []


def test_a_second_rotation_waits_for_the_first_and_a_disabled_endpoint_is_left_alone(
    db: Database,
) -> None:
    """Found by an outside test: rotating twice (or retrying the request) dropped the secret
    receivers still used at once."""
    team, _, _ = team_with_key(db, NOW, anchor="2026-03-01")
    made = webhooks.add_endpoint(db, "https://hooks.example/r", NOW, team_id=team.id)
    webhooks.rotate_secret(db, made.endpoint.id, NOW)
    with pytest.raises(Exception, match="rotation of this endpoint's secret is in progress"):
        webhooks.rotate_secret(db, made.endpoint.id, NOW + 60_000)
    webhooks.rotate_secret(db, made.endpoint.id, NOW + 25 * MS_PER_HOUR)  # after the overlap
    webhooks.remove_endpoint(db, made.endpoint.id, NOW + 26 * MS_PER_HOUR)
    with pytest.raises(Exception, match="is disabled"):
        webhooks.rotate_secret(db, made.endpoint.id, NOW + 50 * MS_PER_HOUR)


def test_the_delivery_log_pages_through_every_delivery(db: Database) -> None:
    """Found by an outside test: the log showed the latest 100 only, without a cursor."""
    team, _, _ = team_with_key(db, NOW, anchor="2026-03-01")
    endpoint = webhooks.add_endpoint(db, "https://hooks.example/p", NOW, team_id=team.id)
    for n in range(5):
        ledger.grant(db, ledger.GrantRequest(team.id, 10 + n), NOW + n)
    seen: list[int] = []
    cursor = None
    while True:
        page = webhooks.page_deliveries(db, endpoint.endpoint.id, 2, cursor)
        seen += [d.event_seq for d in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == [5, 4, 3, 2, 1]
    with pytest.raises(Exception, match="Invalid cursor"):
        webhooks.page_deliveries(db, endpoint.endpoint.id, 2, "not-a-cursor")


def test_a_delivery_left_by_a_dead_process_is_sent_by_another_after_its_20_s_lease(
    db: Database,
) -> None:
    """Found by an outside tester (issue 19): after a kill -9, deliveries in progress waited
    ~51 s (a 60 s lease), undocumented. The lease now covers only what a delivery can take:
    the 10 s send, its record, 5 s to spare."""
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    webhooks.add_endpoint(db, "https://hooks.example/in", NOW, team_id=team.id)
    charge(db, key, 2_400, NOW)  # 80%: one event
    assert webhooks.LEASE_MS == 20_000
    assert webhooks.LEASE_MS >= (webhooks.SEND_TIMEOUT_S + 5 + 5) * 1000
    claimed = webhooks._claim(db, NOW)  # a process claims it, then dies before sending
    assert len(claimed) == 1
    receiver = Receiver()
    assert deliver(db, receiver, NOW + webhooks.LEASE_MS - 1) == 0  # still leased
    assert deliver(db, receiver, NOW + webhooks.LEASE_MS) == 1
    assert len(receiver.got) == 1
