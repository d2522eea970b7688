"""The OpenAPI document (/openapi.json) and a self-contained page that renders it (/docs)."""

from __future__ import annotations

import hmac
import html
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from creditgate import __version__
from creditgate.http import answers, schemas
from creditgate.http.account import ACCOUNT_ROUTES
from creditgate.http.admin import ADMIN_ROUTES
from creditgate.http.admin import QUERY as ADMIN_QUERY
from creditgate.services.pages import DEFAULT_LIMIT, MAX_LIMIT
from creditgate.web.context import context
from creditgate.web.responses import JSON

BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/admin/teams"): schemas.TeamIn,
    ("PATCH", "/admin/teams/{team_id}"): schemas.TeamPatch,
    ("POST", "/admin/teams/{team_id}/keys"): schemas.KeyIn,
    ("PATCH", "/admin/keys/{key_id}"): schemas.KeyPatch,
    ("POST", "/admin/keys/{key_id}/rotate"): schemas.KeyRotateIn,
    ("POST", "/admin/plans"): schemas.PlanIn,
    ("PUT", "/admin/plans/{plan_id}"): schemas.PlanPut,
    ("PATCH", "/admin/plans/{plan_id}"): schemas.PlanPatch,
    ("POST", "/admin/teams/{team_id}/grants"): schemas.GrantIn,
    ("POST", "/admin/charges"): schemas.ChargeIn,
    ("POST", "/admin/charges/batch"): schemas.ChargeBatchIn,
    ("POST", "/admin/check"): schemas.CheckIn,
    ("POST", "/admin/reservations"): schemas.ReserveIn,
    ("POST", "/admin/reservations/{reservation_id}/settle"): schemas.SettleIn,
    ("POST", "/admin/reservations/{reservation_id}/release"): schemas.ReleaseIn,
    ("POST", "/admin/teams/{team_id}/alerts"): schemas.AlertRuleIn,
    ("POST", "/admin/webhooks"): schemas.WebhookIn,
    ("POST", "/admin/teams/{team_id}/topups"): schemas.TopUpIn,
}

ERROR = {"$ref": "#/components/schemas/Error"}
QUERY: dict[str, list[dict[str, Any]]] = {
    "historical": [
        {"name": "byApiKey", "in": "query", "schema": {"type": "boolean", "default": False}},
        {"name": "timeRange", "in": "query", "schema": {"enum": ["day", "week", "month"]}},
    ],
    "activity": [
        {"name": "endpoint", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ],
}

# The admin routes' query parameters (http/admin.py QUERY says which route takes which); any
# other parameter is a 400.
ADMIN_PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {
        "name": "limit",
        "in": "query",
        "description": f"rows per page, 1 to {MAX_LIMIT}",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "description": "the previous page's cursor (opaque); the answer's cursor is null and "
        "hasMore false on the last page",
        "schema": {"type": "string"},
    },
    "byKey": {
        "name": "byKey",
        "in": "query",
        "description": "one row per period and API key (true or false)",
        "schema": {"type": "boolean", "default": False},
    },
    "name": {
        "name": "name",
        "in": "query",
        "description": "only the team of this name (names are unique): one team or none",
        "schema": {"type": "string"},
    },
    "teamId": {
        "name": "teamId",
        "in": "query",
        "description": "only this team's",
        "schema": {"type": "string"},
    },
}

# The ledger listings' filters and the export's choices (http/ledger_views.py).
ADMIN_PARAMETERS.update(
    {
        "from": {
            "name": "from",
            "in": "query",
            "description": "from this instant, inclusive (ISO 8601 with a zone, or a date: "
            "midnight UTC)",
            "schema": {"type": "string", "format": "date-time"},
        },
        "to": {
            "name": "to",
            "in": "query",
            "description": "up to this instant, exclusive; after from",
            "schema": {"type": "string", "format": "date-time"},
        },
        "keyId": {
            "name": "keyId",
            "in": "query",
            "description": "only this API key's rows",
            "schema": {"type": "string"},
        },
        "kind": {
            "name": "kind",
            "in": "query",
            "description": "entries: grant, charge, expiry or expiry_reversal; grants: plan, "
            "pack, coupon or topup",
            "schema": {"type": "string"},
        },
        "status": {
            "name": "status",
            "in": "query",
            "description": "reservations: open, settled, released or expired; jobs: active, "
            "cancelling or done",
            "schema": {"type": "string"},
        },
        "what": {
            "name": "what",
            "in": "query",
            "required": True,
            "description": "entries (every line, in time order) or usage (from the rollups)",
            "schema": {"enum": ["entries", "usage"]},
        },
        "by": {
            "name": "by",
            "in": "query",
            "description": "usage only: per billing period, per period and key, or per period, "
            "UTC day and key",
            "schema": {"enum": ["period", "key", "day"], "default": "period"},
        },
        "format": {
            "name": "format",
            "in": "query",
            "description": "CSV (a header row) or NDJSON (a JSON object a line)",
            "schema": {"enum": ["csv", "ndjson"], "default": "csv"},
        },
    }
)


