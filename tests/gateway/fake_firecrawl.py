"""A small Firecrawl that answers as a self-hosted one does (firecrawl-api.md §6, §7).

It routes like Firecrawl's Express router: paths match case-insensitively, a trailing slash is
ignored, parameters are percent-decoded, and anything unknown is Express's 404. Like Firecrawl's
`cors()` middleware it answers every preflight with a 204 and puts
`Access-Control-Allow-Origin: *` on every answer. Every request it
receives, matched or not, is recorded with its exact raw path (`state.paths`) and its headers
(`state.headers`), so a test can see what reached it. Besides the `/v1` and `/v2` routes of §7 it
serves Firecrawl's internals (`/`, `/test`, `/is-production`, `/serverHealthCheck`, the job-queue
board under `/admin/<key>/queues`): none of them may ever be reached through the gateway.

Targets steer it. A scrape URL containing `fail` makes every engine fail (500 with
`SCRAPE_ALL_ENGINES_FAILED`); `slow` answers after two seconds (past the gateway's timeout in
tests); `wait` after half a second; `drop` closes the connection without an answer; `truncate`
sends a 200 whose body stops mid-JSON; `liar` reports `creditsUsed: -5` (`liar-huge`: 10**20,
`liar-billion`: 10**9, `liar-many`: 1,001 documents of 10**9 each);
`missing` is a 404 page (still charged); `pdf` is a three-page PDF; `big` is a 4 MiB answer sent
in chunks. A crawl or batch URL containing `drop` drops the connection after the answer's head;
`fail` is a 500 `CRAWL_FAILED`.

Pages are billed as Firecrawl's billing code bills them (`page_cost`, firecrawl-api.md §3, both
builds' items at once), independently of creditgate's price table. Crawls and batch scrapes gain
`pages_per_poll` pages per status poll (each billed at its page cost; `creditsUsed` the sum), page
through `next`, and are as long as the site (`unlimited_total` pages) or their `limit` if less (a
batch: its URLs); a crawl whose URL contains `liar` reports `creditsUsed: 10**9`. llms.txt and
deep research report no credit figure, as Firecrawl's do: llms.txt lists `LLMSTXT_URLS` pages
(at most `maxUrls`) in its text, deep research analyses `DEEP_RESEARCH_URLS` sources; each is
billed by §3's rule. A cancelled job reads "cancelled" at once, but its pages in flight still
finish: `after_cancel` more pages, one per status poll, then it stops moving. Its other pages
fail at once, as the 2025-08 build's do (seen on the real build, tests/upstream): they leave
its `total` (which then counts what is done and what is still running) and its errors route
lists them ("Parent crawl/batch scrape was cancelled"); so once its pages in flight have ended,
`total == completed`.

With `state.workers` set, pages take real time instead: every page (a scrape's, or one of a
crawl's or batch's) runs on one of that many workers for `page_seconds`, shared by everyone, as
a self-hosted Firecrawl's worker pool is; a crawl or batch runs at most its `maxConcurrency`
pages at once (all the workers if it names none), its status reports what has finished, and a
cancel lets its pages in flight finish. The pool records, per team (the target URL's host),
the pages in flight, their peak, and how long each page waited for a worker
(`state.pool`).

`state.status_seconds` makes every crawl and batch status read answer that much later (an
upstream slow to answer status).

`state.billed` is what this Firecrawl bills for each piece of work (a job's id, a scrape's id, a
search's or map's own id): the figure it reports, or where it reports none (map, v1 search) what
it bills all the same (1 per map, 1 per search result).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

CRAWL_LIKE = ("crawl", "batch_scrape")
LLMSTXT_URLS = 4  # pages an llms.txt generation finds and lists
DEEP_RESEARCH_URLS = 6  # sources a deep research analyses
EXTRACT_TOKENS = 45  # 3 credits at 15 tokens a credit


@dataclass
class Crawl:
    """An upstream job: a crawl or batch scrape (pages), or an extract / llmstxt / deep research
    (one step)."""

    total: int
    completed: int = 0
    status: str = "scraping"
    kind: str = "crawl"  # crawl, batch_scrape, extract, llmstxt, deep_research
    url: str = ""
    in_flight: int = 0  # pages still to finish after a cancel
    done_at_cancel: int | None = None  # pages completed when the cancel arrived
    failed: int = 0  # pages that failed (a cancelled job's pages that never ran): not in total
    max_concurrency: int | None = None  # as the request asked
    page_price: int = 1  # what each of its pages is billed (page_cost of its options)
    max_urls: int | None = None  # llms.txt, deep research: the request's maxUrls
    liar: bool = False  # reports a billion credits


def team_of(url: str) -> str:
    """The team a page is for, as the tests name their targets: the URL's host."""
    return urlsplit(url).hostname or ""


