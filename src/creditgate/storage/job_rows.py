"""Rows of the upstream jobs the gateway follows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, func, insert, select, update

from creditgate.domain.instants import Instant
from creditgate.storage.tables import jobs, reservations


class JobStatus(StrEnum):
    ACTIVE = "active"  # running upstream; polled
    CANCELLING = "cancelling"  # cancelled; polled until its reported total stops moving
    DONE = "done"  # settled for good


FOLLOWED = (JobStatus.ACTIVE, JobStatus.CANCELLING)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    team_id: str
    reservation_id: str
    key_id: str
    endpoint: str
    status_path: str
    status: JobStatus
    created_at: Instant
    next_poll_at: Instant
    hold_step: int | None = None  # credits the hold grows by; None: a fixed hold
    hold_ceiling: int | None = None  # the most the job can cost: the hold grows no further
    quiet_polls: int = 0
    cancel_path: str | None = None
    waiting_pages: int = 0  # found and not yet scraped beyond its slots, at its last report
    cancelled_at: Instant | None = None
    page_price: int | None = None  # a page's price at the table when it started
    page_limit: int | None = None  # the most pages it can run (a crawl's limit, a batch's URLs)
    upstream_id: str | None = None  # the upstream's id, when not `id` (a start that was queued)
    page_timeout_ms: int | None = None  # the request's own page timeout, if it set one

    @property
    def upstream_job_id(self) -> str:
        """The id the upstream knows the job by."""
        return self.upstream_id or self.id


def _from_row(row: object) -> Job:
    m = row._mapping  # type: ignore[attr-defined]
    return Job(
        m["id"],
        m["team_id"],
        m["reservation_id"],
        m["key_id"],
        m["endpoint"],
        m["status_path"],
        JobStatus(m["status"]),
        m["created_ms"],
        m["next_poll_ms"],
        m["hold_step"],
        m["hold_ceiling"],
        m["quiet_polls"],
        m["cancel_path"],
        m["waiting_pages"],
        m["cancelled_ms"],
        m["page_price"],
        m["page_limit"],
        m["upstream_id"],
        m["page_timeout_ms"],
    )


def insert_job(conn: Connection, job: Job) -> None:
    conn.execute(
        insert(jobs).values(
            team_id=job.team_id,
            id=job.id,
            reservation_id=job.reservation_id,
            key_id=job.key_id,
            endpoint=job.endpoint,
            status_path=job.status_path,
            status=job.status,
            created_ms=job.created_at,
            next_poll_ms=job.next_poll_at,
            hold_step=job.hold_step,
            hold_ceiling=job.hold_ceiling,
            quiet_polls=job.quiet_polls,
            cancel_path=job.cancel_path,
            page_price=job.page_price,
            page_limit=job.page_limit,
            upstream_id=job.upstream_id,
            page_timeout_ms=job.page_timeout_ms,
        )
    )


def get_job(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    return None if row is None else _from_row(row)


def get_by_upstream_id(conn: Connection, upstream_id: str) -> Job | None:
    """The job the upstream knows by this id, whatever the client was given."""
    query = select(jobs).where(
        (jobs.c.upstream_id == upstream_id)
        | ((jobs.c.id == upstream_id) & jobs.c.upstream_id.is_(None))
    )
    row = conn.execute(query).first()
    return None if row is None else _from_row(row)


def get_team_job(conn: Connection, team_id: str, job_id: str) -> Job | None:
    query = select(jobs).where(jobs.c.team_id == team_id, jobs.c.id == job_id)
    row = conn.execute(query).first()
    return None if row is None else _from_row(row)


def due_jobs(conn: Connection, now: Instant, limit: int) -> list[Job]:
    query = (
        select(jobs)
        .where(jobs.c.status.in_(FOLLOWED), jobs.c.next_poll_ms <= now)
        .order_by(jobs.c.next_poll_ms)
        .limit(limit)
    )
    return [_from_row(r) for r in conn.execute(query)]


def claim(conn: Connection, job: Job, next_poll: Instant) -> bool:
    """Take the job's next poll; False if another process took it first."""
    result = conn.execute(
        update(jobs)
        .where(
            jobs.c.team_id == job.team_id,
            jobs.c.id == job.id,
            jobs.c.next_poll_ms == job.next_poll_at,
            jobs.c.status.in_(FOLLOWED),
        )
        .values(next_poll_ms=next_poll)
    )
    return bool(result.rowcount)


def set_status(conn: Connection, team_id: str, job_id: str, status: JobStatus) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.team_id == team_id, jobs.c.id == job_id)
        .values(status=status, quiet_polls=0)
    )


def set_cancelled(conn: Connection, team_id: str, job_id: str, now: Instant) -> None:
    """Cancelling from `now`, unless it was already (the first cancel's instant stays)."""
    conn.execute(
        update(jobs)
        .where(jobs.c.team_id == team_id, jobs.c.id == job_id)
        .values(
            status=JobStatus.CANCELLING,
            quiet_polls=0,
            cancelled_ms=func.coalesce(jobs.c.cancelled_ms, now),
        )
    )


def set_quiet_polls(conn: Connection, team_id: str, job_id: str, polls: int) -> None:
    conn.execute(
        update(jobs).where(jobs.c.team_id == team_id, jobs.c.id == job_id).values(quiet_polls=polls)
    )


def set_waiting_pages(conn: Connection, team_id: str, job_id: str, pages: int) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.team_id == team_id, jobs.c.id == job_id)
        .values(waiting_pages=pages)
    )


def waiting_pages(conn: Connection, team_id: str) -> int:
    """Pages the team's followed jobs have found and not started, at their last reports."""
    query = select(func.coalesce(func.sum(jobs.c.waiting_pages), 0)).where(
        jobs.c.team_id == team_id, jobs.c.status.in_(FOLLOWED)
    )
    return int(conn.execute(query).scalar_one())


def active_of_team(conn: Connection, team_id: str, endpoint: str) -> list[tuple[str, str | None]]:
    """(job id, target URL) of the team's jobs still running, oldest first."""
    query = (
        select(jobs.c.id, reservations.c.target)
        .join(
            reservations,
            (reservations.c.team_id == jobs.c.team_id)
            & (reservations.c.id == jobs.c.reservation_id),
        )
        .where(
            jobs.c.team_id == team_id,
            jobs.c.status == JobStatus.ACTIVE,
            jobs.c.endpoint == endpoint,
        )
        .order_by(jobs.c.created_ms)
    )
    return [(r.id, r.target) for r in conn.execute(query)]
