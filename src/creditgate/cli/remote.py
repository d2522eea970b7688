"""A running creditgate's admin API, as the CLI calls it (--server): each answer's `data`, or a
refusal carrying the server's own message and status (printed as a local refusal is)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from creditgate.cli.output import Refused

TIMEOUT_SECONDS = 30.0


class Remote:
    def __init__(self, server: str, token: str | None) -> None:
        self.server = server
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self._client = httpx.Client(base_url=server, headers=headers, timeout=TIMEOUT_SECONDS)
        self.replayed = False  # the last answer was an idempotent replay

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, params=query or None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.call("PATCH", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def every(self, path: str, **query: Any) -> list[dict[str, Any]]:
        """Every row of a listing, page by page (100 at a time, the most a page holds)."""
        return [row for page in self.pages(path, **query) for row in page]

    def pages(self, path: str, **query: Any) -> Iterator[list[dict[str, Any]]]:
        cursor: str | None = None
        while True:
            params = {**query, "limit": 100, **({"cursor": cursor} if cursor else {})}
            answer = self._send("GET", path, params=params)
            yield answer["data"]
            cursor = answer.get("cursor")
            if not answer.get("hasMore") or cursor is None:
                return

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return self._send(method, path, body, params)["data"]

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:  # refused, unknown host, timeout, TLS...
            reason = str(exc) or type(exc).__name__
            raise Refused(
                f"cannot reach the creditgate server at {self.server}: {reason}", 503
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 401:
            raise Refused(
                f"the server at {self.server} refused the admin token (401): set "
                "CREDITGATE_ADMIN_TOKEN or give --token-file with the server's admin token",
                401,
            )
        if not isinstance(answer, dict) or "success" not in answer:
            raise Refused(
                f"the server at {self.server} did not answer as creditgate does "
                f"(HTTP {response.status_code} on {method} {path}): check the URL",
                502,
            )
        if not response.is_success or answer.get("success") is not True:
            details = {k: v for k, v in answer.items() if k not in ("success", "error")}
            raise Refused(str(answer.get("error")), response.status_code, details)
        self.replayed = response.headers.get("Idempotent-Replayed") == "true"
        return answer

    def close(self) -> None:
        self._client.close()
