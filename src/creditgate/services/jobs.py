"""Upstream jobs the gateway follows: settled from what the upstream reports, exactly once.

A job's reservation records what has been charged so far (`settled`). When the upstream reports
a total of N credits used, only N - settled is charged, computed under the team's lock: two
processes polling the same job, or a poll replayed after a restart, charge each credit once.

Ending: a completed or failed job is settled for good at its first report as such. A cancelled
one is not: pages in flight at the cancel still finish and are billed upstream, so it is
followed until its pages can no longer run (domain/cancels.py): a report after the cancel says
no page is pending, or the request's own page timeout (else the page grace) has passed since
the cancel and the reported total has not moved for QUIET_POLLS polls in a row. Until then it
keeps its hold and its page slots.

A job's hold lasts JOB_HOLD_MS and is renewed by each report while the job runs: a crawl
longer than a day keeps its credits and slots; a job whose upstream stopped answering for a
day lets them go.

Every job's hold follows the cost it reports (firecrawl-api.md §3: the report is the truth,
the price table only an estimate). The job holds `hold_step` credits beyond what it has used,
up to `hold_ceiling`, the most it can cost (its pages at the table's dearest page); whenever the
reported total comes within a step of the hold, the hold is extended by what keeps a step ahead,
admitted like a new hold (under the team lock, within the key's cap). A step is a number of
pages at the price the reports show (`page_price` until they show more): pages that cost five
times the table's price grow the hold five times as fast. When the team or the key cannot pay
for the next step, the job goes on within its hold until half a step is left, then must stop:
`apply_report` answers CANCEL and the gateway cancels it upstream; the half step left pays for
the pages in flight. So a job overdraws its team by at most the pages it finishes between two
status reports beyond that half step. A reported total above the ceiling is charged at the
ceiling (`capped`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection

from creditgate.domain import cancels
from creditgate.domain.errors import Conflict
from creditgate.domain.instants import Instant
from creditgate.services import reservations
from creditgate.storage import job_rows as jobs
from creditgate.storage import reservation_rows as reservations_store
from creditgate.storage.database import Database
from creditgate.storage.job_rows import Job as Job  # re-exported for the gateway
from creditgate.storage.job_rows import JobStatus

FINISHED = ("completed", "failed")
CANCELLED = "cancelled"
QUIET_POLLS = 3
FIRST_POLL_MS = 1_000
JOB_HOLD_MS = 24 * 60 * 60 * 1000  # a job's hold lasts this long past its last report
RENEW_BEFORE_MS = 60 * 60 * 1000  # a report renews the hold when less than this is left


class Next(StrEnum):
    FOLLOW = "follow"  # keep polling
    CANCEL = "cancel"  # the team cannot pay for more: cancel it upstream, then keep polling
    DONE = "done"  # settled for good


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    team_id: str
    reservation_id: str
    key_id: str
    endpoint: str
    status_path: str
    cancel_path: str | None
    hold_step: int | None = None
    hold_ceiling: int | None = None
    page_price: int | None = None
    page_limit: int | None = None
    upstream_id: str | None = None  # the upstream's id, when the client was given another
    page_timeout_ms: int | None = None


def open_job(db: Database, new: NewJob, now: Instant, poll_ms: int) -> Job:
    """Follow a job the upstream started. Conflict if its id is followed already: the upstream
    answered a start with a job it had (an append to another batch), whose work is not this
    hold's to settle."""
    with db.write() as conn:
        return insert_new(conn, new, now, poll_ms)


