"""Reading and validating JSON bodies: size limit (413), JSON syntax and schema (400)."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import Instant, InvalidInstant, parse_iso
from creditgate.domain.text import NUL
from creditgate.web.errors import HTTPError

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"Request body is too large (limit {limit} bytes).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPError(413, f"Request body is too large (limit {limit} bytes).")
    try:
        data = orjson.loads(bytes(body))
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("Invalid JSON body: " + str(exc).split(":")[0]) from exc
    where = _nul_at(data)
    if where is not None:
        field = ".".join(where) or "body"
        raise InvalidInput(f"Bad Request: {field}: must not contain NUL characters", field=field)
    return data


def _nul_at(data: Any) -> tuple[str, ...] | None:
    """Where the first string holding a NUL character (JSON's \\u0000) is, if any: no text the
    ledger stores may hold one (PostgreSQL refuses it), so a body with one is refused whole.
    Iterative, so a deeply nested body cannot exhaust the stack."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while pending:
        value, where = pending.pop()
        if isinstance(value, str):
            if NUL in value:
                return where
        elif isinstance(value, dict):
            for name in value:
                if NUL in name:
                    return (*where, name)
            pending.extend(((item, (*where, name)) for name, item in reversed(value.items())))
        elif isinstance(value, list):
            pending.extend((value[i], (*where, str(i))) for i in reversed(range(len(value))))
    return None


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            "Bad Request: " + describe(exc),
            details=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from exc


def describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def instant(text: str | None, field: str) -> Instant | None:
    if text is None:
        return None
    try:
        return parse_iso(text)
    except InvalidInstant as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from exc
