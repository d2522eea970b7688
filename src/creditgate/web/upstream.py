"""The upstream Firecrawl: forwarding requests and reading (or streaming) its answers.

Only an allowlist of the client's headers is passed on (never its key, cookies, X-Forwarded-*
or anything hop-by-hop); the upstream sees its own key and X-Forwarded-For set from the peer.
An upstream answer of any status is the upstream's to give: 4xx and 5xx pass through with their
body. creditgate answers 502/504 itself only when there is no answer: refused, dropped or
timed out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import orjson

from creditgate.web import metrics
from creditgate.web.fairshare import Busy, TeamGate
from creditgate.web.metrics import UpstreamError

log = logging.getLogger("creditgate.gateway")

# The client's headers that are the request's content, not the hop's or the client's identity.
FORWARDED_HEADERS = frozenset({"content-type", "accept", "accept-language", "user-agent"})
# Headers of the upstream's answer that belong to its hop, or that are recomputed here (bodies
# are passed on decoded, so their length and encoding change).
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "set-cookie",
        "access-control-allow-origin",  # the edge sets CORS for the gateway's own origin rules
    }
)

TIMED_OUT = "The upstream Firecrawl did not answer in time."
UNREACHABLE = "The upstream Firecrawl could not be reached."
DROPPED = "The upstream Firecrawl dropped its answer."


class UpstreamFailed(Exception):
    """No answer at all: refused, dropped or timed out. `may_still_run`: the request reached
    the upstream, which may still be working on it (it timed out or dropped the connection);
    False when it never got there."""

    def __init__(self, status: int, error: str, may_still_run: bool = False) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.may_still_run = may_still_run


def failure(exc: httpx.HTTPError) -> UpstreamFailed:
    """The answer to give for an upstream call that failed, the failure counted (each call
    site translates a failure once)."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        metrics.upstream_failed(UpstreamError.CONNECT)  # never sent
        return UpstreamFailed(502, UNREACHABLE)
    if isinstance(exc, httpx.TimeoutException):
        metrics.upstream_failed(UpstreamError.TIMEOUT)
        return UpstreamFailed(504, TIMED_OUT, may_still_run=True)
    metrics.upstream_failed(UpstreamError.DROPPED)
    return UpstreamFailed(502, DROPPED, may_still_run=True)


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
    named = {token.strip().lower() for token in response.headers.get("connection", "").split(",")}
    return {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in HOP_HEADERS and k.lower() not in named
    }


def outgoing_headers(incoming: dict[str, str], peer: str | None) -> dict[str, str]:
    out = {k: v for k, v in incoming.items() if k.lower() in FORWARDED_HEADERS}
    if peer:
        out["x-forwarded-for"] = peer
    return out


UPSTREAM_CONNECTIONS = 200  # the process's pool of connections to the upstream
# A call waits at most this long for one of its team's upstream connections (all in use by the
# team's own slow answers), then is a 503 that was never sent.
TEAM_PLACE_WAIT_S = 30.0
TEAM_BUSY = "Too many of your requests are waiting for the upstream. Please retry shortly."


def team_share(connections: int) -> int:
    """A team's default share of the upstream pool: a quarter, at least 4."""
    return max(4, connections // 4)


class _Released(httpx.AsyncByteStream):
    """An answer's body that gives its team's upstream place back when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._release is not None:
                release, self._release = self._release, None
                release()


class Upstream:
    """The upstream's connection pool (`connections`), of which no team holds more than
    `team_connections` at once (a team's calls past it wait for one of its own to end), so one
    team's slow answers cannot take every other team's connections."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_s: float = 120.0,
        connections: int = UPSTREAM_CONNECTIONS,
        team_connections: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.connections = max(connections, 1)
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(
                max_connections=self.connections,
                max_keepalive_connections=min(50, self.connections),
            ),
        )
        share = team_share(self.connections) if team_connections is None else team_connections
        self.shares = TeamGate(min(max(share, 1), self.connections))

    async def open(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        timeout_s: float | None = None,
        team: str | None = None,
    ) -> httpx.Response:
        """Send a request and return once the answer's head arrived (any status).

        `path` is built by the gateway from its route table, never the client's string. The
        caller reads or streams the body and must close the response. With a `team`, the call
        holds one of the team's upstream places until the response is closed.
        """
        if team is None:
            return await self._open(method, path, query, headers, body, timeout_s)
        try:
            await self.shares.acquire(team, TEAM_PLACE_WAIT_S)
        except Busy:  # never sent: nothing can run upstream
            raise UpstreamFailed(503, TEAM_BUSY) from None
        try:
            response = await self._open(method, path, query, headers, body, timeout_s)
        except BaseException:
            self.shares.release(team)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, lambda: self.shares.release(team))
        return response

    async def _open(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        timeout_s: float | None,
    ) -> httpx.Response:
        sent = dict(headers)
        if self.api_key:
            sent["authorization"] = f"Bearer {self.api_key}"
        url = path + (f"?{query}" if query else "")
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else httpx.Timeout(timeout_s)
        request = self.client.build_request(
            method, url, headers=sent, content=body, timeout=timeout
        )
        started = time.perf_counter()
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise failure(exc) from exc
        metrics.upstream_answered(started, response.status_code)
        return response

    async def send(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        timeout_s: float | None = None,
        team: str | None = None,
    ) -> Answer:
        """Forward one request and read the whole answer (for answers creditgate rewrites)."""
        response = await self.open(method, path, query, headers, body, timeout_s, team)
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            raise failure(exc) from exc
        finally:
            await response.aclose()
        return Answer(response.status_code, kept_headers(response), content)

    async def ping(self, timeout_s: float) -> None:
        """Readiness: the upstream answers `GET /` (a self-hosted Firecrawl's hello) with
        anything but a server error within `timeout_s`. A fixed path, without its key: nothing
        a client sent is ever forwarded by it. Raises UpstreamFailed otherwise."""
        try:
            response = await self.client.get("/", timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise failure(exc) from exc
        if response.status_code >= 500:
            raise UpstreamFailed(502, f"the upstream answered {response.status_code}")

    async def close(self) -> None:
        await self.client.aclose()
