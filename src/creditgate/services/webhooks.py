"""Signed webhooks (Standard Webhooks) from the durable outbox the write path fills.

An event is written, with a delivery row for each endpoint that wants it, in the transaction of
the charge (or grant, or expiry) that raised it: nothing is sent for a write that did not
commit, and nothing committed is forgotten. The dispatcher (the server's background round)
sends each delivery signed with the endpoint's secret (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), a team's events to an endpoint one at a time and in order; a failure is
retried with exponential backoff and jitter, and a delivery still failing a day after its event
is dead-lettered (kept, visible, no longer tried) so the team's later events move on. Charging
never waits for any of this: a slow or dead endpoint only slows its own deliveries.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from creditgate.domain.alerts import EventType
from creditgate.domain.errors import InvalidInput, NotFound
from creditgate.domain.ids import new_id
from creditgate.domain.instants import MS_PER_HOUR, Instant, format_iso
from creditgate.services import metrics
from creditgate.storage import teams, webhooks
from creditgate.storage.database import Database
from creditgate.storage.webhooks import Delivery, Endpoint

log = logging.getLogger("creditgate.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
ROTATION_OVERLAP_MS = 24 * MS_PER_HOUR  # the old secret signs too, so receivers can switch
DEAD_AFTER_MS = 24 * MS_PER_HOUR  # retried at least this long after the event, then dead
FIRST_RETRY_MS = 5_000
MAX_RETRY_MS = 2 * MS_PER_HOUR
LEASE_MS = 60_000  # a claimed delivery is this process's for that long
SEND_TIMEOUT_S = 10.0
ROUND_LIMIT = 50  # deliveries claimed per round
EVENT_TYPES = tuple(str(t) for t in EventType)


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: Endpoint
    secret: str  # shown once, when created or rotated


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_url(url: object) -> str:
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidInput(
            "url must be an http or https URL of at most 2048 characters", field="url"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "\x00" in url:
        raise InvalidInput("url must be an http or https URL", field="url")
    return url


def check_types(types: object) -> tuple[str, ...] | None:
    if types is None:
        return None
    if not isinstance(types, list) or not types or not all(t in EVENT_TYPES for t in types):
        raise InvalidInput(
            f"eventTypes must be a non-empty list of: {', '.join(EVENT_TYPES)}",
            field="eventTypes",
        )
    return tuple(dict.fromkeys(types))


def add_endpoint(
    db: Database,
    url: object,
    now: Instant,
    team_id: str | None = None,
    event_types: object = None,
) -> NewEndpoint:
    """An endpoint for one team's events, or (team_id None) for every team's."""
    endpoint = Endpoint(
        id=new_id(now),
        team_id=team_id,
        url=check_url(url),
        secret=new_secret(),
        previous_secret=None,
        previous_until=None,
        event_types=check_types(event_types),
        created_at=now,
        disabled_at=None,
    )
    with db.write() as conn:
        if team_id is not None and teams.get_team(conn, team_id) is None:
            raise NotFound(f"Team {team_id} not found", teamId=team_id)
        webhooks.insert_endpoint(conn, endpoint)
    return NewEndpoint(endpoint, endpoint.secret)


def list_endpoints(db: Database, team_id: str | None = None) -> list[Endpoint]:
    with db.read() as conn:
        return webhooks.list_endpoints(conn, team_id)


def get_endpoint(db: Database, endpoint_id: str) -> Endpoint:
    with db.read() as conn:
        found = webhooks.get_endpoint(conn, endpoint_id)
    if found is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found", endpointId=endpoint_id)
    return found


def rotate_secret(db: Database, endpoint_id: str, now: Instant) -> NewEndpoint:
    """A new secret; the old one keeps signing beside it for ROTATION_OVERLAP_MS."""
    secret = new_secret()
    with db.write() as conn:
        if webhooks.get_endpoint(conn, endpoint_id) is None:
            raise NotFound(f"Webhook endpoint {endpoint_id} not found", endpointId=endpoint_id)
        webhooks.rotate(conn, endpoint_id, secret, now + ROTATION_OVERLAP_MS)
        found = webhooks.get_endpoint(conn, endpoint_id)
    assert found is not None
    return NewEndpoint(found, secret)


def remove_endpoint(db: Database, endpoint_id: str, now: Instant) -> Endpoint:
    """Disable it: no new deliveries, none retried; its log stays."""
    with db.write() as conn:
        if webhooks.get_endpoint(conn, endpoint_id) is None:
            raise NotFound(f"Webhook endpoint {endpoint_id} not found", endpointId=endpoint_id)
        webhooks.disable(conn, endpoint_id, now)
        found = webhooks.get_endpoint(conn, endpoint_id)
    assert found is not None
    return found


def deliveries(db: Database, endpoint_id: str, limit: int = 100) -> list[Delivery]:
    get_endpoint(db, endpoint_id)
    with db.read() as conn:
        return webhooks.list_deliveries(conn, endpoint_id, limit)


# --- sending ---------------------------------------------------------------------------------


def signed_headers(endpoint: Endpoint, event_id: str, body: str, now: Instant) -> dict[str, str]:
    """Standard Webhooks headers; during a rotation both secrets sign (space-separated)."""
    at = datetime.fromtimestamp(now / 1000, tz=UTC)
    signatures = [Webhook(endpoint.secret).sign(event_id, at, body)]
    if endpoint.previous_secret and endpoint.previous_until and now < endpoint.previous_until:
        signatures.append(Webhook(endpoint.previous_secret).sign(event_id, at, body))
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(now // 1000),
        "webhook-signature": " ".join(signatures),
        "user-agent": "creditgate-webhooks",
    }


@dataclass(frozen=True, slots=True)
class Sent:
    code: int | None
    error: str | None
    reason: str = "other"  # of a failure, for the metrics: timeout, connect, http_4xx, ...

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


async def send(
    client: httpx.AsyncClient, endpoint: Endpoint, event_id: str, body: str, now: Instant
) -> Sent:
    headers = signed_headers(endpoint, event_id, body, now)
    try:
        answer = await client.post(
            endpoint.url, content=body.encode(), headers=headers, timeout=SEND_TIMEOUT_S
        )
    except httpx.TimeoutException as exc:
        return Sent(None, f"{type(exc).__name__}: {exc}"[:500], "timeout")
    except httpx.ConnectError as exc:
        return Sent(None, f"{type(exc).__name__}: {exc}"[:500], "connect")
    except httpx.HTTPError as exc:
        return Sent(None, f"{type(exc).__name__}: {exc}"[:500])
    if answer.is_success:
        return Sent(answer.status_code, None)
    reason = "http_4xx" if answer.status_code < 500 else "http_5xx"
    return Sent(answer.status_code, f"HTTP {answer.status_code}", reason)


async def send_test(
    db: Database, client: httpx.AsyncClient, endpoint_id: str, now: Instant
) -> Sent:
    """A `webhook.test` event sent now, outside the outbox: the answer says if it arrived."""
    endpoint = await asyncio.to_thread(get_endpoint, db, endpoint_id)
    event_id = f"evt_{new_id(now).replace('-', '')}"
    data = {"endpointId": endpoint.id, "teamId": endpoint.team_id}
    message = {"type": str(EventType.TEST), "timestamp": format_iso(now), "data": data}
    body = orjson.dumps(message).decode()
    return await send(client, endpoint, event_id, body, now)


def retry_delay_ms(attempts: int) -> int:
    """After `attempts` failed tries: exponential from 5 s, at most 2 h, with ±20% jitter."""
    base = min(FIRST_RETRY_MS * 2 ** max(attempts - 1, 0), MAX_RETRY_MS)
    return int(base * random.uniform(0.8, 1.2))


def _claim(db: Database, now: Instant) -> list[tuple[Delivery, Endpoint]]:
    with db.write() as conn:
        found = webhooks.due(conn, now, ROUND_LIMIT)
        taken = [d for d in found if webhooks.claim(conn, d, now + LEASE_MS)]
        endpoints = {d.endpoint_id: webhooks.get_endpoint(conn, d.endpoint_id) for d in taken}
    return [(d, e) for d in taken if (e := endpoints[d.endpoint_id]) is not None]


def _record(db: Database, outcomes: list[tuple[Delivery, Sent]], now: Instant) -> None:
    with db.write() as conn:
        for d, sent in outcomes:
            attempts = d.attempts + 1
            if sent.ok:
                status, later = "delivered", now
            elif now - d.created_at >= DEAD_AFTER_MS:
                status, later = "dead", now
                log.warning("webhook delivery dead-lettered: %s", d.event_id)
            else:
                status, later = "pending", now + retry_delay_ms(attempts)
            webhooks.record(
                conn,
                d,
                status=status,
                at=now,
                next_attempt=later,
                code=sent.code,
                error=sent.error,
            )


async def deliver_due(db: Database, client: httpx.AsyncClient, now: Instant) -> int:
    """One round: claim what is due (the head of each endpoint's line per team), send it side
    by side, record each outcome. The number of deliveries attempted."""
    claimed = await asyncio.to_thread(_claim, db, now)
    if not claimed:
        return 0
    disabled = [(d, Sent(None, "endpoint disabled")) for d, e in claimed if e.disabled_at]
    live = [(d, e) for d, e in claimed if not e.disabled_at]
    sent = await asyncio.gather(*(send(client, e, d.event_id, d.payload, now) for d, e in live))
    outcomes = [(d, s) for (d, _), s in zip(live, sent, strict=True)]
    dead = [(replace(d, created_at=now - DEAD_AFTER_MS), s) for d, s in disabled]
    await asyncio.to_thread(_record, db, outcomes + dead, now)
    for _, result in outcomes:
        if result.ok:
            metrics.webhook_delivered()
        else:
            metrics.webhook_failed(result.reason)
    return len(claimed)


def backlog(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return webhooks.backlog(conn)


def pending(db: Database) -> int:
    """Deliveries waiting to be sent (the backlog the metrics report)."""
    return backlog(db).get("pending", 0)
