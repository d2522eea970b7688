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

import contextlib
import itertools
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
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


class TextFormatter(logging.Formatter):
    """`time level logger: message`, as logging's default Formatter writes it, with the time's
    text made once a second rather than for every line (a line per request)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)
        return f"{text},{int(record.msecs):03d}"  # logging's default_msec_format


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


# A new request id: this process's random prefix and a count (unique without a system call).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ids = itertools.count()


def _new_prefix() -> None:  # a forked process counts under a prefix of its own
    global _ID_PREFIX, _ids
    _ID_PREFIX, _ids = uuid.uuid4().hex[:16], itertools.count()


os.register_at_fork(after_in_child=_new_prefix)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return bytes(value).decode()
    return f"{_ID_PREFIX}{next(_ids):016x}"


def _emit(scope: Scope, found: RequestFields, status: int, ms: float, request_id: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    route = found.route or getattr(scope.get("route"), "path", None) or UNMATCHED
    method = scope["method"]
    line = {
        "method": method,
        "route": route,
        "status": status,
        "team": found.team,
        "key": found.key,
        "held": found.held,
        "charged": found.charged,
        "outcome": found.outcome,
        "ms": round(ms, 1),
        "requestId": request_id,
    }
    text = (
        f"{method} {route} {status} team={found.team or '-'} key={found.key or '-'} "
        f"held={found.held} charged={found.charged} {ms:.1f}ms id={request_id}"
    )
    # As log.info(text, extra=...) would, less its search of the stack for the caller's line
    # (always this one): a line per request is worth keeping cheap.
    log.handle(log.makeRecord(log.name, logging.INFO, __file__, _EMIT_LINE, text, (), None, "_emit",
                              {"fields": line}))  # fmt: skip


_EMIT_LINE = _emit.__code__.co_firstlineno


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches rather than a write (a system call)
    per line: lines wait at most `seconds` (a thread of its own writes them); a record at
    WARNING or above is written at once, after the lines before it; so is a batch past
    `limit` characters; and whatever waits is written when logging shuts down (exit,
    SIGTERM). A process killed with SIGKILL may lose its last `seconds` of request lines."""

    def __init__(self, stream: Any = None, seconds: float = 0.05, limit: int = 1 << 16) -> None:
        super().__init__(stream)
        self.seconds, self.limit = seconds, limit
        self._pending: list[str] = []
        self._size = 0
        self._due = threading.Event()
        self._writer_pid: int | None = None  # the process whose writer thread runs

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self.limit:
            try:
                self._write()
            except Exception:
                self.handleError(record)
            return
        if self._writer_pid != os.getpid():  # the first line, or the first since a fork
            self._writer_pid = os.getpid()
            threading.Thread(target=self._writer, name="creditgate-log", daemon=True).start()
        self._due.set()

    def flush(self) -> None:
        with self.lock if self.lock is not None else contextlib.nullcontext():
            self._write()

    def _write(self) -> None:
        try:
            if self._pending:
                self.stream.write("".join(self._pending))
                self._pending.clear()
                self._size = 0
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:
            self._pending.clear()
            self._size = 0
            raise

    def _writer(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self.seconds)
            self._due.clear()
            try:
                self.flush()
            except Exception:  # a closed stream: nothing more to write to
                return


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """uvicorn's logging setup plus creditgate's own loggers, at `level`, as text or JSON."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = orjson.loads(orjson.dumps(LOGGING_CONFIG))  # a deep copy
    formatter: dict[str, Any] = {"()": f"{__name__}.{'Json' if fmt == 'json' else 'Text'}Formatter"}
    config["formatters"]["creditgate"] = formatter
    config["handlers"]["creditgate"] = {
        "class": f"{__name__}.BatchedStreamHandler",
        "formatter": "creditgate",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["creditgate"] = {
        "handlers": ["creditgate"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