@dataclass(frozen=True)
class Returns:
    """What one admin route answers: its operation id (the generated client's function name),
    the model of its `data` (a list of them with `many`; a page when the route takes `limit`),
    its success statuses and the errors only it can answer, beside those of every admin route
    (ADMIN_ERRORS) and of every route with a body (413)."""

    operation_id: str
    model: type[BaseModel]
    many: bool = False
    status: tuple[int, ...] = (200,)
    errors: tuple[int, ...] = ()


CREATED = (201,)
REPLAYABLE = (201, 200)  # 200: an idempotent write replayed, its first answer again
NAMED = (404,)

# One entry per admin route (a test fails for a route of ADMIN_ROUTES without one).
RESPONSES: dict[tuple[str, str], Returns] = {
    ("GET", "/admin/plans"): Returns("listPlans", answers.Plan, many=True),
    ("POST", "/admin/plans"): Returns("createPlan", answers.Plan, status=CREATED, errors=(409,)),
    ("PUT", "/admin/plans/{plan_id}"): Returns("replacePlan", answers.Plan, errors=NAMED),
    ("PATCH", "/admin/plans/{plan_id}"): Returns("updatePlan", answers.Plan, errors=NAMED),
    ("GET", "/admin/teams"): Returns("listTeams", answers.Team, many=True),
    ("POST", "/admin/teams"): Returns(
        "createTeam", answers.Team, status=CREATED, errors=(*NAMED, 409)
    ),
    ("GET", "/admin/teams/{team_id}"): Returns("getTeam", answers.Team, errors=NAMED),
    ("PATCH", "/admin/teams/{team_id}"): Returns("updateTeam", answers.Team, errors=(*NAMED, 409)),
    ("GET", "/admin/teams/{team_id}/balance"): Returns("getBalance", answers.Balance, errors=NAMED),
    ("GET", "/admin/teams/{team_id}/usage"): Returns(
        "getUsage", answers.UsagePeriod, many=True, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/keys"): Returns(
        "listKeys", answers.ApiKey, many=True, errors=NAMED
    ),
    ("POST", "/admin/teams/{team_id}/keys"): Returns(
        "createKey", answers.NewApiKey, status=CREATED, errors=(404, 409)
    ),
    ("POST", "/admin/keys/{key_id}/revoke"): Returns("revokeKey", answers.ApiKey, errors=NAMED),
    ("PATCH", "/admin/keys/{key_id}"): Returns("updateKey", answers.ApiKey, errors=NAMED),
    ("POST", "/admin/keys/{key_id}/rotate"): Returns(
        "rotateKey", answers.RotatedKey, status=CREATED, errors=(404, 409)
    ),
    ("GET", "/admin/teams/{team_id}/grants"): Returns(
        "listGrants", answers.GrantRow, many=True, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/entries"): Returns(
        "listEntries", answers.EntryRow, many=True, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/reservations"): Returns(
        "listReservations", answers.ReservationRow, many=True, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/jobs"): Returns(
        "listJobs", answers.JobRow, many=True, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/export"): Returns(
        "exportLedger", answers.ExportStream, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/topups"): Returns(
        "listTopUpRules", answers.TopUpRule, many=True, errors=NAMED
    ),
    ("POST", "/admin/teams/{team_id}/topups"): Returns(
        "addTopUpRule", answers.TopUpRule, status=CREATED, errors=NAMED
    ),
    ("DELETE", "/admin/teams/{team_id}/topups/{rule_id}"): Returns(
        "removeTopUpRule", answers.RemovedAlertRule, errors=NAMED
    ),
    ("POST", "/admin/teams/{team_id}/grants"): Returns(
        "grantCredits", answers.Grant, status=REPLAYABLE, errors=(404, 409)
    ),
    ("POST", "/admin/charges"): Returns(
        "recordCharge", answers.Charge, status=REPLAYABLE, errors=(402, 404, 409)
    ),
    ("POST", "/admin/charges/batch"): Returns("recordCharges", answers.BatchOutcome, many=True),
    ("POST", "/admin/check"): Returns("checkCredits", answers.CheckVerdict, errors=(404, 409)),
    ("POST", "/admin/reservations"): Returns(
        "reserveCredits", answers.Reservation, status=REPLAYABLE, errors=(402, 404, 409, 429)
    ),
    ("GET", "/admin/reservations/{reservation_id}"): Returns(
        "getReservation", answers.Reservation, errors=NAMED
    ),
    ("POST", "/admin/reservations/{reservation_id}/settle"): Returns(
        "settleReservation", answers.Reservation, errors=(404, 409)
    ),
    ("POST", "/admin/reservations/{reservation_id}/release"): Returns(
        "releaseReservation", answers.Reservation, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/alerts"): Returns(
        "listAlertRules", answers.AlertRule, many=True, errors=NAMED
    ),
    ("POST", "/admin/teams/{team_id}/alerts"): Returns(
        "addAlertRule", answers.AlertRule, status=CREATED, errors=(404, 409)
    ),
    ("DELETE", "/admin/teams/{team_id}/alerts/{rule_id}"): Returns(
        "removeAlertRule", answers.RemovedAlertRule, errors=NAMED
    ),
    ("GET", "/admin/teams/{team_id}/alerts/fired"): Returns(
        "listFiredAlerts", answers.FiredAlert, many=True, errors=NAMED
    ),
    ("GET", "/admin/webhooks"): Returns(
        "listWebhooks", answers.WebhookEndpoint, many=True, errors=NAMED
    ),
    ("POST", "/admin/webhooks"): Returns(
        "addWebhook", answers.NewWebhookEndpoint, status=CREATED, errors=NAMED
    ),
    ("DELETE", "/admin/webhooks/{endpoint_id}"): Returns(
        "disableWebhook", answers.WebhookEndpoint, errors=NAMED
    ),
    ("POST", "/admin/webhooks/{endpoint_id}/rotate"): Returns(
        "rotateWebhookSecret", answers.NewWebhookEndpoint, errors=(404, 409)
    ),
    ("POST", "/admin/webhooks/{endpoint_id}/test"): Returns(
        "testWebhook", answers.WebhookTest, errors=(404, 409)
    ),
    ("GET", "/admin/webhooks/{endpoint_id}/deliveries"): Returns(
        "listWebhookDeliveries", answers.Delivery, many=True, errors=NAMED
    ),
}

