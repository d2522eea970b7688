"""Webhook endpoints: list, add (secret shown once), disable, rotate the secret, test, and
their deliveries."""

from __future__ import annotations

import httpx

from creditgate.http import schemas
from creditgate.http.admin.query import PAGE, TEAM_ID
from creditgate.http.admin.route import CREATED, NAMED, AdminRoute, Call, Reply
from creditgate.services import webhooks
from creditgate.services.wire import Delivery, NewWebhookEndpoint, WebhookEndpoint, WebhookTest
from creditgate.web.context import blocking

ENDPOINT = "/admin/webhooks/{endpoint_id}"


async def list_webhooks(call: Call) -> Reply:
    found = await blocking(webhooks.list_endpoints, call.ctx.db, call.query("teamId"))
    return Reply([WebhookEndpoint.of(e) for e in found])


async def add_webhook(call: Call) -> Reply:
    body = call.parsed(schemas.WebhookIn)
    made = await blocking(
        webhooks.add_endpoint,
        call.ctx.db,
        body.url,
        call.ctx.clock(),
        body.teamId,
        body.eventTypes,
    )
    return Reply(NewWebhookEndpoint.made(made.endpoint, made.secret), 201)


async def remove_webhook(call: Call) -> Reply:
    found = await blocking(
        webhooks.remove_endpoint, call.ctx.db, call.path("endpoint_id"), call.ctx.clock()
    )
    return Reply(WebhookEndpoint.of(found))


async def rotate_webhook(call: Call) -> Reply:
    made = await blocking(
        webhooks.rotate_secret, call.ctx.db, call.path("endpoint_id"), call.ctx.clock()
    )
    return Reply(NewWebhookEndpoint.made(made.endpoint, made.secret))


async def test_webhook(call: Call) -> Reply:
    endpoint_id = call.path("endpoint_id")
    found = await blocking(webhooks.get_endpoint, call.ctx.db, endpoint_id)
    async with httpx.AsyncClient() as client:
        sent = await webhooks.send_test(call.ctx.db, client, endpoint_id, call.ctx.clock(), found)
    return Reply(WebhookTest(delivered=sent.ok, status=sent.code, error=sent.error))


async def webhook_deliveries(call: Call) -> Reply:
    found = await blocking(
        webhooks.page_deliveries, call.ctx.db, call.path("endpoint_id"), *call.page()
    )
    return Reply([Delivery.of(d) for d in found.items], cursor=found.cursor)


ROUTES = [
    AdminRoute(
        "GET",
        "/admin/webhooks",
        list_webhooks,
        "Webhook endpoints (?teamId= for one team's)",
        "listWebhooks",
        WebhookEndpoint,
        many=True,
        query=(TEAM_ID,),
        errors=NAMED,
    ),
    AdminRoute(
        "POST",
        "/admin/webhooks",
        add_webhook,
        "Add a webhook endpoint for one team's events or every team's (its secret shown once)",
        "addWebhook",
        NewWebhookEndpoint,
        body=schemas.WebhookIn,
        status=CREATED,
        errors=NAMED,
    ),
    AdminRoute(
        "DELETE",
        ENDPOINT,
        remove_webhook,
        "Disable a webhook endpoint",
        "disableWebhook",
        WebhookEndpoint,
        errors=NAMED,
    ),
    AdminRoute(
        "POST",
        f"{ENDPOINT}/rotate",
        rotate_webhook,
        "A new secret (shown once); the old one also signs for 24 hours",
        "rotateWebhookSecret",
        NewWebhookEndpoint,
        refuses_body=True,
        errors=(404, 409),
    ),
    AdminRoute(
        "POST",
        f"{ENDPOINT}/test",
        test_webhook,
        "Send a webhook.test event now",
        "testWebhook",
        WebhookTest,
        refuses_body=True,
        errors=(404, 409),
    ),
    AdminRoute(
        "GET",
        f"{ENDPOINT}/deliveries",
        webhook_deliveries,
        "The endpoint's deliveries, newest first: status, attempts, last answer",
        "listWebhookDeliveries",
        Delivery,
        many=True,
        query=PAGE,
        errors=NAMED,
    ),
]
