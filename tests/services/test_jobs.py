"""Followed jobs keep their hold (credits and page slots) while they run, and only then."""

from __future__ import annotations

from creditgate.services import account, jobs, reservations, teams
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import team_with_key

HOUR = 60 * 60 * 1000


def _crawl(
    db: Database,
    clock: Clock,
    key: str,
    team_id: str,
    slots: int,
    page_timeout_ms: int | None = None,
) -> jobs.Job:
    held = reservations.reserve(
        db, ReserveRequest(key, 40, ttl_ms=jobs.JOB_HOLD_MS, slots=slots), clock.now
    )
    new = jobs.NewJob(
        "job-1", team_id, held.id, held.key_id, "crawl", "/v2/crawl/job-1", None,
        page_timeout_ms=page_timeout_ms,
    )  # fmt: skip
    return jobs.open_job(db, new, clock.now, 1_000)


def _active(db: Database, team_id: str, now: int) -> int:
    return account.queue_status(db, teams.get_team(db, team_id), now).active


def test_a_job_running_longer_than_a_day_keeps_its_hold_and_slots(
    db: Database, clock: Clock
) -> None:
    """Finding (outside test): a job's hold expired after 24 hours while the job still ran,
    and its slots went to other work. Each report renews it while less than an hour is left."""
    team, key, _ = team_with_key(db, clock.now)
    job = _crawl(db, clock, key, team.id, slots=4)
    for _ in range(3):  # three days, a report every 30 minutes
        for _ in range(48):
            clock.advance(HOUR // 2)
            assert jobs.apply_report(db, job, 1, "scraping", clock.now, 36) is jobs.Next.FOLLOW
        assert _active(db, team.id, clock.now) == 4
    view = reservations.get(db, job.reservation_id, clock.now)
    assert view.status == "open"
    assert view.expires_at - clock.now > jobs.RENEW_BEFORE_MS - HOUR // 2  # the next report


def test_a_job_whose_upstream_stops_answering_lets_its_hold_go_after_a_day(
    db: Database, clock: Clock
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    job = _crawl(db, clock, key, team.id, slots=4)
    clock.advance(jobs.JOB_HOLD_MS)  # no report at all for a day
    assert _active(db, team.id, clock.now) == 0
    assert not reservations.prolong(db, job.reservation_id, clock.now + HOUR, clock.now)
    # A lapsed hold is not revived: a late report finds it closed and the job is done with.
    assert jobs.apply_report(db, job, 1, "scraping", clock.now) is jobs.Next.DONE
    assert _active(db, team.id, clock.now) == 0


def test_a_cancelled_job_is_final_only_after_the_page_grace(db: Database, clock: Clock) -> None:
    """Quiet for three polls is not enough: its pages in flight may run for the page grace
    after the cancel, so its hold and slots stay until then."""
    team, key, _ = team_with_key(db, clock.now)
    job = _crawl(db, clock, key, team.id, slots=4)
    jobs.mark_cancelled(db, job, clock.now)
    job = jobs.get_job(db, job.id) or job
    assert job.cancelled_at == clock.now
    grace = 60_000
    for _ in range(5):  # quiet polls, a second apart: still within the grace
        clock.advance(1_000)
        verdict = jobs.apply_report(db, job, 2, "cancelled", clock.now, None, grace)
        assert verdict is jobs.Next.FOLLOW
        job = jobs.get_job(db, job.id) or job
    assert _active(db, team.id, clock.now) == 4
    clock.advance(grace)
    assert jobs.apply_report(db, job, 3, "cancelled", clock.now, None, grace) is jobs.Next.FOLLOW
    job = jobs.get_job(db, job.id) or job
    for _ in range(2):  # a page finished late: charged, then quiet again
        clock.advance(1_000)
        jobs.apply_report(db, job, 3, "cancelled", clock.now, None, grace)
        job = jobs.get_job(db, job.id) or job
    clock.advance(1_000)
    assert jobs.apply_report(db, job, 3, "cancelled", clock.now, None, grace) is jobs.Next.DONE
    assert _active(db, team.id, clock.now) == 0
    assert reservations.get(db, job.reservation_id, clock.now).settled == 3


def test_a_job_already_followed_is_not_opened_again(db: Database, clock: Clock) -> None:
    """An upstream that answers a start with a job it already had (a batch appended to
    another's): one job keeps one hold; the second is refused, the first untouched."""
    import pytest

    from creditgate.domain.errors import Conflict

    team, key, _ = team_with_key(db, clock.now)
    job = _crawl(db, clock, key, team.id, slots=1)
    other, other_key, _ = team_with_key(db, clock.now, name="other")
    held = reservations.reserve(db, ReserveRequest(other_key, 5), clock.now)
    again = jobs.NewJob(job.id, other.id, held.id, held.key_id, "crawl", job.status_path, None)
    with pytest.raises(Conflict):
        jobs.open_job(db, again, clock.now, 1_000)
    assert jobs.get_job(db, job.id) == job


def test_a_cancelled_job_gives_its_slots_back_once_the_upstream_says_no_page_is_pending(
    db: Database, clock: Clock
) -> None:
    """Issue 18, item 4: the 2025-08 build takes a cancelled crawl's pages that never ran out of
    its `total`, so `total == completed` after the cancel means no page can still run: the job
    is settled at that report's figure and its slots come back then, not after the grace."""
    team, key, _ = team_with_key(db, clock.now)
    job = _crawl(db, clock, key, team.id, slots=4)
    jobs.mark_cancelled(db, job, clock.now)
    job = jobs.get_job(db, job.id) or job
    grace = 60_000
    clock.advance(1_000)  # two pages still running (total 5, completed 3)
    assert jobs.apply_report(db, job, 3, "cancelled", clock.now, 2, grace, 3, 1_000) is (
        jobs.Next.FOLLOW
    )
    assert _active(db, team.id, clock.now) == 4
    job = jobs.get_job(db, job.id) or job
    clock.advance(1_000)  # they ended: total 5, completed 5
    assert jobs.apply_report(db, job, 5, "cancelled", clock.now, 0, grace, 5, 1_000) is (
        jobs.Next.DONE
    )
    assert _active(db, team.id, clock.now) == 0
    view = reservations.get(db, job.reservation_id, clock.now)
    assert (view.status, view.settled) == ("settled", 5)


def test_no_page_pending_counts_only_in_a_report_read_after_the_cancel(
    db: Database, clock: Clock
) -> None:
    """A report still saying "scraping" was read before the cancel took effect: its counts
    say nothing about the pages after it."""
    team, key, _ = team_with_key(db, clock.now)
    job = _crawl(db, clock, key, team.id, slots=4)
    jobs.mark_cancelled(db, job, clock.now)
    job = jobs.get_job(db, job.id) or job
    clock.advance(1_000)
    assert jobs.apply_report(db, job, 2, "scraping", clock.now, 0, 60_000, 2, 1_000) is (
        jobs.Next.FOLLOW
    )
    assert _active(db, team.id, clock.now) == 4


def test_a_cancelled_jobs_own_page_timeout_bounds_how_long_its_slots_stay(
    db: Database, clock: Clock
) -> None:
    """With no counts to go by, a job whose request set a page timeout (5 s) gives its slots
    back one poll after cancel + timeout (its total quiet), long before the 60 s grace."""
    team, key, _ = team_with_key(db, clock.now)
    job = _crawl(db, clock, key, team.id, slots=4, page_timeout_ms=5_000)
    cancelled_at = clock.now
    jobs.mark_cancelled(db, job, cancelled_at)
    job = jobs.get_job(db, job.id) or job
    verdicts = []
    while clock.now < cancelled_at + 10_000:
        clock.advance(1_000)
        verdict = jobs.apply_report(db, job, 2, "cancelled", clock.now, None, 60_000, 2, 1_000)
        verdicts.append((clock.now - cancelled_at, verdict))
        job = jobs.get_job(db, job.id) or job
        if verdict is jobs.Next.DONE:
            break
    assert verdicts[-1] == (6_000, jobs.Next.DONE)  # cancel + timeout + one poll
    assert all(v is jobs.Next.FOLLOW for _, v in verdicts[:-1])
    assert _active(db, team.id, clock.now) == 0
