"""The bare route every HTTP figure is compared with: same framework, server and JSON encoder."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from creditgate.web.responses import ok


async def hello(_request: Request) -> Response:
    return ok(data={"hello": "world"})


app = Starlette(routes=[Route("/hello", hello)])
