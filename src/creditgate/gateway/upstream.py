"""The upstream Firecrawl: forwarding requests and reading its answers."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import orjson

# Headers that belong to one hop, or that httpx recomputes, never forwarded either way.
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
        "authorization",
    }
)


class UpstreamFailed(Exception):
    """No usable answer: refused, dropped, timed out, or a 5xx."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


class Upstream:
    def __init__(self, base_url: str, api_key: str | None, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    def _headers(self, incoming: dict[str, str]) -> dict[str, str]:
        out = {k: v for k, v in incoming.items() if k.lower() not in HOP_HEADERS}
        if self.api_key:
            out["authorization"] = f"Bearer {self.api_key}"
        return out

    async def send(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        """Forward one request; UpstreamFailed for anything that is not a usable answer."""
        url = path + (f"?{query}" if query else "")
        try:
            response = await self.client.request(
                method, url, headers=self._headers(headers), content=body
            )
        except httpx.TimeoutException as exc:
            raise UpstreamFailed(504, "The upstream Firecrawl did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise UpstreamFailed(502, "The upstream Firecrawl could not be reached.") from exc
        if response.status_code >= 500:
            answer = Answer(response.status_code, {}, response.content)
            payload = answer.json()
            error = payload.get("error") if isinstance(payload, dict) else None
            raise UpstreamFailed(
                502, f"The upstream Firecrawl failed: {error or response.status_code}"
            )
        kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS}
        return Answer(response.status_code, kept, response.content)

    async def close(self) -> None:
        await self.client.aclose()