def insert_new(conn: Connection, new: NewJob, now: Instant, poll_ms: int) -> Job:
    """open_job's writes, in the caller's transaction."""
    job = Job(
        new.id,
        new.team_id,
        new.reservation_id,
        new.key_id,
        new.endpoint,
        new.status_path,
        JobStatus.ACTIVE,
        now,
        now + min(poll_ms, FIRST_POLL_MS),  # any process may take it: not this one's pace
        new.hold_step,
        new.hold_ceiling,
        0,
        new.cancel_path,
        page_price=new.page_price,
        page_limit=new.page_limit,
        upstream_id=new.upstream_id,
        page_timeout_ms=new.page_timeout_ms,
    )
    upstream_id = new.upstream_id or new.id
    taken = jobs.get_job(conn, new.id) or jobs.get_by_upstream_id(conn, upstream_id)
    if taken is not None:  # one hold per job, one team per job
        raise Conflict(f"upstream job {upstream_id} is already followed", jobId=upstream_id)
    jobs.insert_job(conn, job)
    # Every charge settled from here on carries the job's id (activity, history), and
    # the hold is the job's now, not the request's.
    reservations_store.hand_over(conn, new.team_id, new.reservation_id, new.id)
    return job


def get_job(db: Database, job_id: str) -> Job | None:
    with db.read() as conn:
        return jobs.get_job(conn, job_id)


def owns(db: Database, team_id: str, job_id: str) -> bool:
    """Did this team start this upstream job (or scrape)? Only then may it read or cancel it."""
    with db.read() as conn:
        if jobs.get_team_job(conn, team_id, job_id) is not None:
            return True
        return reservations_store.holds_job(conn, team_id, job_id)


def team_job(db: Database, team_id: str, job_id: str) -> Job | None:
    with db.read() as conn:
        return jobs.get_team_job(conn, team_id, job_id)


def mark_cancelled(db: Database, job: Job, now: Instant) -> None:
    """The job was cancelled upstream: follow it until its total stops moving and its pages
    in flight can have finished."""
    with db.write() as conn:
        current = jobs.get_team_job(conn, job.team_id, job.id)
        if current is not None and current.status is JobStatus.ACTIVE:
            jobs.set_cancelled(conn, job.team_id, job.id, now)


def capped(job: Job, credits_used: int | None) -> int | None:
    """A reported total, no more than the most the job can cost."""
    if credits_used is None or job.hold_ceiling is None:
        return credits_used
    return min(credits_used, job.hold_ceiling)


def apply_report(
    db: Database,
    job: Job,
    credits_used: int | None,
    status: str | None,
    now: Instant,
    pending: int | None = None,
    grace_ms: int = 0,
    pages_done: int | None = None,
    poll_ms: int = 0,
) -> Next:
    """Settle what the upstream says the job has cost in all (capped at its ceiling); close
    it once it has ended. `pending`: pages it reports found and not yet done (total -
    completed), if it does; `pages_done`: pages it reports done. `grace_ms`: how long a page
    may still run after a cancel (the page grace); `poll_ms`: the time between two polls."""
    with db.read() as conn:  # the raw rows, in one read: no balance is needed to decide
        held = reservations_store.get_reservation(conn, job.reservation_id)
        current = jobs.get_team_job(conn, job.team_id, job.id) or job
    if held is None or held.status != "open" or current.status is JobStatus.DONE:
        _finish(db, job)
        return Next.DONE
    if held.expires_at - now < RENEW_BEFORE_MS:  # still running: keep its credits and slots
        reservations.prolong(db, held.id, now + JOB_HOLD_MS, now)
    used = capped(current, credits_used)
    total = held.settled if used is None else used
    cancelled = status == CANCELLED or current.status is JobStatus.CANCELLING
    if pending is not None:  # a cancelled job's unscraped pages never run: none waits
        _note_waiting(db, current, 0 if cancelled else max(pending - held.slots, 0))
    if cancelled:
        after = _Report(status == CANCELLED, pending, grace_ms, poll_ms)
        return _settle_cancelled(db, current, held.settled, total, now, after)
    finished = status in FINISHED
    try:
        if total > held.settled or finished:
            reservations.settle(db, job.reservation_id, total, now, final=finished, as_total=True)
    except Conflict:  # closed meanwhile (expired, or finished by another process)
        finished = True
    if finished:
        _finish(db, job)
        return Next.DONE
    return _grow(db, current, held.amount, total, now, pages_done)


def _note_waiting(db: Database, job: Job, pages: int) -> None:
    """Pages beyond the job's slots wait upstream: queue-status counts them as waiting."""
    if pages != job.waiting_pages:
        with db.write() as conn:
            jobs.set_waiting_pages(conn, job.team_id, job.id, pages)


