"""The admin routes' query parameters, each declared once: a route names those it takes (any
other is a 400) and the OpenAPI document describes them from here. Values are checked where
they are used (a page's limit, a listing's filters, the export's choices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from creditgate.services.pages import DEFAULT_LIMIT, MAX_LIMIT


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any]
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "in": "query"}
        if self.required:
            out["required"] = True
        return {**out, "description": self.description, "schema": self.schema}


LIMIT = Param(
    "limit",
    f"rows per page, 1 to {MAX_LIMIT}",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
)
CURSOR = Param(
    "cursor",
    "the previous page's cursor (opaque); the answer's cursor is null and hasMore false on the "
    "last page",
    {"type": "string"},
)
PAGE = (LIMIT, CURSOR)
BY_KEY = Param(
    "byKey",
    "one row per period and API key (true or false)",
    {"type": "boolean", "default": False},
)
TEAM_ID = Param("teamId", "only this team's", {"type": "string"})
NAME = Param(
    "name",
    "only the team of this name (names are unique): one team or none",
    {"type": "string"},
)

# The ledger listings' filters and the export's choices (http/admin/ledger.py).
FROM = Param(
    "from",
    "from this instant, inclusive (ISO 8601 with a zone, or a date: midnight UTC)",
    {"type": "string", "format": "date-time"},
)
TO = Param(
    "to", "up to this instant, exclusive; after from", {"type": "string", "format": "date-time"}
)
KEY_ID = Param("keyId", "only this API key's rows", {"type": "string"})
KIND = Param(
    "kind",
    "entries: grant, charge, expiry or expiry_reversal; grants: plan, pack, coupon or topup",
    {"type": "string"},
)
STATUS = Param(
    "status",
    "reservations: open, settled, released or expired; jobs: active, cancelling or done",
    {"type": "string"},
)
WHAT = Param(
    "what",
    "entries (every line, in time order) or usage (from the rollups)",
    {"enum": ["entries", "usage"]},
    required=True,
)
BY = Param(
    "by",
    "usage only: per billing period, per period and key, or per period, UTC day and key",
    {"enum": ["period", "key", "day"], "default": "period"},
)
FORMAT = Param(
    "format",
    "CSV (a header row) or NDJSON (a JSON object a line)",
    {"enum": ["csv", "ndjson"], "default": "csv"},
)
