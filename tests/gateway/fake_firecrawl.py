"""A small Firecrawl that answers as a self-hosted one does (firecrawl-api.md §6).

Targets steer it: a URL containing `fail` makes every engine fail (500); `slow` answers after
two seconds (past the gateway's timeout in tests); `wait` after half a second; `drop` closes
the connection; `missing` is a 404 page (still charged); `pdf` is a three-page PDF; `big` is a
4 MiB answer sent in chunks. Crawls and
batch scrapes gain one page per status poll and page through `next`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Crawl:
    total: int
    completed: int = 0
    status: str = "scraping"


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


def page_cost(url: str, body: dict[str, Any]) -> int:
    formats = body.get("formats") or []
    cost = 5 if "json" in formats or {"type": "json"} in formats else 1
    return cost + (2 if "pdf" in url else 0)


def make_app(state: FakeState) -> Starlette:
    async def record(request: Request) -> dict[str, Any]:
        body = await request.json() if request.method == "POST" else {}
        state.requests.append((request.method, request.url.path, body))
        state.auth.append(request.headers.get("authorization"))
        return body

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
        if "slow" in url:
            await asyncio.sleep(2)
        if "wait" in url:
            state.inflight += 1
            state.max_inflight = max(state.max_inflight, state.inflight)
            await asyncio.sleep(0.5)
            state.inflight -= 1
        if "drop" in url:
            raise ConnectionResetError("dropped")
        if not url.startswith("http"):
            return JSONResponse(
                {"success": False, "error": "Bad Request", "details": [{"message": "Invalid URL"}]},
                status_code=400,
            )
        status = 404 if "missing" in url else 200
        doc = document(url, page_cost(url, body), status)
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
        return JSONResponse(
            {
                "success": True,
                "links": [{"url": f"{body.get('url')}/a"}, {"url": f"{body.get('url')}/b"}],
            }
        )

    async def search(request: Request) -> Response:
        await record(request)
        return JSONResponse(
            {
                "success": True,
                "data": {
                    "web": [{"url": f"https://r{i}.example", "title": f"r{i}"} for i in range(3)]
                },
            }
        )

    async def start_job(request: Request) -> Response:
        body = await record(request)
        urls = body.get("urls")
        total = len(urls) if isinstance(urls, list) else min(int(body.get("limit", 4)), 4)
        job_id = str(uuid.uuid4())
        state.crawls[job_id] = Crawl(total)
        kind = "batch/scrape" if "batch" in request.url.path else "crawl"
        version = request.url.path.split("/")[1]
        extra: dict[str, Any] = {"invalidURLs": []} if kind == "batch/scrape" else {}
        return JSONResponse(
            {
                "success": True,
                "id": job_id,
                "url": f"{state.base_url}/{version}/{kind}/{job_id}",
                **extra,
            }
        )

    async def job_status(request: Request) -> Response:
        await record(request)
        crawl = state.crawls.get(request.path_params["job_id"])
        if crawl is None:
            return JSONResponse({"success": False, "error": "Job not found"}, status_code=404)
        if crawl.status == "scraping":
            crawl.completed = min(crawl.completed + 1, crawl.total)
            if crawl.completed == crawl.total:
                crawl.status = "completed"
        skip = int(request.query_params.get("skip", "0"))
        docs = [document(f"https://site.example/p{i}", 1) for i in range(crawl.completed)]
        page = docs[skip : skip + state.page_size]
        more = skip + state.page_size < len(docs)
        next_url = f"{state.base_url}{request.url.path}?skip={skip + state.page_size}"
        return JSONResponse(
            {
                "success": True,
                "status": crawl.status,
                "completed": crawl.completed,
                "total": crawl.total,
                "creditsUsed": crawl.completed,
                "expiresAt": "2030-01-01T00:00:00.000Z",
                "next": next_url if more else None,
                "data": page,
            }
        )

    async def cancel(request: Request) -> Response:
        await record(request)
        crawl = state.crawls[request.path_params["job_id"]]
        crawl.status = "cancelled"
        return JSONResponse({"success": True, "status": "cancelled"})

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

    routes = [
        Route("/v2/deep-thing/{thing_id}", growing, methods=["GET"]),
        Route("/v2/stream", stream, methods=["GET"]),
        Route("/v2/something-new", unknown_post, methods=["POST"]),
    ]
    for v in ("v1", "v2"):
        routes += [
            Route(f"/{v}/scrape", scrape, methods=["POST"]),
            Route(f"/{v}/map", map_, methods=["POST"]),
            Route(f"/{v}/search", search, methods=["POST"]),
            Route(f"/{v}/crawl", start_job, methods=["POST"]),
            Route(f"/{v}/batch/scrape", start_job, methods=["POST"]),
            Route(f"/{v}/crawl/{{job_id}}", job_status, methods=["GET"]),
            Route(f"/{v}/batch/scrape/{{job_id}}", job_status, methods=["GET"]),
            Route(f"/{v}/crawl/{{job_id}}", cancel, methods=["DELETE"]),
            Route(
                f"/{v}/team/credit-usage",
                lambda r: JSONResponse({"success": True, "data": {"remaining_credits": 99999999}}),
            ),
        ]
    return Starlette(routes=routes)


# For `python -m uvicorn tests.gateway.fake_firecrawl:app` (bench/): a standalone fake.
app = make_app(FakeState())
