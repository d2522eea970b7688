"""The OpenAPI document (/openapi.json) and a self-contained page that renders it (/docs)."""

from __future__ import annotations

import html
import re
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from creditgate import __version__
from creditgate.http import schemas
from creditgate.http.account import ACCOUNT_ROUTES
from creditgate.http.admin import ADMIN_ROUTES
from creditgate.http.admin import QUERY as ADMIN_QUERY
from creditgate.services.pages import DEFAULT_LIMIT, MAX_LIMIT
from creditgate.web.responses import JSON

BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/admin/teams"): schemas.TeamIn,
    ("PATCH", "/admin/teams/{team_id}"): schemas.TeamPatch,
    ("POST", "/admin/teams/{team_id}/keys"): schemas.KeyIn,
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
        "description": "one row per period and API key",
        "schema": {"enum": ["true", "false"], "default": "false"},
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


def _responses(success: str) -> dict[str, Any]:
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


def build() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["success", "error"],
            "properties": {"success": {"const": False}, "error": {"type": "string"}},
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
        pages = "limit" in ADMIN_QUERY.get((method, path), ())
        op = {
            "summary": summary,
            "tags": ["admin"],
            "security": [{"adminToken": []}],
            "responses": _responses(
                '{"success": true, "data": [...], "cursor": "..." | null, "hasMore": bool}'
                if pages
                else '{"success": true, "data": ...}: the object, or the list'
            ),
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


_DOCUMENT = describe_streams(build())


async def openapi_json(_request: Request) -> Response:
    return JSON(_DOCUMENT)


async def docs(_request: Request) -> Response:
    rows = []
    for path, methods in _DOCUMENT["paths"].items():
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
        for name, schema in _DOCUMENT["components"]["schemas"].items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>creditgate API</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}"
        "td{padding:.2rem .6rem;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>creditgate API {__version__}</h1><p>{html.escape(_DOCUMENT['info']['description'])}"
        "</p><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>body</th></tr>"
        + "".join(rows)
        + "</table><h2>Bodies</h2>"
        + schemas_html
        + "</body></html>"
    )
    return HTMLResponse(page)
