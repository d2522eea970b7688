"""Whole-ledger consistency queries (ledger promise 5). Slow by design: they read everything."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, Table, and_, func, literal, or_, select

from creditgate.domain.grants import GRANT_KINDS
from creditgate.domain.instants import MS_PER_DAY, MS_PER_HOUR
from creditgate.storage.job_rows import JobStatus
from creditgate.storage.tables import (
    alerts_fired,
    api_keys,
    entries,
    events,
    grants,
    idempotency,
    jobs,
    processes,
    reservations,
    teams,
    usage_by_hour,
    usage_by_key,
    usage_by_key_day,
    usage_by_period,
    webhook_deliveries,
)

Row = tuple[object, ...]


def grant_mismatches(conn: Connection) -> list[Row]:
    """Grants whose `remaining` or `expired_amount` differ from the sum of their entries."""
    sums = (
        select(
            entries.c.team_id,
            entries.c.grant_id,
            func.sum(entries.c.amount).label("total"),
        )
        .where(entries.c.grant_id.is_not(None))
        .group_by(entries.c.team_id, entries.c.grant_id)
        .subquery()
    )
    expiry = (
        select(
            entries.c.team_id, entries.c.grant_id, (-func.sum(entries.c.amount)).label("expired")
        )
        .where(entries.c.kind.in_(("expiry", "expiry_reversal")))
        .group_by(entries.c.team_id, entries.c.grant_id)
        .subquery()
    )
    query = (
        select(
            grants.c.team_id,
            grants.c.id,
            grants.c.remaining,
            sums.c.total,
            grants.c.expired_amount,
            func.coalesce(expiry.c.expired, 0),
        )
        .select_from(
            grants.outerjoin(
                sums, (sums.c.team_id == grants.c.team_id) & (sums.c.grant_id == grants.c.id)
            ).outerjoin(
                expiry, (expiry.c.team_id == grants.c.team_id) & (expiry.c.grant_id == grants.c.id)
            )
        )
        .where(
            (func.coalesce(sums.c.total, 0) != grants.c.remaining)
            | (func.coalesce(expiry.c.expired, 0) != grants.c.expired_amount)
        )
    )
    return [tuple(r) for r in conn.execute(query)]


def overdrawn_grants(conn: Connection) -> list[Row]:
    """Grants below zero where nothing allowed it: no overage and no settlement charged them.

    (A settlement whose real cost exceeds its reservation is the one way below zero.)
    """
    settled_on_grant = (
        select(entries.c.grant_id)
        .where(
            entries.c.team_id == grants.c.team_id,
            entries.c.grant_id == grants.c.id,
            entries.c.reservation_id.is_not(None),
        )
        .exists()
    )
    query = (
        select(grants.c.team_id, grants.c.id, grants.c.remaining)
        .join(teams, teams.c.id == grants.c.team_id)
        .where(grants.c.remaining < 0, teams.c.allow_overage.is_(False), ~settled_on_grant)
    )
    return [tuple(r) for r in conn.execute(query)]


def orphan_entries(conn: Connection) -> list[Row]:
    """Entries that move credits on a grant that does not exist."""
    query = (
        select(entries.c.team_id, entries.c.movement_id, entries.c.line)
        .select_from(
            entries.outerjoin(
                grants,
                (grants.c.team_id == entries.c.team_id) & (grants.c.id == entries.c.grant_id),
            )
        )
        .where(entries.c.grant_id.is_not(None), grants.c.id.is_(None))
    )
    return [tuple(r) for r in conn.execute(query)]


def period_rollup_mismatches(conn: Connection) -> list[Row]:
    truth = (
        select(
            entries.c.team_id,
            entries.c.period_start_ms,
            (-func.sum(entries.c.amount)).label("credits"),
        )
        .where(entries.c.kind == "charge")
        .group_by(entries.c.team_id, entries.c.period_start_ms)
    )
    return _diff(conn, truth, usage_by_period, ("team_id", "period_start_ms"))


def key_rollup_mismatches(conn: Connection) -> list[Row]:
    truth = (
        select(
            entries.c.team_id,
            entries.c.period_start_ms,
            entries.c.key_id,
            (-func.sum(entries.c.amount)).label("credits"),
        )
        .where(entries.c.kind == "charge")
        .group_by(entries.c.team_id, entries.c.period_start_ms, entries.c.key_id)
    )
    return _diff(conn, truth, usage_by_key, ("team_id", "period_start_ms", "key_id"))


def hour_rollup_mismatches(conn: Connection) -> list[Row]:
    hour = (entries.c.occurred_ms - entries.c.occurred_ms % MS_PER_HOUR).label("hour_ms")
    truth = (
        select(entries.c.team_id, hour, (-func.sum(entries.c.amount)).label("credits"))
        .where(entries.c.kind == "charge")
        .group_by(entries.c.team_id, hour)
    )
    return _diff(conn, truth, usage_by_hour, ("team_id", "hour_ms"))


def key_day_rollup_mismatches(conn: Connection) -> list[Row]:
    """Per period, key and day: credits and the latest charge's time, against the entries."""
    day = (entries.c.occurred_ms - entries.c.occurred_ms % MS_PER_DAY).label("day_ms")
    truth = (
        select(
            entries.c.team_id,
            entries.c.period_start_ms,
            entries.c.key_id,
            day,
            (-func.sum(entries.c.amount)).label("credits"),
            func.max(entries.c.occurred_ms).label("last_ms"),
        )
        .where(entries.c.kind == "charge", entries.c.key_id.is_not(None))
        .group_by(entries.c.team_id, entries.c.period_start_ms, entries.c.key_id, day)
    )
    expected = {tuple(r[:4]): (int(r[4]), int(r[5])) for r in conn.execute(truth)}
    actual = {
        (r.team_id, r.period_start_ms, r.key_id, r.day_ms): (int(r.credits), int(r.last_ms))
        for r in conn.execute(select(usage_by_key_day))
    }
    out: list[Row] = []
    for k in sorted(set(expected) | set(actual), key=str):
        if expected.get(k) != actual.get(k):
            out.append((*k, expected.get(k, (0, 0)), actual.get(k, (0, 0))))
    return out


