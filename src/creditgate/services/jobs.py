"""Upstream jobs the gateway follows: settled from what the upstream reports, exactly once.

A job's reservation records what has been charged so far (`settled`). When the upstream reports
a total of N credits used, only N - settled is charged, computed under the team's lock: two
processes polling the same job, or a poll replayed after a restart, charge each credit once.
"""

from __future__ import annotations

from creditgate.domain.errors import Conflict
from creditgate.domain.instants import Instant
from creditgate.services import reservations
from creditgate.storage import jobs
from creditgate.storage import reservations as reservations_store
from creditgate.storage.database import Database
from creditgate.storage.jobs import Job as Job  # re-exported for the gateway

POLL_INTERVAL_MS = 2_000
FINISHED = ("completed", "failed", "cancelled")


def open_job(
    db: Database,
    job_id: str,
    team_id: str,
    reservation_id: str,
    key_id: str,
    endpoint: str,
    status_path: str,
    now: Instant,
) -> Job:
    job = Job(
        job_id,
        team_id,
        reservation_id,
        key_id,
        endpoint,
        status_path,
        "active",
        now,
        now + POLL_INTERVAL_MS,
    )
    with db.write() as conn:
        if jobs.get_job(conn, job_id) is None:
            jobs.insert_job(conn, job)
            # Every charge settled from here on carries the job's id (activity, history).
            reservations_store.set_job_id(conn, team_id, reservation_id, job_id)
    return job


def get_job(db: Database, job_id: str) -> Job | None:
    with db.read() as conn:
        return jobs.get_job(conn, job_id)


def apply_report(
    db: Database, job: Job, credits_used: int | None, status: str | None, now: Instant
) -> None:
    """Settle what the upstream says the job has cost in all; close it when it has ended."""
    finished = status in FINISHED
    held = reservations.get(db, job.reservation_id, now)
    if held.status != "open":
        _finish(db, job)
        return
    total = held.settled if credits_used is None else credits_used
    try:
        if total > held.settled or finished:
            reservations.settle(db, job.reservation_id, total, now, final=finished, as_total=True)
    except Conflict:  # closed meanwhile (expired, or finished by another process)
        finished = True
    if finished:
        _finish(db, job)


def _finish(db: Database, job: Job) -> None:
    with db.write() as conn:
        jobs.finish(conn, job.team_id, job.id)


def claim_due(db: Database, now: Instant, limit: int = 20) -> list[Job]:
    """Jobs whose next poll is due, each claimed by this process alone."""
    with db.read() as conn:
        due = jobs.due_jobs(conn, now, limit)
    claimed = []
    for job in due:
        with db.write() as conn:
            if jobs.claim(conn, job, now + POLL_INTERVAL_MS):
                claimed.append(job)
    return claimed


def active_crawls(db: Database, team_id: str) -> list[tuple[str, str | None]]:
    """The team's crawls still running, from creditgate's own records: the upstream is shared
    by every team and would list them all."""
    with db.read() as conn:
        return jobs.active_of_team(conn, team_id, "crawl")
