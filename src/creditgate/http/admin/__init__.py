"""The admin API: operators and metering services, behind CREDITGATE_ADMIN_TOKEN.

One module per noun declares its routes (route.py AdminRoute: body, query and answer models);
this package serves them, and http/openapi.py describes them, from those declarations."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from creditgate.http.admin import (
    alerts,
    charges,
    grants,
    keys,
    ledger,
    plans,
    reservations,
    teams,
    topups,
    usage,
    webhooks,
)
from creditgate.http.admin.route import AdminRoute, serve

ROUTES: list[AdminRoute] = [
    *plans.ROUTES,
    *teams.ROUTES,
    *usage.ROUTES,
    *keys.ROUTES,
    *grants.ROUTES,
    *charges.ROUTES,
    *reservations.ROUTES,
    *alerts.ROUTES,
    *topups.ROUTES,
    *webhooks.ROUTES,
    *ledger.ROUTES,
]

# Views of the declarations: (method, path, handler, summary), and the query names each takes.
ADMIN_ROUTES: list[tuple[str, str, Any, str]] = [
    (r.method, r.path, r.handler, r.summary) for r in ROUTES
]
QUERY: dict[tuple[str, str], tuple[str, ...]] = {
    (r.method, r.path): r.query_names for r in ROUTES if r.query
}


def routes() -> list[BaseRoute]:
    """Starlette's routes: one per path, dispatching on the method to its declaration."""
    grouped: dict[str, dict[str, AdminRoute]] = {}
    for route in ROUTES:
        grouped.setdefault(route.path, {})[route.method] = route
    return [Route(path, _dispatch(by), methods=list(by)) for path, by in grouped.items()]


def _dispatch(by_method: dict[str, AdminRoute]) -> Any:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method  # Starlette adds HEAD
        return await serve(by_method[method], request)

    return endpoint
