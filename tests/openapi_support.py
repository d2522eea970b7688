"""Every admin answer checked against the OpenAPI document: its status must be one the
operation documents, and its JSON must validate against that status's schema.

`AnswerChecker.hook` is an httpx response hook: tests/conftest.py installs it on every test
client, so each admin answer of the whole suite is checked, and a field, a status or a route
that the document does not describe fails the test that met it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from jsonschema import Draft202012Validator

from creditgate.http import openapi


@dataclass
class AnswerChecker:
    document: dict[str, Any] = field(
        default_factory=lambda: openapi.describe_streams(openapi.build())
    )
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    _routes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    _validators: dict[tuple[str, str, str], Draft202012Validator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in self.document["paths"]:
            if path.startswith("/admin/"):
                pattern = re.sub(r"\\{\w+\\}", "[^/]+", re.escape(path))
                self._routes.append((re.compile(pattern + "$"), path))
        # The most literal first: /admin/teams/{id}/alerts/fired before .../alerts/{rule_id}.
        self._routes.sort(key=lambda r: r[1].count("{"))

    def template(self, path: str) -> str | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                return template
        return None

    def validator(self, method: str, template: str, status: str) -> Draft202012Validator:
        key = (method, template, status)
        if key not in self._validators:
            op = self.document["paths"][template][method]
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            root = {**schema, "components": self.document["components"]}
            self._validators[key] = Draft202012Validator(root)
        return self._validators[key]

    def check(self, method: str, path: str, status: int, body: bytes) -> None:
        template = self.template(path)
        if template is None:
            return  # not an admin route (or no route at all: the router's 404)
        op_method = method.lower()
        if op_method not in self.document["paths"][template]:
            return  # a method the route does not have: the router's 405
        documented = self.document["paths"][template][op_method]["responses"]
        assert str(status) in documented, (
            f"{method} {template} answered {status}, which its OpenAPI operation does not "
            f"list ({sorted(documented)}): {body[:300]!r}"
        )
        if "application/json" not in documented[str(status)].get("content", {}):
            self.seen.add((method.upper(), template, status))
            return  # a stream (the export): its own tests read its rows
        answer = orjson.loads(body)
        errors = sorted(
            self.validator(op_method, template, str(status)).iter_errors(answer),
            key=lambda e: list(e.absolute_path),
        )
        assert not errors, (
            f"{method} {template} {status}: the answer does not match its documented schema: "
            + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
        )
        self.seen.add((method.upper(), template, status))

    def hook(self, response: httpx.Response) -> None:
        request = response.request
        if request.method == "HEAD" or self.template(request.url.path) is None:
            return  # only admin answers are read here: a stream elsewhere is left as it is
        response.read()
        self.check(request.method, request.url.path, response.status_code, response.content)


_CHECKER: AnswerChecker | None = None


def checker() -> AnswerChecker:
    """One for the session: the document is built once."""
    global _CHECKER
    if _CHECKER is None:
        _CHECKER = AnswerChecker()
    return _CHECKER
