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
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from creditgate.domain.alerts import EventType
from creditgate.domain.errors import Conflict, InvalidInput, NotFound
from creditgate.domain.ids import new_id
from creditgate.domain.instants import MS_PER_HOUR, Instant, format_iso
from creditgate.services import metrics, pages
from creditgate.services.pages import Page
from creditgate.storage import team_rows as teams
from creditgate.storage import webhook_rows as webhooks
from creditgate.storage.database import Database
from creditgate.storage.webhook_rows import Delivery, Endpoint

log = logging.getLogger("creditgate.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
ROTATION_OVERLAP_MS = 24 * MS_PER_HOUR  # the old secret signs too, so receivers can switch
DEAD_AFTER_MS = 24 * MS_PER_HOUR  # retried at least this long after the event, then dead
FIRST_RETRY_MS = 5_000
MAX_RETRY_MS = 2 * MS_PER_HOUR
SEND_TIMEOUT_S = 10.0
# A claimed delivery is this process's for this long: its send (at most SEND_TIMEOUT_S, sent at
# once: a round claims only what it has room to fly) and its record (a write, bounded by the
# database timeout, 5 s by default), with 5 s to spare. So a delivery in progress when its
# process died is sent again by another within LEASE_MS (it was 60 s); one outliving its lease
# (a process frozen longer) may be sent twice: receivers dedupe on `webhook-id`.
LEASE_MS = 20_000
ROUND_LIMIT = 50  # deliveries claimed per round
EVENT_TYPES = tuple(str(t) for t in EventType)


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: Endpoint
    secret: str  # shown once, when created or rotated


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_url(url: object) -> str:
    """An http(s) URL the sender can use as given: no whitespace or control character (a
    newline once made every delivery round fail), a host, a port in range, parsable by httpx."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidInput(
            "url must be an http or https URL of at most 2048 characters", field="url"
        )
    refused = InvalidInput("url must be an http or https URL", field="url")
    if any(c <= " " or c == "\x7f" for c in url):
        raise refused
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when out of range)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise refused from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused
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
        if team_id is not None:
            teams.require_team(conn, team_id)
        webhooks.insert_endpoint(conn, endpoint)
    return NewEndpoint(endpoint, endpoint.secret)


def list_endpoints(db: Database, team_id: str | None = None) -> list[Endpoint]:
    with db.read() as conn:
        if team_id is not None:
            teams.require_team(conn, team_id)
        return webhooks.list_endpoints(conn, team_id)


def get_endpoint(db: Database, endpoint_id: str) -> Endpoint:
    with db.read() as conn:
        found = webhooks.get_endpoint(conn, endpoint_id)
    if found is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found", endpointId=endpoint_id)
    return found


def rotate_secret(db: Database, endpoint_id: str, now: Instant) -> NewEndpoint:
    """A new secret; the old one keeps signing beside it for ROTATION_OVERLAP_MS. Refused
    while an earlier rotation's overlap runs: a second one would drop the secret receivers may
    still use at once (and a retried request would do just that)."""
    secret = new_secret()
    with db.write() as conn:
        found = _usable(webhooks.get_endpoint(conn, endpoint_id), endpoint_id)
        if found.previous_until is not None and now < found.previous_until:
            raise Conflict(
                "a rotation of this endpoint's secret is in progress: its previous secret "
                f"signs until {format_iso(found.previous_until)}; rotate again after that",
                endpointId=endpoint_id,
            )
        webhooks.rotate(conn, endpoint_id, secret, now + ROTATION_OVERLAP_MS)
        rotated = webhooks.get_endpoint(conn, endpoint_id)
    assert rotated is not None
    return NewEndpoint(rotated, secret)


def _usable(found: Endpoint | None, endpoint_id: str) -> Endpoint:
    if found is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found", endpointId=endpoint_id)
    if found.disabled_at is not None:
        raise Conflict(f"Webhook endpoint {endpoint_id} is disabled", endpointId=endpoint_id)
    return found


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
    """The endpoint's latest `limit` deliveries, newest first."""
    return page_deliveries(db, endpoint_id, limit).items


def page_deliveries(
    db: Database, endpoint_id: str, limit: int = pages.DEFAULT_LIMIT, cursor: str | None = None
) -> Page[Delivery]:
    """The endpoint's deliveries, newest first, `limit` at a time from `cursor`."""
    pages.check_limit(limit)
    before = None
    if cursor is not None:
        created, team_id, seq = pages.decode_cursor("deliveries", cursor, int, str, int)
        before = (int(created), str(team_id), int(seq))
    get_endpoint(db, endpoint_id)
    with db.read() as conn:
        found = webhooks.list_deliveries(conn, endpoint_id, limit + 1, before)
    return pages.page(
        found,
        limit,
        lambda d: pages.encode_cursor("deliveries", d.created_at, d.team_id, d.event_seq),
    )


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
    """POST one event; whatever happens, an answer within SEND_TIMEOUT_S (a total bound: a
    receiver trickling its answer a byte at a time is cut off too)."""
    headers = signed_headers(endpoint, event_id, body, now)
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            answer = await client.post(endpoint.url, content=body.encode(), headers=headers)
            await answer.aread()
    except (TimeoutError, httpx.TimeoutException) as exc:
        return Sent(
            None, f"no answer within {SEND_TIMEOUT_S:.0f} s ({type(exc).__name__})", "timeout"
        )
    except httpx.ConnectError as exc:
        return Sent(None, f"{type(exc).__name__}: {exc}"[:500], "connect")
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return Sent(None, f"{type(exc).__name__}: {exc}"[:500], "invalid_target")
    except Exception as exc:  # anything else fails this delivery, never the round
        return Sent(None, f"{type(exc).__name__}: {exc}"[:500])
    if answer.is_success:
        return Sent(answer.status_code, None)
    code = answer.status_code
    reason = "redirect" if code < 400 else "http_4xx" if code < 500 else "http_5xx"
    return Sent(code, f"HTTP {code}", reason)


async def send_test(
    db: Database,
    client: httpx.AsyncClient,
    endpoint_id: str,
    now: Instant,
    found: Endpoint | None = None,
) -> Sent:
    """A `webhook.test` event sent now, outside the outbox: the answer says if it arrived.
    `found`: the endpoint, read already by the caller (the admin API, within its deadline)."""
    if found is None:
        found = await asyncio.to_thread(get_endpoint, db, endpoint_id)
    endpoint = _usable(found, endpoint_id)
    event_id = f"evt_{new_id(now).replace('-', '')}"
    data = {"endpointId": endpoint.id, "teamId": endpoint.team_id}
    message = {"type": str(EventType.TEST), "timestamp": format_iso(now), "data": data}
    body = orjson.dumps(message).decode()
    return await send(client, endpoint, event_id, body, now)


def retry_delay_ms(attempts: int) -> int:
    """After `attempts` failed tries: exponential from 5 s, at most 2 h, with ±20% jitter."""
    base = min(FIRST_RETRY_MS * 2 ** max(attempts - 1, 0), MAX_RETRY_MS)
    return int(base * random.uniform(0.8, 1.2))


def _claim(db: Database, now: Instant, limit: int = ROUND_LIMIT) -> list[tuple[Delivery, Endpoint]]:
    with db.write() as conn:
        found = webhooks.due(conn, now, min(limit, ROUND_LIMIT))
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


async def deliver(
    db: Database,
    client: httpx.AsyncClient,
    delivery: Delivery,
    endpoint: Endpoint,
    clock: Callable[[], Instant],
) -> Sent:
    """Send one claimed delivery and record its outcome, timed by the clock when it ended (a
    retry's delay counts from the failure, not from the round that started it)."""
    if endpoint.disabled_at:
        sent = Sent(None, "endpoint disabled", "other")
        ended = clock()
        gone = replace(delivery, created_at=ended - DEAD_AFTER_MS)  # dead at once
        await asyncio.to_thread(_record, db, [(gone, sent)], ended)
        return sent
    sent = await send(client, endpoint, delivery.event_id, delivery.payload, clock())
    await asyncio.to_thread(_record, db, [(delivery, sent)], clock())
    if sent.ok:
        metrics.webhook_delivered()
    else:
        metrics.webhook_failed(sent.reason)
    return sent


async def deliver_due(db: Database, client: httpx.AsyncClient, now: Instant) -> int:
    """One round, waited for: claim what is due (the head of each endpoint's line per team),
    send it side by side, record each outcome. The number of deliveries attempted. (The
    server does not wait for rounds: see Dispatcher.)"""
    claimed = await asyncio.to_thread(_claim, db, now)
    await asyncio.gather(*(deliver(db, client, d, e, lambda: now) for d, e in claimed))
    return len(claimed)


class Dispatcher:
    """The server's delivery loop: each round claims what is due and sends each delivery in a
    task of its own, so a slow or hanging receiver holds only its own deliveries (each is
    bounded by SEND_TIMEOUT_S, and leased meanwhile so no other round or process takes it);
    a delivery that ends wakes the loop, so a receiver's ordered backlog flows at once."""

    MAX_IN_FLIGHT = 100

    def __init__(self, db: Database, clock: Callable[[], Instant], every_s: float) -> None:
        self.db, self.clock, self.every_s = db, clock, every_s
        self._wake = asyncio.Event()
        self._flying: set[asyncio.Task[Sent]] = set()

    async def run(self, client: httpx.AsyncClient) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.every_s)
                self._wake.clear()
                await self.round(client)
        finally:
            for task in self._flying:
                task.cancel()

    async def round(self, client: httpx.AsyncClient) -> int:
        room = self.MAX_IN_FLIGHT - len(self._flying)
        if room <= 0:
            return 0
        claimed = await asyncio.to_thread(_claim, self.db, self.clock(), room)
        for d, e in claimed:
            task = asyncio.create_task(deliver(self.db, client, d, e, self.clock))
            self._flying.add(task)
            task.add_done_callback(self._landed)
        return len(claimed)

    def _landed(self, task: asyncio.Task[Sent]) -> None:
        self._flying.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a webhook delivery failed unexpectedly", exc_info=task.exception())
        self._wake.set()


def backlog(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return webhooks.backlog(conn)


def pending(db: Database) -> int:
    """Deliveries waiting to be sent (the backlog the metrics report)."""
    return backlog(db).get("pending", 0)
