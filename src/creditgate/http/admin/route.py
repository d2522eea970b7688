"""One admin route, declared once: its method and path, the body it parses, the query it takes,
the model it answers with, its statuses and errors. The server serves it from this declaration
(http/admin/__init__.py) and the OpenAPI document describes it from the same one
(http/openapi.py); a handler returns its answer model, never a dict, and the dispatcher refuses
any other answer than the one declared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from creditgate.domain.errors import InvalidInput
from creditgate.http import schemas
from creditgate.http.admin.query import Param
from creditgate.services import pages
from creditgate.services.wire import Answer, ExportStream
from creditgate.web.auth import require_admin
from creditgate.web.body import parse, read_json
from creditgate.web.context import AppContext, context
from creditgate.web.responses import ok

M = TypeVar("M", bound=BaseModel)

CREATED = (201,)
REPLAYABLE = (201, 200)  # 200: an idempotent write replayed, its first answer again
NAMED = (404,)


@dataclass(frozen=True)
class Reply:
    """What a handler answers: its declared model (a list of them for `many`, a page when the
    route takes `limit`), or a streamed Response for a route that answers ExportStream."""

    data: Answer | list[Answer] | Response
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    cursor: str | None = None


def created(data: Answer, replayed: bool = False) -> Reply:
    """201 for a new write; 200 with the first result for a replay of an idempotent one."""
    return Reply(data, 200 if replayed else 201, replay_headers(replayed))


def replay_headers(replayed: bool) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if replayed else {}


@dataclass(frozen=True)
class Call:
    """One request to a route: its context, and its body parsed into the declared model."""

    request: Request
    ctx: AppContext
    body: BaseModel | None

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def parsed(self, model: type[M]) -> M:
        assert isinstance(self.body, model), f"the route declares no {model.__name__} body"
        return self.body

    def flag(self, name: str) -> bool:
        value = self.request.query_params.get(name, "false")
        if value not in ("true", "false"):
            raise InvalidInput(f"Bad Request: {name}: must be true or false", field=name)
        return value == "true"

    def page(self) -> tuple[int, str | None]:
        """The `limit` and `cursor` of a listing that pages."""
        text = self.request.query_params.get("limit")
        limit = pages.DEFAULT_LIMIT
        if text is not None:
            if not (text.isascii() and text.isdigit() and 1 <= int(text) <= pages.MAX_LIMIT):
                raise InvalidInput(
                    f"Bad Request: limit: must be an integer from 1 to {pages.MAX_LIMIT}",
                    field="limit",
                )
            limit = int(text)
        return limit, self.request.query_params.get("cursor")


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str
    handler: Handler
    summary: str
    operation_id: str  # the generated client's function name
    answer: type[Answer]
    many: bool = False
    body: type[BaseModel] | None = None
    body_optional: bool = False  # an empty body is taken as `{}`
    raw_body: bool = False  # the handler reads the body itself (the batch: its own limit)
    refuses_body: bool = False  # no body; one given must be empty or `{}`
    query: tuple[Param, ...] = ()
    status: tuple[int, ...] = (200,)
    errors: tuple[int, ...] = ()  # beside those every admin route can answer

    @property
    def query_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.query)

    @property
    def pages(self) -> bool:
        return "limit" in self.query_names

    @property
    def streams(self) -> bool:
        return self.answer is ExportStream


class AnswerMismatch(TypeError):
    """A handler answered other than its route declares (a bug: a 500)."""


async def serve(route: AdminRoute, request: Request) -> Response:
    """Authenticate, check the query's names, parse the body, run the handler, render."""
    ctx = _admin(request, route.query_names)
    reply = await route.handler(Call(request, ctx, await _body(route, request, ctx)))
    return render(route, reply)


def render(route: AdminRoute, reply: Reply) -> Response:
    if reply.status not in route.status:
        raise AnswerMismatch(f"{route.operation_id} answered {reply.status}, not {route.status}")
    if route.streams:
        if not isinstance(reply.data, Response):
            raise AnswerMismatch(f"{route.operation_id} answers a stream")
        return reply.data
    items = reply.data if isinstance(reply.data, list) else [reply.data]
    if isinstance(reply.data, list) != route.many or any(
        type(i) is not route.answer for i in items
    ):
        raise AnswerMismatch(
            f"{route.operation_id} answers {'a list of ' if route.many else ''}"
            f"{route.answer.__name__}, not {reply.data!r:.200}"
        )
    rendered = [i.render() for i in items if isinstance(i, Answer)]
    data = rendered if route.many else rendered[0]
    headers = dict(reply.headers)
    if route.pages:
        return ok(
            reply.status, headers, data=data, cursor=reply.cursor, hasMore=reply.cursor is not None
        )
    return ok(reply.status, headers, data=data)


def _admin(request: Request, allowed: tuple[str, ...]) -> AppContext:
    """The admin token first, then the query: only the parameters this route takes, once each."""
    ctx = context(request)
    require_admin(request, ctx.admin_token)
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name not in allowed:
            takes = f"allowed: {', '.join(allowed)}" if allowed else "this route takes none"
            raise InvalidInput(
                f"Bad Request: {name}: unknown query parameter ({takes})", field=name
            )
        if name in seen:
            raise InvalidInput(f"Bad Request: {name}: given more than once", field=name)
        seen.add(name)
    return ctx


def _empty(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers


async def _body(route: AdminRoute, request: Request, ctx: AppContext) -> BaseModel | None:
    if route.refuses_body:
        if not _empty(request):
            parse(schemas.Empty, await read_json(request, ctx.max_body_bytes))
        return None
    if route.body is None or route.raw_body:
        return None
    empty = route.body_optional and _empty(request)
    raw: Any = {} if empty else await read_json(request, ctx.max_body_bytes)
    return parse(route.body, raw)
