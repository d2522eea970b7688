"""The OpenAPI document (/openapi.json) and a self-contained page that renders it (/docs)."""

from __future__ import annotations

import hmac
import html
import re
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from creditgate import __version__
from creditgate.http.account import ACCOUNT_ROUTES
from creditgate.http.admin import ROUTES as ADMIN
from creditgate.http.admin.route import AdminRoute
from creditgate.web.context import context
from creditgate.web.responses import JSON

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


def _envelope(components: dict[str, Any], route: AdminRoute) -> str:
    """The success envelope's component (TeamAnswer, TeamList, TeamPage): its name."""
    model = route.answer.__name__
    _add_model(components, route.answer)
    data: dict[str, Any] = {"type": "array", "items": _ref(model)} if route.many else _ref(model)
    properties: dict[str, Any] = {"success": {"type": "boolean", "const": True}, "data": data}
    name = f"{model}Answer"
    if route.many:
        name = f"{model}List"
    if route.pages:
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


def admin_responses(components: dict[str, Any], route: AdminRoute) -> dict[str, Any]:
    envelope = {"application/json": {"schema": _ref(_envelope(components, route))}}
    out: dict[str, Any] = {
        str(status): {"description": SUCCESS[status], "content": envelope}
        for status in route.status
    }
    errors = set(ADMIN_ERRORS) | set(route.errors)
    if route.body is not None:
        errors.add(413)
    for status in sorted(errors):
        out[str(status)] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": ERROR}},
        }
    return out


def admin_operation(components: dict[str, Any], route: AdminRoute) -> dict[str, Any]:
    """One admin route's operation, from its declaration (http/admin/route.py)."""
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": ["admin"],
        "security": [{"adminToken": []}],
        "responses": admin_responses(components, route),
    }
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in re.findall(r"{(\w+)}", route.path)
    ] + [p.openapi() for p in route.query]
    if params:
        op["parameters"] = params
    if route.body is not None:
        name = route.body.__name__
        components[name] = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(name)}},
        }
    return op


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
    for route in ADMIN:
        paths.setdefault(route.path, {})[route.method.lower()] = admin_operation(components, route)
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
    """A route that answers ExportStream answers CSV or NDJSON, not the JSON envelope."""
    for route in ADMIN:
        if route.streams:
            op = document["paths"][route.path][route.method.lower()]
            op["responses"]["200"] = {
                "description": "The rows, streamed: CSV with a header row, or one JSON object "
                "a line",
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