def _diff(conn: Connection, truth: Select[Any], table: Table, keys: tuple[str, ...]) -> list[Row]:
    """Rows where the rollup differs from the sum of entries, in either direction."""
    expected = {tuple(r[:-1]): int(r[-1]) for r in conn.execute(truth)}
    actual = {
        tuple(getattr(r, k) for k in keys): int(r.credits) for r in conn.execute(select(table))
    }
    out: list[Row] = []
    for k in sorted(set(expected) | set(actual), key=str):
        if expected.get(k, 0) != actual.get(k, 0):
            out.append((*k, expected.get(k, 0), actual.get(k, 0)))
    return out


def team_totals(conn: Connection) -> list[Row]:
    """Teams whose entries do not sum to the sum of their grants' remaining credits."""
    moved = {
        r[0]: int(r[1])
        for r in conn.execute(
            select(entries.c.team_id, func.sum(entries.c.amount)).group_by(entries.c.team_id)
        )
    }
    held = {
        r[0]: int(r[1])
        for r in conn.execute(
            select(grants.c.team_id, func.sum(grants.c.remaining)).group_by(grants.c.team_id)
        )
    }
    return [
        (t, moved.get(t, 0), held.get(t, 0))
        for t in sorted(set(moved) | set(held))
        if moved.get(t, 0) != held.get(t, 0)
    ]


