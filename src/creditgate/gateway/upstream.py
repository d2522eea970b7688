"""The upstream Firecrawl: forwarding requests and reading (or streaming) its answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson

# Headers that belong to one hop, or that httpx recomputes, never forwarded either way. Bodies
# are passed on decoded, so content-encoding goes too.
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

TIMED_OUT = "The upstream Firecrawl did not answer in time."
UNREACHABLE = "The upstream Firecrawl could not be reached."


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


def kept_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS}


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

    async def open(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes | AsyncIterator[bytes],
    ) -> httpx.Response:
        """Send a request (its body may stream) and return once the answer's head arrived.

        UpstreamFailed for anything that is not a usable answer (a 5xx is read and closed).
        The caller reads or streams the body and must close the response.
        """
        url = path + (f"?{query}" if query else "")
        request = self.client.build_request(
            method, url, headers=self._headers(headers), content=body
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamFailed(504, TIMED_OUT) from exc
        except httpx.TransportError as exc:
            raise UpstreamFailed(502, UNREACHABLE) from exc
        if response.status_code >= 500:
            payload: object = None
            try:
                payload = Answer(response.status_code, {}, await response.aread()).json()
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            error = payload.get("error") if isinstance(payload, dict) else None
            raise UpstreamFailed(
                502, f"The upstream Firecrawl failed: {error or response.status_code}"
            )
        return response

    async def send(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        """Forward one request and read the whole answer (for answers creditgate rewrites)."""
        response = await self.open(method, path, query, headers, body)
        try:
            content = await response.aread()
        except httpx.TimeoutException as exc:
            raise UpstreamFailed(504, TIMED_OUT) from exc
        except httpx.TransportError as exc:
            raise UpstreamFailed(502, "The upstream Firecrawl dropped its answer.") from exc
        finally:
            await response.aclose()
        return Answer(response.status_code, kept_headers(response), content)

    async def close(self) -> None:
        await self.client.aclose()
