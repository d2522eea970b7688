"""Firecrawl envelopes, rendered with orjson."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(status: int = 200, headers: dict[str, str] | None = None, **fields: Any) -> JSON:
    return JSON({"success": True, **fields}, status_code=status, headers=headers)


def fail(
    status: int, error: str, headers: Mapping[str, str] | None = None, /, **extra: Any
) -> JSON:
    return JSON({"success": False, "error": error, **extra}, status_code=status, headers=headers)
