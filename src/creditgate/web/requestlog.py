"""One log line per request: what was asked, what was answered, for whom, what it cost.

    GET /v2/team/credit-usage 200 team=0193... key=fc-...a1b2 held=0 charged=0 1.8ms id=5f0c...

Fields: method, route pattern (the route table's row or the Starlette route, never the raw
path, so ids and spellings do not leak into metrics built on logs), status, team id, key hint,
credits held and charged by the request, outcome (web/metrics.py: admitted, queued,
no_credits, ...), duration, request id (the client's `X-Request-Id` when well-formed, else a
new one; echoed in the answer). `CREDITGATE_LOG_FORMAT=json` writes each line as one JSON
object. No line ever holds a key, a token or the upstream's key: handlers record a key's hint,
and nothing of the request's headers or body is logged. The same route, status and outcome are
counted in the Prometheus metrics (web/metrics.py), with nothing of the team or the key.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditgate.web import metrics
from creditgate.web.metrics import UNMATCHED, outcome_of

log = logging.getLogger("creditgate.requests")

SCOPE_KEY = "creditgate.log"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9_.-]{1,64}")


@dataclass
class RequestFields:
    """What handlers learn about a request, for its log line."""

    route: str | None = None
    team: str | None = None
    key: str | None = None  # the key's hint, never the key
    held: int = 0
    charged: int = 0
    outcome: str | None = None  # what a handler knows its status does not say (web/metrics.py)


def fields(request: Request) -> RequestFields:
    """This request's log fields (a throwaway when the app runs without the middleware)."""
    found = request.scope.get(SCOPE_KEY)
    return found if isinstance(found, RequestFields) else RequestFields()


class JsonFormatter(logging.Formatter):
    """Every record as one JSON object: time, level, logger, message and any `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


JsonFormatter.converter = time.gmtime


class RequestLog:
    """Pure ASGI middleware, outermost: it sees every answer, the edge's 400s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope[SCOPE_KEY] = found = RequestFields()
        status = 500
        counted = False

        def count() -> None:
            """Into the metrics, once: before the answer's last bytes leave (so a client that
            read its answer finds it counted), or at the end when none left whole."""
            nonlocal counted
            if counted:
                return
            counted = True
            route = found.route or getattr(scope.get("route"), "path", None) or UNMATCHED
            found.route, found.outcome = route, outcome_of(status, found.outcome)
            seconds = time.perf_counter() - started
            metrics.observe_request(scope["method"], route, status, found.outcome, seconds)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                count()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            count()
            _emit(scope, found, status, (time.perf_counter() - started) * 1000, request_id)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return bytes(value).decode()
    return uuid.uuid4().hex


def _emit(scope: Scope, found: RequestFields, status: int, ms: float, request_id: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    route = found.route
    line = {
        "method": scope["method"],
        "route": route,
        "status": status,
        **{k: v for k, v in asdict(found).items() if k != "route"},
        "ms": round(ms, 1),
        "requestId": request_id,
    }
    text = (
        f"{line['method']} {route} {status} team={found.team or '-'} key={found.key or '-'} "
        f"held={found.held} charged={found.charged} {ms:.1f}ms id={request_id}"
    )
    log.info(text, extra={"fields": line})


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """uvicorn's logging setup plus creditgate's own loggers, at `level`, as text or JSON."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = orjson.loads(orjson.dumps(LOGGING_CONFIG))  # a deep copy
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    config["formatters"]["creditgate"] = formatter
    config["handlers"]["creditgate"] = {
        "class": "logging.StreamHandler",
        "formatter": "creditgate",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["creditgate"] = {
        "handlers": ["creditgate"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
