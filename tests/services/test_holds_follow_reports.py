"""A property of every paged job (issue 17, item 6): whatever its options — §3's items, the
later releases' ones, options no table knows — and whatever each page is reported to cost,
the team is charged what the upstream reports (or the most the request could cost, if it
reports more), and its balance never goes below minus the pages finished between two status
reports and after the cancel, at the dearest price seen.

The job is driven as the gateway drives it: the hold planned by `holds.plan_hold` (the crawl's
limit fitted to what the key can spend), reports applied by `jobs.apply_report`, a CANCEL
answered by cancelling, after which the pages in flight still finish and are reported.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from creditgate.domain import holds
from creditgate.domain.errors import InsufficientCredits
from creditgate.domain.price_table import DEFAULT_PRICES
from creditgate.services import account, jobs, reservations, teams
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import team_with_key
from tests.security.support import make_plan

FORMATS = st.sampled_from(
    [
        "markdown",
        "html",
        "links",
        "json",
        "summary",
        {"type": "json", "prompt": "p"},
        {"type": "changeTracking", "modes": ["json"]},
        {"type": "changeTracking", "modes": ["git-diff"]},
        {"type": "query", "prompt": "q"},
        {"type": "highlights"},
        "audio",
        "video",
        {"type": "aNewFormat"},  # no table knows it
    ]
)
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "formats": st.lists(FORMATS, max_size=4),
        "zeroDataRetention": st.booleans(),
        "proxy": st.sampled_from(["basic", "stealth", "auto"]),
        "redactPII": st.booleans(),
        "lockdown": st.booleans(),
        "deterministicJson": st.booleans(),
        "onlyMainContent": st.booleans(),
        "aNewOption": st.integers(0, 3),  # no table knows it
    },
)


@st.composite
def jobs_asked(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[int]]:
    """A crawl or batch scrape, its options, and each of its pages' reported cost (0 to 60:
    below, at and above the table's dearest page of 39)."""
    costs = draw(st.lists(st.integers(0, 60), min_size=1, max_size=40))
    options = draw(OPTIONS)
    if draw(st.booleans()):
        body: dict[str, Any] = {"url": "https://site.example", "scrapeOptions": options}
        if draw(st.booleans()):
            body["limit"] = len(costs)
        return "crawl", body, costs
    urls = [f"https://site.example/p{i}" for i in range(len(costs))]
    return "batch_scrape", {**options, "urls": urls}, costs


def _remaining(db: Database, team_id: str, clock: Clock) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), clock.now).remaining


def _charged(db: Database, team_id: str, clock: Clock) -> int:
    history = account.history(db, teams.get_team(db, team_id), False, clock.now)
    return sum(r.credits for r in history)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    asked=jobs_asked(),
    credits=st.integers(1, 250),
    per_poll=st.integers(1, 6),
    concurrency=st.integers(1, 8),
)
def test_a_job_is_charged_what_it_reports_and_overdraws_by_one_poll_at_most(
    db: Database,
    clock: Clock,
    asked: tuple[str, dict[str, Any], list[int]],
    credits: int,
    per_poll: int,
    concurrency: int,
) -> None:
    endpoint, body, costs = asked
    plan_id = make_plan(db, f"p-{uuid.uuid4().hex[:12]}", credits, concurrency=concurrency)
    team, key, key_id = team_with_key(db, clock.now, plan=plan_id, name=plan_id)  # one a run
    wanted = holds.plan_hold(DEFAULT_PRICES, endpoint, body, job=True, concurrency=concurrency)
    verdict = reservations.check(db, key_id, wanted[1].first, clock.now)
    sent, plan = holds.plan_hold(
        DEFAULT_PRICES,
        endpoint,
        body,
        job=True,
        concurrency=concurrency,
        spendable=None if verdict.allowed else verdict.remaining,
    )
    try:
        held = reservations.reserve(
            db, ReserveRequest(key, plan.first, ttl_ms=jobs.JOB_HOLD_MS), clock.now
        )
    except InsufficientCredits:  # refused up front: nothing ran, nothing is charged
        event("refused up front")
        assert (_charged(db, team.id, clock), _remaining(db, team.id, clock)) == (0, credits)
        return
    pages = min(len(costs), sent["limit"]) if endpoint == "crawl" else len(costs)
    job_id = uuid.uuid4().hex  # examples share the database: each its own job
    new = jobs.NewJob(
        job_id,
        team.id,
        held.id,
        held.key_id,
        endpoint,
        f"/v2/crawl/{job_id}",
        f"/v2/crawl/{job_id}",
        plan.step,
        plan.ceiling,
        plan.page_price,
        plan.page_limit,
    )
    job = jobs.open_job(db, new, clock.now, 1_000)
    done, status, verdict_next = 0, "scraping", jobs.Next.FOLLOW
    for _ in range(pages + 10):  # a poll of pages each time, or a quiet poll once cancelled
        if verdict_next is jobs.Next.DONE:
            break
        clock.advance(1_000)
        if status == "scraping":
            done = min(done + per_poll, pages)
            status = "completed" if done == pages else status
        reported = sum(costs[:done])
        verdict_next = jobs.apply_report(
            db, job, reported, status, clock.now, None, 0, done or None
        )
        if verdict_next is jobs.Next.CANCEL:  # the gateway cancels it; pages in flight finish
            jobs.mark_cancelled(db, job, clock.now)
            done, status = min(done + per_poll, pages), "cancelled"
    assert verdict_next is jobs.Next.DONE, f"still followed after {pages + 10} polls ({status})"
    reported = sum(costs[:done])
    event("cancelled" if status == "cancelled" else "ran to its end")
    event("capped" if reported > plan.ceiling else "as reported")
    assert _charged(db, team.id, clock) == min(reported, plan.ceiling)
    price = max([*costs[:done], 1])
    assert _remaining(db, team.id, clock) >= -2 * per_poll * price  # a poll's pages, then in flight