# What every admin route can answer, besides its own errors.
ADMIN_ERRORS = (400, 401, 403, 500, 503)
ERRORS: dict[int, str] = {
    400: "Bad request: an unknown, repeated or malformed query parameter, or a body that is "
    "not JSON or does not validate (the first problem in error; field and details name it)",
    401: "Unauthorized: no admin token, or not this one",
    402: "Insufficient credits: requiredCredits, remainingCredits and limitedBy (team or key "
    "cap) say why",
    403: "The admin API is disabled (CREDITGATE_ADMIN_TOKEN unset), or the team is suspended",
    404: "What the path or the body names (team, key, plan, reservation, rule, endpoint) does "
    "not exist, or the team has no balance yet",
    409: "Conflict: the idempotency key was used with other content, a duplicate, a revoked key "
    "or a closed reservation",
    413: "The body is too large (or a batch has too many events)",
    429: "Every slot of the plan's concurrency is taken: that many pages are in flight "
    "(running, maxConcurrency)",
    500: "A bug: the error holds an id to find it in the logs",
    503: "The database is unavailable; retry shortly",
}
SUCCESS: dict[int, str] = {
    200: "OK",
    201: "Created",
}


def _responses(success: str) -> dict[str, Any]:
    """The account routes' responses: the Firecrawl envelope, undescribed."""
    out: dict[str, Any] = {"200": {"description": success}}
    for status, text in (
        ("400", "Bad request"),
        ("401", "Unauthorized"),
        ("402", "Insufficient credits"),
        ("403", "Suspended team"),
        ("404", "Not found"),
        ("409", "Conflict"),
        ("429", "Rate limited"),
        ("500", "Server error"),
    ):
        out[status] = {"description": text, "content": {"application/json": {"schema": ERROR}}}
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _add_model(components: dict[str, Any], model: type[BaseModel]) -> None:
    """The model's schema, and those of the models it holds, as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, held in schema.pop("$defs", {}).items():
        components.setdefault(name, held)
    components[model.__name__] = schema


def _envelope(components: dict[str, Any], returns: Returns, pages: bool) -> str:
    """The success envelope's component (TeamAnswer, TeamList, TeamPage): its name."""
    model = returns.model.__name__
    _add_model(components, returns.model)
    data: dict[str, Any] = {"type": "array", "items": _ref(model)} if returns.many else _ref(model)
    properties: dict[str, Any] = {"success": {"type": "boolean", "const": True}, "data": data}
    name = f"{model}Answer"
    if returns.many:
        name = f"{model}List"
    if pages:
        name = f"{model}Page"
        properties["cursor"] = {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "the next page's cursor; null on the last page",
        }
        properties["hasMore"] = {"type": "boolean"}
    components[name] = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    return name