def reservation_mismatches(conn: Connection) -> list[Row]:
    """Reservations whose `settled` differs from the charges that name them."""
    charged = (
        select(
            entries.c.team_id,
            entries.c.reservation_id,
            (-func.sum(entries.c.amount)).label("total"),
        )
        .where(entries.c.kind == "charge", entries.c.reservation_id.is_not(None))
        .group_by(entries.c.team_id, entries.c.reservation_id)
        .subquery()
    )
    total = func.coalesce(charged.c.total, 0)
    query = (
        select(reservations.c.team_id, reservations.c.id, reservations.c.settled, total)
        .select_from(
            reservations.outerjoin(
                charged,
                (charged.c.team_id == reservations.c.team_id)
                & (charged.c.reservation_id == reservations.c.id),
            )
        )
        .where(total != reservations.c.settled)
        .order_by(reservations.c.team_id, reservations.c.id)
    )
    return [tuple(r) for r in conn.execute(query)]


# --- each row as the code writes it, and the rows it names ------------------------------------

ENTRY_SIGNS = {  # the sign each kind of entry moves credits with
    "grant": "> 0",
    "charge": "<= 0",
    "expiry": "< 0",
    "expiry_reversal": "> 0",
}
RESERVATION_STATUSES = ("open", "settled", "released", "expired")


def _sign_ok(amount: int, sign: str) -> bool:
    return {"> 0": amount > 0, "< 0": amount < 0, "<= 0": amount <= 0}[sign]


def entry_kind_mismatches(conn: Connection) -> list[Row]:
    """Entries of an unknown kind, or whose amount has the wrong sign for their kind."""
    out: list[Row] = []
    kind, amount = entries.c.kind, entries.c.amount
    query = (
        select(entries.c.team_id, entries.c.movement_id, entries.c.line, kind, amount)
        .where(
            or_(
                kind.not_in(list(ENTRY_SIGNS)),
                and_(kind == "grant", amount <= 0),
                and_(kind == "charge", amount > 0),
                and_(kind == "expiry", amount >= 0),
                and_(kind == "expiry_reversal", amount <= 0),
            )
        )
        .order_by(entries.c.team_id, entries.c.movement_id, entries.c.line)
    )
    for team_id, movement_id, line, kind, amount in conn.execute(query):
        sign = ENTRY_SIGNS.get(kind)
        if sign is None:
            reason = f"kind {kind!r} is not one of {', '.join(ENTRY_SIGNS)}"
        elif not _sign_ok(int(amount), sign):
            reason = f"a {kind} entry must be {sign}"
        else:
            continue
        out.append((team_id, movement_id, line, kind, amount, reason))
    return out


def grant_shape_mismatches(conn: Connection) -> list[Row]:
    """Grants of an unknown kind, of no credits, or with a period when not plan credits (or
    without one when they are)."""
    out: list[Row] = []
    kind, period = grants.c.kind, grants.c.period_start_ms
    query = (
        select(grants.c.team_id, grants.c.id, kind, grants.c.amount, period)
        .where(
            or_(
                kind.not_in(GRANT_KINDS),
                grants.c.amount <= 0,
                and_(kind == "plan", period.is_(None)),
                and_(kind != "plan", period.is_not(None)),
            )
        )
        .order_by(grants.c.team_id, grants.c.id)
    )
    for team_id, grant_id, kind, amount, period_start in conn.execute(query):
        if kind not in GRANT_KINDS:
            reason = f"kind {kind!r} is not one of {', '.join(GRANT_KINDS)}"
        elif amount <= 0:
            reason = f"amount {amount} is not positive"
        elif (kind == "plan") != (period_start is not None):
            reason = (
                "plan credits without a period"
                if kind == "plan"
                else f"a {kind} grant with a period ({period_start})"
            )
        else:
            continue
        out.append((team_id, grant_id, reason))
    return out


