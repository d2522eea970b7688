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
from dataclasses import dataclass

import orjson

from creditgate.web import http1, metrics
from creditgate.web.fairshare import Busy, TeamGate
from creditgate.web.metrics import UpstreamError

log = logging.getLogger("creditgate.gateway")

# An answer whose head arrived (web/http1.py), and what its body's reading raises when it breaks
# off: callers translate that with `failure`, so no client's types leave this boundary.
Response = http1.Response
ReadFailed = http1.ClientError

# The client's headers that are the request's content, not the hop's or the client's identity.
FORWARDED_HEADERS = frozenset({"content-type", "accept", "accept-language", "user-agent"})
# Headers of the upstream's answer that belong to its hop, or that are recomputed here (the
# length: bodies are relayed in chunks). A gzip or deflate body is passed on decoded, its
# Content-Encoding dropped by web/http1.py; any other encoding is passed on with its header.
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
        "set-cookie",
        # The gateway's own: CORS by its origin rules (edge.py), the request id it logged
        # (an upstream's would come first and name a request the client never made).
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-expose-headers",
        "access-control-max-age",
        "x-request-id",
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


def failure(exc: http1.ClientError) -> UpstreamFailed:
    """The answer to give for an upstream call that failed, the failure counted (each call
    site translates a failure once)."""
    if isinstance(exc, http1.ConnectFailed | http1.ConnectTimeout | http1.PoolTimeout):
        metrics.upstream_failed(UpstreamError.CONNECT)  # never sent
        return UpstreamFailed(502, UNREACHABLE)
    if isinstance(exc, http1.Timeout):
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


def kept_headers(response: Response) -> dict[str, str]:
    """The answer's headers to pass on, names lower-cased, repeated ones joined by ", "."""
    named = {
        token.strip()
        for name, value in response.headers
        if name == b"connection"
        for token in value.decode("latin-1").lower().split(",")
    }
    kept: dict[str, str] = {}
    for raw_name, raw_value in response.headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name in HOP_HEADERS or name in named:
            continue
        kept[name] = f"{kept[name]}, {value}" if name in kept else value
    return kept


def outgoing_headers(incoming: dict[str, str], peer: str | None) -> dict[str, str]:
    out = {k: v for k, v in incoming.items() if k.lower() in FORWARDED_HEADERS}
    if peer:
        out["x-forwarded-for"] = peer
    return out


UPSTREAM_CONNECTIONS = 200  # the process's pool of connections to the upstream
KEEPALIVE_CONNECTIONS = 50  # of which kept open while idle
CONNECT_TIMEOUT_S = 5.0
# A call waits at most this long for one of its team's upstream connections (all in use by the
# team's own slow answers), then is a 503 that was never sent.
TEAM_PLACE_WAIT_S = 30.0
TEAM_BUSY = "Too many of your requests are waiting for the upstream. Please retry shortly."


def team_share(connections: int) -> int:
    """A team's default share of the upstream pool: a quarter, at least 4."""
    return max(4, connections // 4)


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
        self.client = http1.Pool(
            self.base_url,
            connections=self.connections,
            keepalive=min(KEEPALIVE_CONNECTIONS, self.connections),
            timeouts=http1.Timeouts(CONNECT_TIMEOUT_S, timeout_s, timeout_s, timeout_s),
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
    ) -> Response:
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
        response.on_close(lambda: self.shares.release(team))
        return response

    async def _open(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        timeout_s: float | None,
    ) -> Response:
        sent = dict(headers)
        if self.api_key:
            sent["authorization"] = f"Bearer {self.api_key}"
        bounds = None if timeout_s is None else http1.Timeouts.all(timeout_s)
        started = time.perf_counter()
        try:
            response = await self.client.request(method, path, query, sent, body, bounds)
        except http1.ClientError as exc:
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
        except http1.ClientError as exc:
            raise failure(exc) from exc
        finally:
            await response.aclose()
        return Answer(response.status_code, kept_headers(response), content)

    async def ping(self, timeout_s: float) -> None:
        """Readiness: the upstream answers `GET /` (a self-hosted Firecrawl's hello) with
        anything but a server error within `timeout_s`. A fixed path, without its key: nothing
        a client sent is ever forwarded by it. Raises UpstreamFailed otherwise."""
        try:
            response = await self.client.request(
                "GET", "/", "", {}, b"", http1.Timeouts.all(timeout_s)
            )
            try:
                await response.aread()
            finally:
                await response.aclose()
        except http1.ClientError as exc:
            raise failure(exc) from exc
        if response.status_code >= 500:
            raise UpstreamFailed(502, f"the upstream answered {response.status_code}")

    async def close(self) -> None:
        await self.client.close()