@dataclass(frozen=True, slots=True)
class _Report:
    """What a report after a cancel says, and the gateway's bounds."""

    cancelled: bool  # the report says the job is cancelled
    pending: int | None  # pages found and not ended, if it says
    grace_ms: int
    poll_ms: int


def _settle_cancelled(
    db: Database, job: Job, settled: int, total: int, now: Instant, report: _Report
) -> Next:
    quiet = job.quiet_polls + 1 if total <= settled else 0
    since = now if job.cancelled_at is None else job.cancelled_at
    final = cancels.pages_over(
        cancels.Cancelled(since, job.page_timeout_ms, report.grace_ms, report.poll_ms),
        now,
        reported_cancelled=report.cancelled,
        pending=report.pending,
        quiet_polls=quiet,
        quiet_needed=QUIET_POLLS,
    )
    try:
        if total > settled or final:
            reservations.settle(db, job.reservation_id, total, now, final=final, as_total=True)
    except Conflict:
        final = True
    if final:
        _finish(db, job)
        return Next.DONE
    with db.write() as conn:
        if job.status is not JobStatus.CANCELLING or job.cancelled_at is None:
            jobs.set_cancelled(conn, job.team_id, job.id, now)
        jobs.set_quiet_polls(conn, job.team_id, job.id, quiet)
    return Next.FOLLOW


def _grow(
    db: Database, job: Job, held: int, total: int, now: Instant, pages_done: int | None
) -> Next:
    """Keep the hold a step ahead of the work. When the team cannot pay for the next step,
    the job goes on within what it holds, and is cancelled once only half a step is left:
    room for the pages in flight, which finish after a cancel."""
    if job.hold_step is None or job.hold_ceiling is None:
        return Next.FOLLOW
    step = step_credits(job, total, pages_done)
    wanted = min(total + step, job.hold_ceiling, total + _still_needed(job, total, pages_done))
    if wanted <= held or reservations.extend(db, job.reservation_id, wanted - held, now):
        return Next.FOLLOW
    return Next.CANCEL if held - total <= step // 2 else Next.FOLLOW


def _shown_price(job: Job, total: int, pages_done: int | None) -> int:
    """A page's price: the table's, or what the reports show if more."""
    price = max(job.page_price or 1, 1)
    if pages_done:
        price = max(price, -(-total // pages_done))
    return price


def _still_needed(job: Job, total: int, pages_done: int | None) -> int:
    """What the job's pages left can cost at the price shown: a crawl forwarded with the limit
    its team can pay for need not hold more. Unknown (no page count): the ceiling."""
    if job.page_limit is None or pages_done is None or job.hold_ceiling is None:
        return job.hold_ceiling or 0
    return max(job.page_limit - pages_done, 0) * _shown_price(job, total, pages_done)


def step_credits(job: Job, total: int, pages_done: int | None) -> int:
    """A step of the job's hold: its pages at the price its reports show, if above the
    table's (a page whose options the table did not price)."""
    assert job.hold_step is not None
    price = max(job.page_price or 1, 1)
    shown = _shown_price(job, total, pages_done)
    return job.hold_step if shown == price else max(job.hold_step // price, 1) * shown


def _finish(db: Database, job: Job) -> None:
    with db.write() as conn:
        jobs.set_status(conn, job.team_id, job.id, JobStatus.DONE)


def claim_due(db: Database, now: Instant, poll_ms: int, limit: int = 20) -> list[Job]:
    """Jobs whose next poll is due, each claimed by this process alone."""
    with db.read() as conn:
        due = jobs.due_jobs(conn, now, limit)
    claimed = []
    for job in due:
        with db.write() as conn:
            if jobs.claim(conn, job, now + poll_ms):
                claimed.append(job)
    return claimed


def active_crawls(db: Database, team_id: str) -> list[tuple[str, str | None]]:
    """The team's crawls still running, from creditgate's own records: the upstream is shared
    by every team and would list them all."""
    with db.read() as conn:
        return jobs.active_of_team(conn, team_id, "crawl")