def grant_amount_mismatches(conn: Connection) -> list[Row]:
    """Grants whose `amount` differs from the grant entry that brought their credits."""
    granted = (
        select(entries.c.team_id, entries.c.grant_id, func.sum(entries.c.amount).label("total"))
        .where(entries.c.kind == "grant")
        .group_by(entries.c.team_id, entries.c.grant_id)
        .subquery()
    )
    query = (
        select(grants.c.team_id, grants.c.id, grants.c.amount, func.coalesce(granted.c.total, 0))
        .select_from(
            grants.outerjoin(
                granted,
                (granted.c.team_id == grants.c.team_id) & (granted.c.grant_id == grants.c.id),
            )
        )
        .where(func.coalesce(granted.c.total, 0) != grants.c.amount)
        .order_by(grants.c.team_id, grants.c.id)
    )
    return [tuple(r) for r in conn.execute(query)]


def charges_without_reservation(conn: Connection) -> list[Row]:
    """Entries that name a reservation their team does not have."""
    query = (
        select(entries.c.team_id, entries.c.movement_id, entries.c.line, entries.c.reservation_id)
        .select_from(
            entries.outerjoin(
                reservations,
                (reservations.c.team_id == entries.c.team_id)
                & (reservations.c.id == entries.c.reservation_id),
            )
        )
        .where(entries.c.reservation_id.is_not(None), reservations.c.id.is_(None))
        .order_by(entries.c.team_id, entries.c.movement_id, entries.c.line)
    )
    return [tuple(r) for r in conn.execute(query)]


def reservation_state_mismatches(conn: Connection) -> list[Row]:
    """Reservations of an unknown status, or whose closing time contradicts it: an open one
    has none, a closed one has one, an expired one was closed no earlier than its expiry."""
    out: list[Row] = []
    status, closed = reservations.c.status, reservations.c.closed_ms
    query = (
        select(reservations.c.team_id, reservations.c.id, status, reservations.c.expires_ms, closed)
        .where(
            or_(
                status.not_in(RESERVATION_STATUSES),
                and_(status == "open", closed.is_not(None)),
                and_(status != "open", closed.is_(None)),
                and_(status == "expired", closed < reservations.c.expires_ms),
            )
        )
        .order_by(reservations.c.team_id, reservations.c.id)
    )
    for team_id, reservation_id, status, expires, closed in conn.execute(query):
        if status not in RESERVATION_STATUSES:
            reason = f"status {status!r} is not one of {', '.join(RESERVATION_STATUSES)}"
        elif status == "open" and closed is not None:
            reason = f"open but closed at {closed}"
        elif status != "open" and closed is None:
            reason = f"{status} but never closed (closed_ms is empty)"
        elif status == "expired" and closed < expires:
            reason = f"expired at {closed}, before its expiry {expires}"
        else:
            continue
        out.append((team_id, reservation_id, reason))
    return out


def reservation_amount_mismatches(conn: Connection) -> list[Row]:
    """Reservations that held no credits or expire no later than they were made. (A negative
    `settled` is a difference from its charges, which are never positive: checked there.)"""
    out: list[Row] = []
    query = (
        select(
            reservations.c.team_id,
            reservations.c.id,
            reservations.c.amount,
            reservations.c.created_ms,
            reservations.c.expires_ms,
        )
        .where(
            or_(
                reservations.c.amount <= 0,
                reservations.c.expires_ms <= reservations.c.created_ms,
            )
        )
        .order_by(reservations.c.team_id, reservations.c.id)
    )
    for team_id, reservation_id, amount, created, expires in conn.execute(query):
        if amount <= 0:
            reason = f"amount {amount} is not positive"
        elif expires <= created:
            reason = f"expires at {expires}, not after it was made ({created})"
        else:
            continue
        out.append((team_id, reservation_id, reason))
    return out


def _keys_not_of_team(conn: Connection, table: Table, ids: tuple[str, ...]) -> list[Row]:
    """(team, *ids, key) of the rows of `table` naming a key that is not a key of their team."""
    row_id = [table.c[name] for name in ids]
    query = (
        select(table.c.team_id, *row_id, table.c.key_id)
        .select_from(
            table.outerjoin(
                api_keys,
                (api_keys.c.id == table.c.key_id) & (api_keys.c.team_id == table.c.team_id),
            )
        )
        .where(table.c.key_id.is_not(None), api_keys.c.id.is_(None))
        .order_by(table.c.team_id, *row_id)
    )
    return [tuple(r) for r in conn.execute(query)]


