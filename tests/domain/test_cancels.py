"""When a cancelled job's slots come back (domain/cancels.py; issue 18, item 4)."""

from __future__ import annotations

import pytest

from creditgate.domain.cancels import Cancelled, last_page_end, page_timeout_ms, pages_over

AT = 1_000_000
GRACE = 60_000
POLL = 1_000


def test_the_bound_is_the_requests_page_timeout_and_a_poll_never_beyond_the_grace() -> None:
    assert last_page_end(Cancelled(AT, 5_000, GRACE, POLL)) == AT + 6_000
    assert last_page_end(Cancelled(AT, None, GRACE, POLL)) == AT + GRACE
    assert last_page_end(Cancelled(AT, 300_000, GRACE, POLL)) == AT + GRACE


@pytest.mark.parametrize(
    ("cancelled", "pending", "quiet", "now", "over"),
    [
        (True, 0, 0, AT + 1, True),  # read after the cancel, nothing pending: at once
        (True, 2, 5, AT + 2_000, False),  # pages still running, quiet or not
        (False, 0, 5, AT + 2_000, False),  # read before the cancel took effect
        (True, None, 2, AT + GRACE, False),  # no counts: the bound and quiet polls
        (True, None, 3, AT + GRACE - 1, False),
        (True, None, 3, AT + GRACE, True),
        (True, 2, 3, AT + GRACE, True),  # the bound passed: a page cannot still run
    ],
)
def test_pages_over(cancelled: bool, pending: int | None, quiet: int, now: int, over: bool) -> None:
    job = Cancelled(AT, None, GRACE, POLL)
    verdict = pages_over(
        job, now, reported_cancelled=cancelled, pending=pending, quiet_polls=quiet, quiet_needed=3
    )
    assert verdict is over


def test_with_its_own_timeout_a_job_is_over_one_poll_after_it() -> None:
    job = Cancelled(AT, 5_000, GRACE, POLL)
    kwargs = {"reported_cancelled": True, "pending": None, "quiet_polls": 3, "quiet_needed": 3}
    assert not pages_over(job, AT + 5_999, **kwargs)  # type: ignore[arg-type]
    assert pages_over(job, AT + 6_000, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("endpoint", "body", "timeout"),
    [
        ("crawl", {"url": "u", "scrapeOptions": {"timeout": 15000}}, 15_000),
        ("crawl", {"url": "u", "timeout": 15000}, None),  # not a page's timeout
        ("crawl", {"url": "u"}, None),  # the build gives a crawl's pages no default
        ("batch_scrape", {"urls": ["u"], "timeout": 20000}, 20_000),
        ("batch_scrape", {"urls": ["u"], "timeout": 1.5}, 2),
        ("batch_scrape", {"urls": ["u"], "timeout": True}, None),
        ("batch_scrape", {"urls": ["u"], "timeout": -5}, None),
        ("batch_scrape", {"urls": ["u"], "timeout": "9"}, None),
        ("extract", {"urls": ["u"], "timeout": 60000}, None),
    ],
)
def test_the_requests_own_page_timeout(
    endpoint: str, body: dict[str, object], timeout: int | None
) -> None:
    assert page_timeout_ms(endpoint, body) == timeout
