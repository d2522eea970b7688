"""`creditgate verify`: every stored invariant holds (ledger promise 5).

Entries, grants, balances and rollups agree; reservations agree with their charges; jobs,
idempotency records and processes are what the code writes. Each check names every row that
breaks it. What changes legitimately between two writes is not checked: an open reservation may
have settled more than it held (a settlement past its hold), a followed job's reservation may
be closed until its next poll marks it done, and an open hold may name a process that has
just been forgotten until a sweep releases it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from creditgate.domain.leases import LEASE
from creditgate.storage import consistency as audit
from creditgate.storage.database import Database


@dataclass(frozen=True, slots=True)
class Difference:
    check: str
    detail: str


@dataclass(slots=True)
class Report:
    checks: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


CHECKS = (
    (
        "grant balances = sum of their entries",
        audit.grant_mismatches,
        "team {0} grant {1}: remaining {2} but entries sum to {3}; expired {4} but entries say {5}",
    ),
    (
        "team balances = sum of all entries",
        audit.team_totals,
        "team {0}: entries sum to {1} but grants hold {2}",
    ),
    (
        "no grant overdrawn without overage",
        audit.overdrawn_grants,
        "team {0} grant {1} is at {2} and the team does not allow overage",
    ),
    (
        "every entry's grant exists",
        audit.orphan_entries,
        "team {0} movement {1} line {2} names a grant that does not exist",
    ),
    (
        "per-period rollups = entries",
        audit.period_rollup_mismatches,
        "team {0} period {1}: entries say {2}, rollup says {3}",
    ),
    (
        "per-key rollups = entries",
        audit.key_rollup_mismatches,
        "team {0} period {1} key {2}: entries say {3}, rollup says {4}",
    ),
    (
        "per-hour rollups = entries",
        audit.hour_rollup_mismatches,
        "team {0} hour {1}: entries say {2}, rollup says {3}",
    ),
    (
        "per-key-per-day rollup = the charges it summarises",
        audit.key_day_rollup_mismatches,
        "team {0} period {1} key {2} day {3}: (credits, last charge) from entries {4}, "
        "rollup says {5}",
    ),
    (
        "grant amounts = their grant entries",
        audit.grant_amount_mismatches,
        "team {0} grant {1}: amount {2} but its grant entries add {3}",
    ),
    (
        "grants have a known kind, credits, and a period only for plan credits",
        audit.grant_shape_mismatches,
        "team {0} grant {1}: {2}",
    ),
    (
        "entries have a known kind and its sign",
        audit.entry_kind_mismatches,
        "team {0} movement {1} line {2}: {3} of {4} credits; {5}",
    ),
    (
        "every charge's reservation exists",
        audit.charges_without_reservation,
        "team {0} movement {1} line {2} charges reservation {3}, which this team does not have",
    ),
    (
        "reservations' settled = their charges",
        audit.reservation_mismatches,
        "team {0} reservation {1}: settled {2} but its charges sum to {3}",
    ),
    (
        "reservation statuses are known and closed ones have a closing time",
        audit.reservation_state_mismatches,
        "team {0} reservation {1}: {2}",
    ),
    (
        "reservations hold credits and expire after they are made",
        audit.reservation_amount_mismatches,
        "team {0} reservation {1}: {2}",
    ),
    (
        "every reservation's key is its team's",
        audit.reservation_key_mismatches,
        "team {0} reservation {1}: key {2} is not a key of this team",
    ),
    (
        "credit leases are a gateway process's and pay for no job",
        partial(audit.lease_mismatches, lease=LEASE),
        "team {0} lease {1}: {2}",
    ),
    (
        "every entry's key is its team's",
        audit.entry_key_mismatches,
        "team {0} movement {1} line {2}: key {3} is not a key of this team",
    ),
    (
        "job statuses are known",
        audit.job_status_mismatches,
        "team {0} job {1}: status {2!r} is not one of {3}",
    ),
    (
        "every job's reservation is its own, and closed once the job is done",
        audit.job_reservation_mismatches,
        "team {0} job {1}: {2}",
    ),
    (
        "growing holds have a step and a ceiling",
        audit.job_hold_mismatches,
        "team {0} job {1}: {2}",
    ),
    (
        "events are numbered 1 to n per team",
        audit.event_numbering_mismatches,
        "team {0}: its last event is numbered {1} but it has {2} events",
    ),
    (
        "alerts fired and webhook deliveries name an event of their team",
        audit.events_missing,
        "team {1} {0} {2}: event {3} does not exist",
    ),
    (
        "idempotency records name a movement of their team",
        audit.idempotency_mismatches,
        "team {0} idempotency key {1!r}: movement {2} is neither an entry nor a reservation "
        "of this team",
    ),
    (
        "gateway processes have a pid and a host",
        audit.process_mismatches,
        "process {0}: pid {1}, host {2!r}",
    ),
)


def verify(db: Database) -> Report:
    report = Report()
    with db.read() as conn:
        for name, query, template in CHECKS:
            report.checks.append(name)
            for row in query(conn):
                report.differences.append(Difference(name, template.format(*row)))
    return report