def reservation_key_mismatches(conn: Connection) -> list[Row]:
    """Reservations whose key is not a key of their team."""
    return _keys_not_of_team(conn, reservations, ("id",))


def lease_mismatches(conn: Connection, lease: str) -> list[Row]:
    """Credit leases (reservations whose endpoint is `lease`) that no gateway process owns,
    so that no orphan sweep would ever give them back, or that name a job, which only a
    request's own hold pays for."""
    out: list[Row] = []
    query = (
        select(
            reservations.c.team_id, reservations.c.id, reservations.c.owner, reservations.c.job_id
        )
        .where(
            reservations.c.endpoint == lease,
            or_(reservations.c.owner.is_(None), reservations.c.job_id.is_not(None)),
        )
        .order_by(reservations.c.team_id, reservations.c.id)
    )
    for team_id, lease_id, owner, job_id in conn.execute(query):
        reason = "no gateway process owns it" if owner is None else f"it names job {job_id}"
        out.append((team_id, lease_id, reason))
    return out


def entry_key_mismatches(conn: Connection) -> list[Row]:
    """Entries naming a key that is not a key of their team (none, or another team's)."""
    return _keys_not_of_team(conn, entries, ("movement_id", "line"))


def job_status_mismatches(conn: Connection) -> list[Row]:
    """Jobs of an unknown status."""
    known = [s.value for s in JobStatus]
    query = (
        select(jobs.c.team_id, jobs.c.id, jobs.c.status)
        .where(jobs.c.status.not_in(known))
        .order_by(jobs.c.team_id, jobs.c.id)
    )
    return [(*tuple(r), ", ".join(known)) for r in conn.execute(query)]


def job_reservation_mismatches(conn: Connection) -> list[Row]:
    """Jobs whose reservation is missing from their team, is another key's or another job's,
    or is still open although the job is done."""
    out: list[Row] = []
    query = (
        select(
            jobs.c.team_id,
            jobs.c.id,
            jobs.c.status,
            jobs.c.key_id,
            jobs.c.reservation_id,
            reservations.c.id.label("found"),
            reservations.c.key_id.label("held_by"),
            reservations.c.job_id.label("held_for"),
            reservations.c.status.label("held_status"),
        )
        .select_from(
            jobs.outerjoin(
                reservations,
                (reservations.c.team_id == jobs.c.team_id)
                & (reservations.c.id == jobs.c.reservation_id),
            )
        )
        .where(
            or_(
                reservations.c.id.is_(None),
                reservations.c.key_id != jobs.c.key_id,
                reservations.c.job_id.is_(None),
                reservations.c.job_id != jobs.c.id,
                and_(jobs.c.status == JobStatus.DONE.value, reservations.c.status == "open"),
            )
        )
        .order_by(jobs.c.team_id, jobs.c.id)
    )
    for r in conn.execute(query):
        if r.found is None:
            reason = f"its reservation {r.reservation_id} does not exist in that team"
        elif r.held_by != r.key_id:
            reason = f"its reservation {r.reservation_id} is key {r.held_by}'s, not {r.key_id}'s"
        elif r.held_for != r.id:
            reason = f"its reservation {r.reservation_id} pays for job {r.held_for!r}"
        elif r.status == JobStatus.DONE and r.held_status == "open":
            reason = f"done, but its reservation {r.reservation_id} is still open"
        else:
            continue
        out.append((r.team_id, r.id, reason))
    return out