@dataclass
class WorkerPool:
    """The upstream's workers, shared by every team, and what they were busy with."""

    size: int
    page_seconds: float
    busy: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    total_busy: int = 0
    total_peak: int = 0
    _free: asyncio.Semaphore | None = None  # made in the server's own event loop

    async def scrape(self, team: str) -> None:
        """One page: wait for a worker, then take `page_seconds` on it."""
        if self._free is None:
            self._free = asyncio.Semaphore(self.size)
        asked = time.monotonic()
        async with self._free:
            self.waits[team].append(time.monotonic() - asked)
            self.busy[team] += 1
            self.total_busy += 1
            self.peak[team] = max(self.peak[team], self.busy[team])
            self.total_peak = max(self.total_peak, self.total_busy)
            try:
                await asyncio.sleep(self.page_seconds)
            finally:
                self.busy[team] -= 1
                self.total_busy -= 1


@dataclass
class FakeState:
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    crawls: dict[str, Crawl] = field(default_factory=dict)
    page_size: int = 2
    base_url: str = ""
    growing_reads: int = 0
    inflight: int = 0
    max_inflight: int = 0
    # Every request received, matched or not: (method, raw path exactly as received).
    paths: list[tuple[str, str]] = field(default_factory=list)
    # The headers of every request received, in order, names lower-cased.
    headers: list[list[tuple[str, str]]] = field(default_factory=list)
    after_cancel: int = 2
    unlimited_total: int = 40
    pages_per_poll: int = 1
    scrapes: dict[str, dict[str, Any]] = field(default_factory=dict)
    billed: dict[str, int] = field(default_factory=dict)
    pool: WorkerPool | None = None  # pages take real time on shared workers (see above)
    # False: the 2025-08 build's bug, a v2 crawl with `maxConcurrency` fails with a 500 in
    # self-host mode before anything is saved (controllers/v2/crawl.ts:142).
    v2_crawl_takes_concurrency: bool = True
    running: set[asyncio.Task[None]] = field(default_factory=set)
    # A crawl or batch status read answers after this many seconds (a slow upstream's status).
    status_seconds: float = 0.0
    status_reads: int = 0  # crawl and batch status reads being answered now
    status_peak: int = 0  # and the most at once

    def use_workers(self, size: int, page_seconds: float) -> WorkerPool:
        self.pool = WorkerPool(size, page_seconds)
        return self.pool

    def headers_named(self, name: str) -> list[str]:
        """Every value of one header the fake received, across all requests."""
        return [v for received in self.headers for k, v in received if k == name.lower()]


def document(url: str, credits: int, status: int = 200) -> dict[str, Any]:
    return {
        "markdown": f"# {url}",
        "metadata": {
            "title": url,
            "sourceURL": url,
            "url": url,
            "statusCode": status,
            "contentType": "text/html",
            "proxyUsed": "basic",
            "scrapeId": str(uuid.uuid4()),
            "creditsUsed": credits,
        },
    }


def page_cost(url: str, options: dict[str, Any]) -> int:
    """What Firecrawl bills for one page scraped with these options (firecrawl-api.md §3,
    `calculateCreditsToBeBilled`, with the later releases' items too): json (or a
    changeTracking format in json mode) makes the page 5, deterministicJson 10; then +1 for
    zero data retention, +1 per PDF page after the first (a `pdf` URL has three), +4 for a
    stealth proxy (asked for, or `auto` at a URL containing `escalates`), +4 for each of the
    question/query, highlights, audio and video formats, +4 for redactPII, +4 for lockdown."""
    formats = [f for f in options.get("formats") or [] if isinstance(f, str | dict)]
    names = {f if isinstance(f, str) else f.get("type") for f in formats}
    tracking = next(
        (f for f in formats if isinstance(f, dict) and f.get("type") == "changeTracking"), {}
    )
    legacy = options.get("changeTrackingOptions")
    modes = (
        tracking.get("modes") or (legacy.get("modes") if isinstance(legacy, dict) else None) or []
    )
    json_mode = "changeTracking" in names and "json" in modes
    cost = 5 if names & {"json", "extract"} or json_mode else 1
    if options.get("deterministicJson"):
        cost = 10
    if options.get("zeroDataRetention") is True:
        cost += 1
    if "pdf" in url and options.get("parsePDF") is not False:
        cost += 2
    escalated = "escalates" in url and options.get("proxy", "auto") == "auto"
    if options.get("proxy") == "stealth" or escalated:  # `escalates`: auto ends on stealth
        cost += 4
    cost += 4 * len(names & {"question", "query", "highlights", "audio", "video"})
    cost += 4 * sum(1 for flag in ("redactPII", "lockdown") if options.get(flag))
    return cost