def admin_responses(
    components: dict[str, Any], method: str, path: str, returns: Returns
) -> dict[str, Any]:
    pages = "limit" in ADMIN_QUERY.get((method, path), ())
    envelope = {"application/json": {"schema": _ref(_envelope(components, returns, pages))}}
    out: dict[str, Any] = {
        str(status): {"description": SUCCESS[status], "content": envelope}
        for status in returns.status
    }
    errors = set(ADMIN_ERRORS) | set(returns.errors)
    if (method, path) in BODIES:
        errors.add(413)
    for status in sorted(errors):
        out[str(status)] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": ERROR}},
        }
    return out


def build() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {
        "Error": {
            "type": "object",
            "description": "Every error: the message, and fields that depend on the error",
            "required": ["success", "error"],
            "properties": {
                "success": {"type": "boolean", "const": False},
                "error": {"type": "string"},
            },
            "additionalProperties": True,
        },
    }
    for version in ("v1", "v2"):
        for path, _endpoint, summary in ACCOUNT_ROUTES:
            op: dict[str, Any] = {
                "summary": summary,
                "tags": [f"account {version}"],
                "security": [{"teamKey": []}],
                "responses": _responses("The Firecrawl envelope"),
            }
            if path.endswith("/historical"):
                op["parameters"] = QUERY["historical"]
            paths[f"/{version}{path}"] = {"get": op}
    paths["/v2/team/activity"] = {
        "get": {
            "summary": "The team's jobs of the last 24 hours, newest first",
            "tags": ["account v2"],
            "security": [{"teamKey": []}],
            "parameters": QUERY["activity"],
            "responses": _responses("A page of activity"),
        }
    }
    for method, path, _endpoint, summary in ADMIN_ROUTES:
        returns = RESPONSES[(method, path)]
        op = {
            "operationId": returns.operation_id,
            "summary": summary,
            "tags": ["admin"],
            "security": [{"adminToken": []}],
            "responses": admin_responses(components, method, path, returns),
        }
        params = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in re.findall(r"{(\w+)}", path)
        ] + [ADMIN_PARAMETERS[q] for q in ADMIN_QUERY.get((method, path), ())]
        if params:
            op["parameters"] = params
        model = BODIES.get((method, path))
        if model is not None:
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                    }
                },
            }
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "creditgate",
            "version": __version__,
            "description": "The Firecrawl account API from a real credit ledger, and an "
            "admin API for operators and metering services.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "teamKey": {"type": "http", "scheme": "bearer", "description": "fc- API key"},
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "CREDITGATE_ADMIN_TOKEN",
                },
            },
        },
    }


def describe_streams(document: dict[str, Any]) -> dict[str, Any]:
    """The export route answers CSV or NDJSON, not the JSON envelope (http/ledger_views.py)."""
    op = document["paths"]["/admin/teams/{team_id}/export"]["get"]
    op["responses"]["200"] = {
        "description": "The rows, streamed: CSV with a header row, or one JSON object a line",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
    return document


def account_part(document: dict[str, Any]) -> dict[str, Any]:
    """The document less the admin API: its paths, and every schema only they reach."""
    paths = {p: ops for p, ops in document["paths"].items() if not p.startswith("/admin")}
    schemas = document["components"]["schemas"]
    kept: set[str] = set()
    todo = _refs(paths)
    while todo:
        name = todo.pop()
        if name not in kept and name in schemas:
            kept.add(name)
            todo |= _refs(schemas[name])
    components = {**document["components"], "schemas": {n: schemas[n] for n in kept}}
    return {**document, "paths": paths, "components": components}


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


_DOCUMENT = describe_streams(build())
_ACCOUNT_DOCUMENT = account_part(_DOCUMENT)


def _document_for(request: Request) -> dict[str, Any]:
    """The whole document for the admin token; the account API's alone for anyone else (the
    admin API's shape is nobody else's business)."""
    admin_token = context(request).admin_token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    is_admin = (
        admin_token is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), admin_token.encode())
    )
    return _DOCUMENT if is_admin else _ACCOUNT_DOCUMENT


async def openapi_json(request: Request) -> Response:
    return JSON(_document_for(request))


async def docs(request: Request) -> Response:
    document = _document_for(request)
    rows = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op['summary'])}</td><td>{html.escape(ref)}</td></tr>"
            )
    schemas_html = "".join(
        f"<h3 id='{name}'>{name}</h3><ul>"
        + "".join(
            f"<li><code>{html.escape(field)}</code> {html.escape(str(spec.get('type', '')))} "
            f"{html.escape(str(spec.get('description', '')))}</li>"
            for field, spec in schema.get("properties", {}).items()
        )
        + "</ul>"
        for name, schema in document["components"]["schemas"].items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>creditgate API</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}"
        "td{padding:.2rem .6rem;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>creditgate API {__version__}</h1><p>{html.escape(document['info']['description'])}"
        "</p><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>body</th></tr>"
        + "".join(rows)
        + "</table><h2>Schemas: bodies and answers</h2>"
        + schemas_html
        + "</body></html>"
    )
    return HTMLResponse(page)