def job_hold_mismatches(conn: Connection) -> list[Row]:
    """Jobs with half a growing hold (a step without a ceiling or the reverse), a step or
    ceiling that is not positive, or a negative count of quiet polls."""
    out: list[Row] = []
    step, ceiling = jobs.c.hold_step, jobs.c.hold_ceiling
    query = (
        select(jobs.c.team_id, jobs.c.id, step, ceiling, jobs.c.quiet_polls)
        .where(
            or_(
                and_(step.is_(None), ceiling.is_not(None)),
                and_(step.is_not(None), ceiling.is_(None)),
                step <= 0,
                ceiling <= 0,
                jobs.c.quiet_polls < 0,
            )
        )
        .order_by(jobs.c.team_id, jobs.c.id)
    )
    for team_id, job_id, step, ceiling, quiet in conn.execute(query):
        if (step is None) != (ceiling is None) or (step is not None and min(step, ceiling) <= 0):
            reason = f"hold step {step} and ceiling {ceiling}: both positive or both empty"
        elif quiet < 0:
            reason = f"{quiet} quiet polls"
        else:
            continue
        out.append((team_id, job_id, reason))
    return out


def process_mismatches(conn: Connection) -> list[Row]:
    """Registered gateway processes without a pid or a host name."""
    query = (
        select(processes.c.id, processes.c.pid, processes.c.hostname)
        .where((processes.c.pid <= 0) | (processes.c.hostname == ""))
        .order_by(processes.c.id)
    )
    return [tuple(r) for r in conn.execute(query)]


def idempotency_mismatches(conn: Connection) -> list[Row]:
    """Idempotency records whose movement is neither an entry nor a reservation of their team."""
    moved = (
        select(entries.c.movement_id)
        .where(
            entries.c.team_id == idempotency.c.team_id,
            entries.c.movement_id == idempotency.c.movement_id,
        )
        .exists()
    )
    held = (
        select(reservations.c.id)
        .where(
            reservations.c.team_id == idempotency.c.team_id,
            reservations.c.id == idempotency.c.movement_id,
        )
        .exists()
    )
    query = (
        select(idempotency.c.team_id, idempotency.c.key, idempotency.c.movement_id)
        .where(~moved, ~held)
        .order_by(idempotency.c.team_id, idempotency.c.key)
    )
    return [tuple(r) for r in conn.execute(query)]


def event_numbering_mismatches(conn: Connection) -> list[Row]:
    """Teams whose last event number is not the count of their events (numbered 1..n)."""
    query = (
        select(teams.c.id, teams.c.event_seq, func.count(events.c.seq))
        .select_from(teams.outerjoin(events, events.c.team_id == teams.c.id))
        .group_by(teams.c.id, teams.c.event_seq)
        .having(
            (teams.c.event_seq != func.count(events.c.seq))
            | (teams.c.event_seq != func.coalesce(func.max(events.c.seq), 0))
        )
        .order_by(teams.c.id)
    )
    return [tuple(r) for r in conn.execute(query)]


def events_missing(conn: Connection) -> list[Row]:
    """Alerts fired and webhook deliveries that name an event their team does not have."""
    fired = select(
        literal("alert"),
        alerts_fired.c.team_id,
        alerts_fired.c.rule_id,
        alerts_fired.c.event_seq,
    ).where(
        ~select(events.c.seq)
        .where(
            events.c.team_id == alerts_fired.c.team_id,
            events.c.seq == alerts_fired.c.event_seq,
        )
        .exists()
    )
    sent = select(
        literal("delivery"),
        webhook_deliveries.c.team_id,
        webhook_deliveries.c.endpoint_id,
        webhook_deliveries.c.event_seq,
    ).where(
        ~select(events.c.seq)
        .where(
            events.c.team_id == webhook_deliveries.c.team_id,
            events.c.seq == webhook_deliveries.c.event_seq,
        )
        .exists()
    )
    rows = [tuple(r) for r in conn.execute(fired)] + [tuple(r) for r in conn.execute(sent)]
    return sorted(rows)
