"""When a cancelled job's pages can no longer run upstream, so its page slots come back.

What the 2025-08 build does on a cancel (read in its source, checked on the real build by
tests/upstream): the cancel only marks the stored crawl or batch cancelled. A page already
running runs to its end, bounded by the request's own page `timeout` if it set one (the worker
races the page against it); a page not yet started fails at once when a worker takes it
("Parent crawl/batch scrape was cancelled"), without loading anything. A page that fails leaves
the job's `total`, a page that ends well is counted in `completed`: so once a status report
after the cancel says `total == completed`, no page of the job can still run, and its
`creditsUsed` is final. (Its errors route lists the failed pages; they are already out of
`total`, so adding them would count pages still running as ended.)

The bound: the slots come back at the first poll that reports no page pending after the
cancel; else, if the request set a page timeout, one poll after `cancel + timeout`; else after
the page grace (a setting, 60 s by default) — never later than the grace, and in every case
once the reported total has been still for `quiet_needed` polls (a page that ended late is
still charged before the hold closes).
"""

from __future__ import annotations

from dataclasses import dataclass

from creditgate.domain.instants import Instant


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A job cancelled upstream, as the gateway follows it."""

    cancelled_at: Instant
    page_timeout_ms: int | None  # the request's own page timeout; None: it set none
    grace_ms: int  # the longest a page may run once creditgate stopped waiting for it
    poll_ms: int  # the time between two status polls


def last_page_end(job: Cancelled) -> Instant:
    """By when a page running at the cancel has ended upstream, seen by the next poll."""
    if job.page_timeout_ms is None:
        return job.cancelled_at + job.grace_ms
    return job.cancelled_at + min(job.page_timeout_ms + job.poll_ms, job.grace_ms)


def pages_over(
    job: Cancelled,
    now: Instant,
    *,
    reported_cancelled: bool,
    pending: int | None,
    quiet_polls: int,
    quiet_needed: int,
) -> bool:
    """Can no page of the job still run (its slots and hold may go, settled at the total)?

    `reported_cancelled`: this report says the job is cancelled (it was read after the
    cancel); `pending`: pages it reports found and not ended (total - completed), if it does;
    `quiet_polls`: reports in a row whose total did not move, this one included."""
    if reported_cancelled and pending is not None and pending <= 0:
        return True  # the upstream says every page it found has ended
    return quiet_polls >= quiet_needed and now >= last_page_end(job)


def page_timeout_ms(endpoint: str, body: dict[str, object]) -> int | None:
    """The request's own page timeout, in ms: a crawl's `scrapeOptions.timeout`, a batch
    scrape's `timeout`. None when it set none: the 2025-08 build gives a crawl's or a batch's
    pages no default (only a single scrape defaults to 30 s), so its page grace bounds them."""
    if endpoint == "crawl":
        options = body.get("scrapeOptions")
        value = options.get("timeout") if isinstance(options, dict) else None
    elif endpoint == "batch_scrape":
        value = body.get("timeout")
    else:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value) if value == int(value) else int(value) + 1
