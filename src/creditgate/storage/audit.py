"""Whole-ledger consistency queries (ledger promise 5). Slow by design: they read everything."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, Table, func, select

from creditgate.domain.instants import MS_PER_HOUR
from creditgate.storage.tables import (
    entries,
    grants,
    reservations,
    teams,
    usage_by_hour,
    usage_by_key,
    usage_by_period,
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
    charged = {
        (r[0], r[1]): int(r[2])
        for r in conn.execute(
            select(entries.c.team_id, entries.c.reservation_id, -func.sum(entries.c.amount))
            .where(entries.c.kind == "charge", entries.c.reservation_id.is_not(None))
            .group_by(entries.c.team_id, entries.c.reservation_id)
        )
    }
    out: list[Row] = []
    for row in conn.execute(
        select(reservations.c.team_id, reservations.c.id, reservations.c.settled)
    ):
        if charged.get((row.team_id, row.id), 0) != row.settled:
            out.append((row.team_id, row.id, row.settled, charged.get((row.team_id, row.id), 0)))
    return out