def crawl_page_options(body: dict[str, Any]) -> dict[str, Any]:
    """A crawl's pages are scraped with its scrapeOptions (and its zeroDataRetention)."""
    nested = body.get("scrapeOptions")
    options = dict(nested) if isinstance(nested, dict) else {}
    if body.get("zeroDataRetention") is True:
        options["zeroDataRetention"] = True
    return options


# --- answers that are not answers: a dropped connection, a body cut short -------------------


class Dropped(Response):
    """The connection closes before any byte of an answer.

    uvicorn marks the response started before it validates the head, so a head it refuses
    writes nothing; the exception that follows makes it close the connection.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(Exception):  # refused on purpose: nothing was written
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"\n")]})
        raise ConnectionResetError("dropped")


class CutShort(Response):
    """The answer's head, then `keep` bytes of its body, then the connection closes."""

    def __init__(self, payload: dict[str, Any], keep: int | None = None) -> None:
        super().__init__(status_code=200)
        self.raw = json.dumps(payload).encode()
        self.keep = len(self.raw) // 2 if keep is None else keep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self.raw)).encode()),
                ],
            }
        )
        if self.keep:
            await send(
                {"type": "http.response.body", "body": self.raw[: self.keep], "more_body": True}
            )
        raise ConnectionResetError("cut short")


# --- routing like Express -------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class FakeRoute:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]


def _compile(template: str) -> re.Pattern[str]:
    """`/v2/crawl/{job_id}` as Express matches it: case-insensitive, one segment a parameter;
    `{rest:path}` takes the rest of the path."""
    out = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            name, _, kind = part[1:-1].partition(":")
            out += f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)"
        else:
            out += re.escape(part)
    return re.compile(f"^{out}$", re.IGNORECASE)


PREFLIGHT = {
    "access-control-allow-methods": "GET,HEAD,PUT,PATCH,POST,DELETE",
    "vary": "Access-Control-Request-Headers",
}


def _with_cors(send: Send) -> Send:
    """Firecrawl runs the `cors()` middleware: `Access-Control-Allow-Origin: *` on every answer."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            message = {**message, "headers": [(b"access-control-allow-origin", b"*"), *headers]}
        await send(message)

    return wrapped


class ExpressRouter:
    """A pure ASGI app: records every request, then dispatches the first matching route."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.routes: list[FakeRoute] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        self.routes.append(FakeRoute(method, template, handler, _compile(template)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw.decode("latin-1")
        method: str = scope["method"]
        self.state.paths.append((method, raw_path))
        self.state.headers.append(
            [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        )
        send = _with_cors(send)
        if method == "OPTIONS":  # Firecrawl's cors(): every preflight is a 204
            await Response(status_code=204, headers=PREFLIGHT)(scope, receive, send)
            return
        matched = raw_path[:-1] if len(raw_path) > 1 and raw_path.endswith("/") else raw_path
        for route in self.routes:
            found = route.pattern.match(matched)
            if found and route.method == method:
                scope["path_params"] = {k: unquote(v) for k, v in found.groupdict().items()}
                scope["route_template"] = route.template
                response = await route.handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        text = f"<pre>Cannot {method} {raw_path}</pre>"
        await PlainTextResponse(text, status_code=404, media_type="text/html")(scope, receive, send)


def _limit(body: dict[str, Any]) -> int | str | None:
    """A crawl's `limit` as Firecrawl reads it: absent (None), a count, or "invalid"."""
    if "limit" not in body or body["limit"] is None:
        return None
    value = body["limit"]
    if isinstance(value, bool):
        return "invalid"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else "invalid"  # 0 is taken


def _max_concurrency(body: dict[str, Any]) -> int | None:
    value = body.get("maxConcurrency")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": "Bad Request", "details": [{"message": message}]},
        status_code=400,
    )


