"""What creditgate learns about its upstream by asking it: once per process and upstream.

Does its v2 crawl take `maxConcurrency`? The 2025-08 build's does not (it answers 500, before
saving anything); later builds' do. A version number would not say it (self-hosted builds are
often patched), so creditgate asks with a probe crawl of its own, never with a team's request:
a team's crawl is sent once, in the form chosen before it is sent (gateway/proxy.py).

The probe crawls `PROBE_URL`, a name that cannot resolve (RFC 2606 `.invalid`): a build that
accepts it starts a crawl that fails at once, scrapes nothing and costs nothing, and is cancelled
at once. It is creditgate's own job: never recorded as a team's, never listed or charged.
  1. `POST /v2/crawl` with `maxConcurrency`: an id means yes (the probe is cancelled);
  2. a 500: the same without `maxConcurrency`: an id means no (a 500 only with the field);
  3. anything else (the upstream down, refusing, 500 both times): not known; asked again after
     `RETRY_S`, and meanwhile v2 crawls are forwarded as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import orjson

from creditgate.domain.routes import JOB_ID
from creditgate.web.upstream import Upstream, UpstreamFailed

log = logging.getLogger("creditgate.gateway")

PROBE_URL = "http://creditgate-probe.invalid/index.html"
PROBE_TIMEOUT_S = 10.0
RETRY_S = 60.0


class Traits:
    """What is known of one upstream."""

    def __init__(self) -> None:
        self.v2_crawl_concurrency: bool | None = None
        self.asked_at: float | None = None  # monotonic time of the last unanswered probe
        self.lock = asyncio.Lock()


_KNOWN: weakref.WeakKeyDictionary[Upstream, Traits] = weakref.WeakKeyDictionary()


def traits(upstream: Upstream) -> Traits:
    known = _KNOWN.get(upstream)
    if known is None:
        known = _KNOWN[upstream] = Traits()
    return known


async def v2_crawl_takes_concurrency(upstream: Upstream) -> bool | None:
    """True or False once learned; None while it is not known."""
    known = traits(upstream)
    if known.v2_crawl_concurrency is not None or _too_soon(known):
        return known.v2_crawl_concurrency
    async with known.lock:  # one probe at a time; the others wait for its answer
        if known.v2_crawl_concurrency is None and not _too_soon(known):
            known.v2_crawl_concurrency = await _probe(upstream)
            known.asked_at = time.monotonic()
            _report(upstream, known.v2_crawl_concurrency)
    return known.v2_crawl_concurrency


def _too_soon(known: Traits) -> bool:
    return known.asked_at is not None and time.monotonic() - known.asked_at < RETRY_S


async def _probe(upstream: Upstream) -> bool | None:
    with_field = await _start_probe(upstream, {"maxConcurrency": 1})
    if with_field != 500:
        return True if with_field == 200 else None
    return False if await _start_probe(upstream, {}) == 200 else None


async def _start_probe(upstream: Upstream, extra: dict[str, object]) -> int | None:
    """Start a probe crawl and cancel it: the upstream's status (200 only with a job id), or
    None if it did not answer."""
    body = orjson.dumps({"url": PROBE_URL, "limit": 1, "sitemap": "skip", **extra})
    headers = {"content-type": "application/json"}
    try:
        answer = await upstream.send("POST", "/v2/crawl", "", headers, body, PROBE_TIMEOUT_S)
    except UpstreamFailed:
        return None
    payload = answer.json()
    job_id = payload.get("id") if isinstance(payload, dict) else None
    if answer.status != 200:
        return answer.status
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        return None
    try:
        await upstream.send("DELETE", f"/v2/crawl/{job_id}", "", {}, b"", PROBE_TIMEOUT_S)
    except UpstreamFailed:
        log.warning("probe crawl %s could not be cancelled (it scrapes nothing)", job_id)
    return 200


def _report(upstream: Upstream, learned: bool | None) -> None:
    if learned is None:
        log.warning(
            "could not learn whether %s's v2 crawl takes maxConcurrency; asking again in %.0f s",
            upstream.base_url,
            RETRY_S,
        )
    elif learned:
        log.info("%s's v2 crawl takes maxConcurrency", upstream.base_url)
    else:
        log.warning(
            "%s's v2 crawl fails with maxConcurrency (a 2025-08 build): v2 crawls are started "
            "through its v1 crawl, read and cancelled through v2",
            upstream.base_url,
        )