def _not_found() -> JSONResponse:
    return JSONResponse({"success": False, "error": "Job not found"}, status_code=404)


def make_app(state: FakeState) -> ExpressRouter:
    async def record(request: Request) -> dict[str, Any]:
        parsed: object = {}
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                parsed = json.loads(await request.body() or b"{}")
            except ValueError:
                parsed = {}
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        state.requests.append((request.method, request.url.path, body))
        state.auth.append(request.headers.get("authorization"))
        return body

    def version(request: Request) -> str:
        template: str = request.scope["route_template"]
        return template.split("/")[1]

    # --- synchronous, metered ---------------------------------------------------------------

    async def scrape(request: Request) -> Response:
        body = await record(request)
        url = str(body.get("url", ""))
        if "fail" in url:
            return JSONResponse(
                {
                    "success": False,
                    "code": "SCRAPE_ALL_ENGINES_FAILED",
                    "error": "All scraping engines failed!",
                },
                status_code=500,
            )
        if state.pool is not None and url.startswith("http"):
            await state.pool.scrape(team_of(url))
        if "slow" in url:
            await asyncio.sleep(2)
        if "wait" in url:
            state.inflight += 1
            state.max_inflight = max(state.max_inflight, state.inflight)
            await asyncio.sleep(0.5)
            state.inflight -= 1
        if "drop" in url:
            return Dropped()
        if not url.startswith("http"):
            return _bad_request("Invalid URL")
        status = 404 if "missing" in url else 200
        doc = document(url, page_cost(url, body), status)
        if "truncate" in url:  # billed by nobody: the answer never arrives whole
            return CutShort({"success": True, "data": doc})
        if "liar-many" in url:  # 1,001 documents claiming a billion credits each
            many = [document(f"{url}/{i}", 10**9) for i in range(1001)]
            state.billed[doc["metadata"]["scrapeId"]] = page_cost(url, body)
            return JSONResponse({"success": True, "data": many})
        if "liar" in url:
            lies = {"liar-huge": 10**20, "liar-billion": 10**9}
            figure = next((v for k, v in lies.items() if k in url), -5)
            doc["metadata"]["creditsUsed"] = figure
            state.billed[doc["metadata"]["scrapeId"]] = page_cost(url, body)
        else:
            state.billed[doc["metadata"]["scrapeId"]] = doc["metadata"]["creditsUsed"]
        state.scrapes[doc["metadata"]["scrapeId"]] = doc
        if "big" in url:  # a large answer, sent in chunks
            doc["markdown"] = "x" * (4 << 20)
            raw = json.dumps({"success": True, "data": doc}).encode()

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(raw), 64 << 10):
                    yield raw[start : start + (64 << 10)]
                    await asyncio.sleep(0.001)

            return StreamingResponse(chunks(), media_type="application/json")
        return JSONResponse({"success": True, "data": doc})

    async def map_(request: Request) -> Response:
        body = await record(request)
        state.billed[str(uuid.uuid4())] = 1  # map reports nothing and costs 1
        return JSONResponse(
            {
                "success": True,
                "links": [{"url": f"{body.get('url')}/a"}, {"url": f"{body.get('url')}/b"}],
            }
        )

    def results(body: dict[str, Any]) -> list[dict[str, Any]]:
        limit = body.get("limit")
        count = limit if isinstance(limit, int) and not isinstance(limit, bool) else 3
        count = max(1, min(count, 20))
        return [
            {"url": f"https://r{i}.example", "title": f"r{i}", "description": f"result {i}"}
            for i in range(count)
        ]

    async def search_v2(request: Request) -> Response:
        """v2 search reports its cost: 1 credit per result (Firecrawl 2025-08), `limit` results
        from each source asked for (web, news, images)."""
        body = await record(request)
        found = results(body)
        asked = body.get("sources") or ["web"]
        kinds = {k if isinstance(k, str) else k.get("type") for k in asked}
        data = {str(kind): found for kind in kinds}
        billed = len(found) * len(data)
        state.billed[str(uuid.uuid4())] = billed
        return JSONResponse({"success": True, "data": data, "creditsUsed": billed})

    async def search_v1(request: Request) -> Response:
        """v1 search (and x402 search) reports nothing, but is billed as v2: 1 per result."""
        found = results(await record(request))
        state.billed[str(uuid.uuid4())] = len(found)
        return JSONResponse({"success": True, "data": found})

    # --- jobs -------------------------------------------------------------------------------

    def job_url(request: Request, path: str, job_id: str) -> str:
        return f"{state.base_url}/{version(request)}/{path}/{job_id}"

    async def start_crawl(request: Request) -> Response:
        body = await record(request)
        url = str(body.get("url", ""))
        limit = _limit(body)
        if limit == "invalid":
            return _bad_request("limit must be a positive integer")
        if "fail" in url:
            return JSONResponse(
                {"success": False, "code": "CRAWL_FAILED", "error": "The crawl failed to start."},
                status_code=500,
            )
        v2 = request.url.path.lower().startswith("/v2/")
        if v2 and "maxConcurrency" in body and not state.v2_crawl_takes_concurrency:
            return JSONResponse(  # Express's error handler, as the 2025-08 build answers it
                {
                    "success": False,
                    "code": "UNKNOWN_ERROR",
                    "error": "An unexpected error occurred. Please contact help@firecrawl.com "
                    "for help. Your exception ID is 0",
                },
                status_code=500,
            )
        job_id = str(uuid.uuid4())
        answer = {"success": True, "id": job_id, "url": job_url(request, "crawl", job_id)}
        if (urlsplit(url).hostname or "").endswith(".invalid"):
            # a name that cannot resolve: the crawl fails at its kickoff, having scraped nothing
            state.crawls[job_id] = Crawl(0, kind="crawl", url=url, status="failed")
            state.billed[job_id] = 0
            return JSONResponse(answer)
        if "drop" in url:
            return CutShort(answer, keep=0)
        # The site has `unlimited_total` pages: a crawl takes them all, or `limit` of them.
        total = state.unlimited_total if limit is None else min(int(limit), state.unlimited_total)
        crawl = Crawl(
            total,
            kind="crawl",
            url=url,
            max_concurrency=_max_concurrency(body),
            page_price=page_cost(url, crawl_page_options(body)),
            liar="liar" in url,
        )
        state.crawls[job_id] = crawl
        state.billed[job_id] = 0
        run_pages(crawl, [url] * total)
        return JSONResponse(answer)

    async def start_batch(request: Request) -> Response:
        body = await record(request)
        urls = body.get("urls")
        if not (isinstance(urls, list) and urls and all(isinstance(u, str) for u in urls)):
            return _bad_request("urls must be a non-empty list of URLs")
        if any("fail" in u for u in urls):
            return JSONResponse(
                {"success": False, "code": "CRAWL_FAILED", "error": "The batch failed to start."},
                status_code=500,
            )
        job_id = str(uuid.uuid4())
        answer = {
            "success": True,
            "id": job_id,
            "url": job_url(request, "batch/scrape", job_id),
            "invalidURLs": [],
        }
        if any("drop" in u for u in urls):
            return CutShort(answer, keep=0)
        batch = Crawl(
            len(urls),
            kind="batch_scrape",
            url=urls[0],
            max_concurrency=_max_concurrency(body),
            page_price=page_cost(urls[0], body),
        )
        state.crawls[job_id] = batch
        state.billed[job_id] = 0
        run_pages(batch, urls)
        return JSONResponse(answer)

    def start_task(kind: str) -> Handler:
        async def start(request: Request) -> Response:
            body = await record(request)
            job_id = str(uuid.uuid4())
            urls = body.get("urls")
            url = body.get("url") or (urls[0] if isinstance(urls, list) and urls else "")
            max_urls = body.get("maxUrls")
            max_urls = max_urls if isinstance(max_urls, int) and max_urls > 0 else None
            state.crawls[job_id] = Crawl(1, kind=kind, url=str(url), max_urls=max_urls)
            state.billed[job_id] = 0
            extra: dict[str, Any] = {"urlTrace": []} if kind == "extract" else {}
            return JSONResponse({"success": True, "id": job_id, **extra})

        return start

    def run_pages(crawl: Crawl, urls: list[str]) -> None:
        """With a worker pool, the job's pages run in the background: at most its
        maxConcurrency at once (else as many as the workers take), each on a worker."""
        pool = state.pool
        if pool is None:
            return
        own = asyncio.Semaphore(crawl.max_concurrency or pool.size)

        async def page(url: str) -> None:
            async with own:
                if crawl.status == "cancelled":
                    crawl.failed += 1  # not started before the cancel: fails, never runs
                    return
                await pool.scrape(team_of(url))
                crawl.completed += 1

        async def run() -> None:
            await asyncio.gather(*(page(u) for u in urls))
            if crawl.status == "scraping":
                crawl.status = "completed"

        task = asyncio.create_task(run())
        state.running.add(task)
        task.add_done_callback(state.running.discard)

    def advance(crawl: Crawl) -> None:
        """One status poll's worth of progress (with a worker pool, the pages make it)."""
        if state.pool is not None:
            return
        if crawl.status == "scraping":
            crawl.completed = min(crawl.completed + state.pages_per_poll, crawl.total)
            if crawl.completed == crawl.total:
                crawl.status = "completed"
        elif crawl.status == "cancelled" and crawl.in_flight > 0:
            crawl.completed += 1
            crawl.in_flight -= 1

    def lookup(request: Request, kinds: tuple[str, ...]) -> Crawl | None:
        crawl = state.crawls.get(request.path_params["job_id"])
        return crawl if crawl is not None and crawl.kind in kinds else None

    async def job_status(request: Request) -> Response:
        await record(request)
        state.status_reads += 1
        state.status_peak = max(state.status_peak, state.status_reads)
        try:
            await asyncio.sleep(state.status_seconds)
        finally:
            state.status_reads -= 1
        job_id = request.path_params["job_id"]
        crawl = lookup(request, CRAWL_LIKE)
        if crawl is None:
            return _not_found()
        advance(crawl)
        used = crawl.completed * crawl.page_price
        state.billed[job_id] = used
        skip = int(request.query_params.get("skip", "0"))
        docs = [
            document(f"https://site.example/p{i}", crawl.page_price) for i in range(crawl.completed)
        ]
        page = docs[skip : skip + state.page_size]
        more = skip + state.page_size < len(docs)
        canonical = request.scope["route_template"].replace("{job_id}", job_id)
        next_url = f"{state.base_url}{canonical}?skip={skip + state.page_size}"
        return JSONResponse(
            {
                "success": True,
                "status": crawl.status,
                "completed": crawl.completed,
                "total": crawl.total - crawl.failed,
                **figure(crawl, used),
                "expiresAt": "2030-01-01T00:00:00.000Z",
                "next": next_url if more else None,
                "data": page,
            }
        )

    def figure(crawl: Crawl, used: int) -> dict[str, Any]:
        """A job status's creditsUsed: what it billed, or what a quirky upstream sends in its
        place (a crawl URL containing `liar`: a billion; `fraction`, `text`, `nofigure`: a
        fraction, a string, nothing)."""
        if crawl.liar:
            return {"creditsUsed": 10**9}
        quirks: dict[str, dict[str, Any]] = {
            "fraction": {"creditsUsed": used + 0.5},
            "text": {"creditsUsed": str(used)},
            "nofigure": {},
        }
        return next((v for k, v in quirks.items() if k in crawl.url), {"creditsUsed": used})

    async def job_errors(request: Request) -> Response:
        await record(request)
        crawl = lookup(request, CRAWL_LIKE)
        if crawl is None:
            return _not_found()
        failed = [
            {
                "id": f"{request.path_params['job_id']}-{i}",
                "url": f"https://site.example/failed{i}",
                "error": "(Internal server error) - Parent crawl/batch scrape was cancelled",
            }
            for i in range(crawl.failed)
        ]
        return JSONResponse({"errors": failed, "robotsBlocked": []})

    async def cancel(request: Request) -> Response:
        await record(request)
        crawl = lookup(request, CRAWL_LIKE)
        if crawl is None:
            return _not_found()
        if crawl.status == "completed":
            return JSONResponse(
                {"success": False, "error": "The job has already completed."}, status_code=409
            )
        if crawl.status == "scraping":
            crawl.done_at_cancel = crawl.completed
            crawl.in_flight = min(state.after_cancel, crawl.total - crawl.completed)
            if state.pool is None:  # the pages not running fail at once (with a pool: when
                crawl.failed = crawl.total - crawl.completed - crawl.in_flight  # taken)
        crawl.status = "cancelled"
        return JSONResponse({"success": True, "status": "cancelled"})

    async def extract_status(request: Request) -> Response:
        await record(request)
        job_id = request.path_params["job_id"]
        task = lookup(request, ("extract",))
        if task is None:
            return _not_found()
        advance(task)
        state.billed[job_id] = -(-EXTRACT_TOKENS // 15)
        return JSONResponse(
            {
                "success": True,
                "status": task.status,
                "data": {"answer": 42},
                "expiresAt": "2030-01-01T00:00:00.000Z",
                "tokensUsed": EXTRACT_TOKENS,
            }
        )

    def task_status(kind: str) -> Handler:
        """llms.txt and deep research report no credit figure, as Firecrawl's do; they are
        billed by §3's rule once completed: the URLs listed, or analysed, at most maxUrls."""

        async def status(request: Request) -> Response:
            await record(request)
            job_id = request.path_params["job_id"]
            task = lookup(request, (kind,))
            if task is None:
                return _not_found()
            advance(task)
            default = 10 if kind == "llmstxt" else 20
            found = LLMSTXT_URLS if kind == "llmstxt" else DEEP_RESEARCH_URLS
            urls = [
                f"https://site.example/p{i}" for i in range(min(found, task.max_urls or default))
            ]
            done = task.status == "completed"
            state.billed[job_id] = len(urls) if done else 0
            answer: dict[str, Any] = {
                "success": True,
                "status": task.status,
                "expiresAt": "2030-01-01T00:00:00.000Z",
            }
            if kind == "llmstxt":
                lines = [f"- [page {i}]({u}): about page {i}" for i, u in enumerate(urls)]
                text = f"# {task.url}\n\n> a site\n\n" + "\n".join(lines) if done else ""
                answer["data"] = {"llmstxt": text}
            else:
                sources = [{"url": u, "title": u} for u in urls] if done else []
                answer["data"] = {"finalAnalysis": "42" if done else "", "sources": sources}
                answer.update(sources=sources, totalUrls=len(sources))
            return JSONResponse(answer)

        return status

    async def scrape_status(request: Request) -> Response:
        await record(request)
        doc = state.scrapes.get(request.path_params["job_id"])
        if doc is None:
            return _not_found()
        return JSONResponse({"success": True, "data": doc})

    async def check_job_status(request: Request) -> Response:
        await record(request)
        job_id = request.path_params["job_id"]
        if job_id in state.scrapes:
            return JSONResponse({"success": True, "status": "completed", "id": job_id})
        crawl = state.crawls.get(job_id)
        if crawl is None:
            return _not_found()
        return JSONResponse({"success": True, "status": crawl.status, "id": job_id})

    async def every_crawl(request: Request) -> Response:
        """The upstream is shared: it lists every team's jobs."""
        await record(request)
        return JSONResponse(
            {
                "success": True,
                "crawls": [
                    {"id": job_id, "teamId": "upstream", "url": crawl.url, "options": {}}
                    for job_id, crawl in state.crawls.items()
                    if crawl.kind in CRAWL_LIKE
                ],
            }
        )

    # --- free, health, internals ------------------------------------------------------------

    async def crawl_preview(request: Request) -> Response:
        body = await record(request)
        return JSONResponse({"success": True, "data": {"url": body.get("url"), "links": []}})

    async def key_auth(request: Request) -> Response:
        await record(request)
        return JSONResponse({"success": True})

    async def params_preview(request: Request) -> Response:
        body = await record(request)
        return JSONResponse(
            {"success": True, "data": {"url": body.get("url"), "limit": 10000, "maxDepth": 10}}
        )

    def fixed(payload: dict[str, Any] | str) -> Handler:
        async def answer(request: Request) -> Response:
            await record(request)
            if isinstance(payload, str):
                return PlainTextResponse(payload)
            return JSONResponse(payload)

        return answer

    # --- routes creditgate does not know (earlier tests) ------------------------------------

    async def stream(request: Request) -> Response:
        await record(request)

        async def lines() -> AsyncIterator[bytes]:
            for n in range(100):
                yield f"line {n}\n".encode()

        return StreamingResponse(lines(), media_type="text/plain")

    async def growing(request: Request) -> Response:
        """An unknown status route: creditsUsed is a running total (3, then 5, then 5)."""
        await record(request)
        state.growing_reads += 1
        return JSONResponse({"success": True, "creditsUsed": min(1 + 2 * state.growing_reads, 5)})

    async def unknown_post(request: Request) -> Response:
        await record(request)
        return JSONResponse({"success": True, "creditsUsed": 7})

    async def pool_report(request: Request) -> Response:
        """The worker pool's record (not Firecrawl's: for a person trying the gateway by hand)."""
        pool = state.pool
        if pool is None:
            return JSONResponse({"workers": None})
        return JSONResponse(
            {
                "workers": pool.size,
                "busy": dict(pool.busy),
                "peak": dict(pool.peak),
                "totalPeak": pool.total_peak,
                "longestWait": {team: max(w) for team, w in pool.waits.items() if w},
            }
        )

    router = ExpressRouter(state)
    add = router.add
    add("GET", "/_fake/pool", pool_report)
    add("GET", "/", fixed("SCRAPERS-JS: Hello, world! K8s!"))
    add("GET", "/test", fixed("Hello, world!"))
    add("GET", "/is-production", fixed({"isProduction": False}))
    add("GET", "/serverHealthCheck", fixed({"status": "ok"}))
    add("GET", "/serverHealthCheck/{rest:path}", fixed({"status": "ok"}))
    add("GET", "/admin/{key}/queues", fixed({"queues": "board"}))
    add("GET", "/admin/{key}/queues/{rest:path}", fixed({"queues": "board"}))
    add("GET", "/v2/deep-thing/{thing_id}", growing)
    add("GET", "/v2/stream", stream)
    add("POST", "/v2/something-new", unknown_post)
    add("POST", "/v1/x402/search", search_v1)
    add("POST", "/v1/llmstxt", start_task("llmstxt"))
    add("POST", "/v1/deep-research", start_task("deep_research"))
    add("GET", "/v1/llmstxt/{job_id}", task_status("llmstxt"))
    add("GET", "/v1/deep-research/{job_id}", task_status("deep_research"))
    add("GET", "/v1/checkJobStatus/{job_id}", check_job_status)
    add("POST", "/v1/crawlWebsitePreview", crawl_preview)
    add("GET", "/v1/keyAuth", key_auth)
    add("POST", "/v2/crawl/params-preview", params_preview)
    add("GET", "/v1/health/liveness", fixed({"status": "ok"}))
    add("GET", "/v1/health/readiness", fixed({"status": "ok"}))
    add("POST", "/v1/search", search_v1)
    add("POST", "/v2/search", search_v2)
    for v in ("v1", "v2"):
        add("POST", f"/{v}/scrape", scrape)
        add("POST", f"/{v}/map", map_)
        add("POST", f"/{v}/crawl", start_crawl)
        add("POST", f"/{v}/batch/scrape", start_batch)
        add("POST", f"/{v}/extract", start_task("extract"))
        add("GET", f"/{v}/crawl/active", every_crawl)
        add("GET", f"/{v}/crawl/ongoing", every_crawl)
        add("GET", f"/{v}/crawl/{{job_id}}", job_status)
        add("GET", f"/{v}/batch/scrape/{{job_id}}", job_status)
        add("GET", f"/{v}/crawl/{{job_id}}/errors", job_errors)
        add("GET", f"/{v}/batch/scrape/{{job_id}}/errors", job_errors)
        add("GET", f"/{v}/scrape/{{job_id}}", scrape_status)
        add("GET", f"/{v}/extract/{{job_id}}", extract_status)
        add("DELETE", f"/{v}/crawl/{{job_id}}", cancel)
        add("DELETE", f"/{v}/batch/scrape/{{job_id}}", cancel)
        add(
            "GET",
            f"/{v}/team/credit-usage",
            fixed({"success": True, "data": {"remaining_credits": 99999999}}),
        )
    return router


def standalone() -> ExpressRouter:
    """For `python -m uvicorn tests.gateway.fake_firecrawl:app` (bench/): a standalone fake;
    FAKE_FIRECRAWL_WORKERS (and FAKE_FIRECRAWL_PAGE_SECONDS, default 0.1) give it a worker
    pool, whose record `GET /_fake/pool` answers; FAKE_FIRECRAWL_SITE_PAGES sets how many
    pages a crawl finds (40)."""
    state = FakeState(unlimited_total=int(os.environ.get("FAKE_FIRECRAWL_SITE_PAGES", "40")))
    workers = os.environ.get("FAKE_FIRECRAWL_WORKERS")
    if workers:
        state.use_workers(int(workers), float(os.environ.get("FAKE_FIRECRAWL_PAGE_SECONDS", "0.1")))
    return make_app(state)


app = standalone()
