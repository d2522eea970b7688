"""Loading a team's book under its lock, and writing what its operations changed, in a fixed
handful of hand-written statements whatever the number of operations.

Lock order: teams are locked in id order (ledger.py sorts them), so two batches never wait on
each other in a cycle. On PostgreSQL the lock is the team row's (SELECT ... FOR UPDATE); on
SQLite the transaction began with BEGIN IMMEDIATE and already holds the database's write lock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from creditgate.domain.alerts import AlertRule, RuleKind, TopUpRule, cap_rule_id
from creditgate.domain.book import Book, Changes, HoldTotals, Record, Watch
from creditgate.domain.errors import NotFound
from creditgate.domain.grants import GrantState
from creditgate.domain.instants import Instant
from creditgate.domain.plans import Plan
from creditgate.domain.reservations import Reservation
from creditgate.domain.teams import ApiKey, Team
from creditgate.storage.tx import Params, Tx, in_list

_TEAM = """
SELECT t.id, t.name, t.plan_id, t.anchor_ms, t.suspended, t.allow_overage, t.created_ms,
       t.granted_through_ms, t.next_rollover_ms, t.last_charge_ms,
       p.credits, p.interval, p.concurrency, p.scrape_rpm, p.crawl_rpm, t.event_seq
FROM teams t JOIN plans p ON p.id = t.plan_id WHERE t.id = :team"""
# The grants a charge at or after :since may spend, and those whose expiry is still to be
# recorded: not every period's grant the team ever had (a read bounded by what is live).
_GRANTS = """
SELECT id, kind, starts_ms, expires_ms, remaining, expired_amount, expired_ms, amount
FROM grants WHERE team_id = :team AND (expired_ms IS NULL OR expires_ms > :since)
ORDER BY starts_ms"""
_TOPUPS = """
SELECT id, below, credits, expires_days, max_per_period, created_ms, period_start_ms, granted
FROM topup_rules WHERE team_id = :team ORDER BY created_ms, id"""
_RULES = """
SELECT id, key_id, kind, threshold, created_ms, fired_period_ms
FROM alert_rules WHERE team_id = :team
ORDER BY CASE WHEN key_id IS NULL THEN 0 ELSE 1 END, kind, threshold, id"""
# The current period's usage (and any later one's, dated a few minutes ahead).
_PERIOD_USED = """
SELECT period_start_ms, credits FROM usage_by_period
WHERE team_id = :team
  AND period_start_ms >= COALESCE((SELECT granted_through_ms FROM teams WHERE id = :team), 0)"""
_HOLDS = """
SELECT key_id,
       SUM(CASE WHEN expires_ms > :now AND amount > settled THEN amount - settled ELSE 0 END),
       SUM(CASE WHEN expires_ms > :now THEN slots ELSE 0 END),
       SUM(CASE WHEN expires_ms <= :now THEN 1 ELSE 0 END)
FROM reservations WHERE team_id = :team AND status = 'open' GROUP BY key_id"""
_RESERVATION_COLUMNS = """id, team_id, key_id, amount, settled, status, endpoint, api_version,
       job_id, target, created_ms, expires_ms, closed_ms, owner, slots"""
_EXPIRED = f"""
SELECT {_RESERVATION_COLUMNS} FROM reservations
WHERE team_id = :team AND status = 'open' AND expires_ms <= :now"""


@dataclass(frozen=True, slots=True)
class Wants:
    """What a team's operations in a batch will read, so it is loaded up front."""

    keys: Collection[str] = ()
    reservations: Collection[str] = ()
    idempotency: Collection[str] = ()
    # The earliest instant an operation charges at, when before now (a late charge): the
    # grants active then are read too. None: now.
    since: Instant | None = None


def teams_of_reservations(tx: Tx, ids: Collection[str]) -> dict[str, str]:
    """reservation id -> team id (a reservation never changes team: read before the lock)."""
    if not ids:
        return {}
    params: Params = {}
    sql = f"SELECT id, team_id FROM reservations WHERE id IN ({in_list('r', list(ids), params)})"
    return {r[0]: r[1] for r in tx.rows(sql, params)}


def load(tx: Tx, team_id: str, now: Instant, wants: Wants, *, lock: bool = True) -> Book:
    """Lock the team and read its book: team, plan, grants, open holds, and what `wants` names
    (reservations with their keys). `lock=False`: a read, for an answer that writes nothing.
    The statements go together (one round trip on PostgreSQL), the lock first. What is read is
    bounded by what is open or live (grants, open holds, the current period's usage), never by
    the team's past: tests/storage/test_history_reads.py counts it."""
    since = now if wants.since is None else min(wants.since, now)
    team_sql = _TEAM + (" FOR UPDATE OF t" if lock and tx.postgres else "")
    statements: list[tuple[str, Params]] = [
        (team_sql, {"team": team_id}),
        (_GRANTS, {"team": team_id, "since": since}),
        (_HOLDS, {"team": team_id, "now": now}),
        _keys_sql(team_id, wants),
        _reservations_sql(team_id, wants.reservations),
        (_RULES, {"team": team_id}),
        (_PERIOD_USED, {"team": team_id}),
        (_EXPIRED, {"team": team_id, "now": now}),
        (_TOPUPS, {"team": team_id}),
        *_records_sql(team_id, wants.idempotency),
    ]
    (
        found,
        grant_rows,
        hold_rows,
        key_rows,
        held_rows,
        rule_rows,
        used_rows,
        expired_rows,
        topup_rows,
        *record_rows,
    ) = tx.rows_of(statements)
    if not found:
        raise NotFound(f"Team {team_id} not found", teamId=team_id)
    team, plan = _team_and_plan(found[0])
    keys, usage, cap_fired = _keys(team_id, key_rows)
    watch = Watch(
        rules=[
            (AlertRule(r[0], team_id, r[1], RuleKind(r[2]), int(r[3]), r[4]), r[5])
            for r in rule_rows
        ],
        cap_fired=cap_fired,
        period_used={r[0]: int(r[1]) for r in used_rows},
        event_seq=int(found[0][15]),
        topups=[
            (TopUpRule(r[0], team_id, int(r[1]), int(r[2]), r[3], int(r[4]), r[5]), r[6], int(r[7]))
            for r in topup_rows
        ],
    )
    return Book(
        team,
        plan,
        now,
        [GrantState(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in grant_rows],
        _holds(hold_rows),
        keys=keys,
        key_usage=usage,
        reservations={r[0]: reservation_from(r) for r in held_rows},
        seen={r[0]: Record(r[1], r[2], r[3]) for rows in record_rows for r in rows},
        watch=watch,
        expired=[reservation_from(r) for r in expired_rows],
    )


def _team_and_plan(r: Any) -> tuple[Team, Plan]:
    team = Team(
        id=r[0],
        name=r[1],
        plan_id=r[2],
        anchor=r[3],
        suspended=bool(r[4]),
        allow_overage=bool(r[5]),
        created_at=r[6],
        granted_through=r[7],
        next_rollover=r[8],
        last_charge_at=r[9],
    )
    plan = Plan(r[2], r[10], r[11], r[12], r[13], r[14])
    return team, plan


def _holds(rows: list[Any]) -> HoldTotals:
    by_key: dict[str, int] = {}
    held = running = expired = 0
    for key_id, holding, open_, past in rows:
        by_key[key_id] = int(holding)
        held += int(holding)
        running += int(open_)
        expired += int(past)
    return HoldTotals(held, by_key, running, expired)


def _keys_sql(team_id: str, wants: Wants) -> tuple[str, Params]:
    """The keys named, and the keys of the reservations named; with every period's usage of
    those with a cap or an alert rule (only those read it). No key named: none found.
    A rotated key's usage is its whole rotation chain's (same lineage_id): a rotation never
    gives a key a fresh cap (issue #11)."""
    params: Params = {"team": team_id}
    named = in_list("k", list(wants.keys), params) if wants.keys else "NULL"
    held = in_list("h", list(wants.reservations), params) if wants.reservations else "NULL"
    sql = f"""
SELECT k.id, k.name, k.hint, k.cap, k.created_ms, k.revoked_ms, u.period_start_ms, u.credits,
       k.cap_fired_period_ms, k.expires_ms
FROM api_keys k LEFT JOIN api_keys s
  ON s.team_id = k.team_id AND (s.id = k.id OR s.lineage_id = k.lineage_id)
LEFT JOIN usage_by_key u
  ON u.team_id = k.team_id AND u.key_id = s.id AND (k.cap IS NOT NULL OR EXISTS (
     SELECT 1 FROM alert_rules a WHERE a.team_id = k.team_id AND a.key_id = k.id))
WHERE k.team_id = :team AND (k.id IN ({named}) OR k.id IN (
  SELECT r.key_id FROM reservations r WHERE r.team_id = :team AND r.id IN ({held})))"""
    return sql, params


def _keys(
    team_id: str, rows: list[Any]
) -> tuple[dict[str, ApiKey], dict[tuple[str, Instant], int], dict[str, Instant | None]]:
    keys: dict[str, ApiKey] = {}
    usage: dict[tuple[str, Instant], int] = {}
    cap_fired: dict[str, Instant | None] = {}
    for r in rows:
        keys[r[0]] = ApiKey(r[0], team_id, r[1], r[2], r[3], r[4], r[5], expires_at=r[9])
        cap_fired[r[0]] = r[8]
        if r[6] is not None:  # one row per key of the chain and period: summed
            usage[(r[0], r[6])] = usage.get((r[0], r[6]), 0) + int(r[7])
    return keys, usage, cap_fired


def _reservations_sql(team_id: str, ids: Collection[str]) -> tuple[str, Params]:
    params: Params = {"team": team_id}
    listed = in_list("r", list(ids), params) if ids else "NULL"
    sql = (
        f"SELECT {_RESERVATION_COLUMNS} FROM reservations "
        f"WHERE team_id = :team AND id IN ({listed})"
    )
    return sql, params


def reservation_from(r: Any) -> Reservation:
    return Reservation(*r)


def _records_sql(team_id: str, keys: Collection[str]) -> list[tuple[str, Params]]:
    wanted = list(keys)
    statements = []
    for start in range(0, len(wanted), 500):
        params: Params = {"team": team_id}
        listed = in_list("i", wanted[start : start + 500], params)
        sql = (
            "SELECT key, request_hash, movement_id, response FROM idempotency "
            f"WHERE team_id = :team AND key IN ({listed})"
        )
        statements.append((sql, params))
    return statements


# --- writing ---------------------------------------------------------------------------------

_INSERT_GRANT = """
INSERT INTO grants (team_id, id, kind, amount, remaining, expired_amount, starts_ms, expires_ms,
                    period_start_ms, note, created_ms, expired_ms)
VALUES (:team, :id, :kind, :amount, :remaining, :expired_amount, :starts, :expires, :period,
        :note, :created, :expired)"""
_MOVE_GRANT = """
UPDATE grants SET remaining = remaining + :dr, expired_amount = expired_amount + :de,
                  amount = amount + :da, expired_ms = COALESCE(:expired, expired_ms)
WHERE team_id = :team AND id = :id"""
_INSERT_LINE = """
INSERT INTO entries (team_id, movement_id, line, kind, amount, grant_id, key_id, period_start_ms,
                     endpoint, api_version, job_id, target, note, reservation_id, occurred_ms,
                     recorded_ms)
VALUES (:team, :movement, :line, :kind, :amount, :grant, :key, :period, :endpoint, :version,
        :job, :target, :note, :reservation, :occurred, :recorded)"""
_ADD_PERIOD = """
INSERT INTO usage_by_period (team_id, period_start_ms, credits) VALUES (:team, :period, :credits)
ON CONFLICT (team_id, period_start_ms)
DO UPDATE SET credits = usage_by_period.credits + excluded.credits"""
_ADD_KEY = """
INSERT INTO usage_by_key (team_id, period_start_ms, key_id, credits)
VALUES (:team, :period, :key, :credits)
ON CONFLICT (team_id, period_start_ms, key_id)
DO UPDATE SET credits = usage_by_key.credits + excluded.credits"""
_ADD_HOUR = """
INSERT INTO usage_by_hour (team_id, hour_ms, credits) VALUES (:team, :hour, :credits)
ON CONFLICT (team_id, hour_ms) DO UPDATE SET credits = usage_by_hour.credits + excluded.credits"""
_ADD_KEY_DAY = """
INSERT INTO usage_by_key_day (team_id, period_start_ms, key_id, day_ms, credits, last_ms)
VALUES (:team, :period, :key, :day, :credits, :last)
ON CONFLICT (team_id, period_start_ms, key_id, day_ms)
DO UPDATE SET credits = usage_by_key_day.credits + excluded.credits,
              last_ms = CASE WHEN excluded.last_ms > usage_by_key_day.last_ms
                             THEN excluded.last_ms ELSE usage_by_key_day.last_ms END"""
_EXPIRE_HOLDS = """
UPDATE reservations SET status = 'expired', closed_ms = :now
WHERE team_id = :team AND status = 'open' AND expires_ms <= :now"""
_INSERT_HOLD = f"""
INSERT INTO reservations ({_RESERVATION_COLUMNS})
VALUES (:id, :team, :key, :amount, :settled, :status, :endpoint, :version, :job, :target,
        :created, :expires, :closed, :owner, :slots)"""
_CHANGE_HOLD = """
UPDATE reservations SET amount = :amount, settled = :settled, status = :status,
                        closed_ms = :closed, job_id = :job, owner = :owner,
                        expires_ms = :expires, slots = :slots
WHERE team_id = :team AND id = :id"""
_REMEMBER = """
INSERT INTO idempotency (team_id, key, request_hash, movement_id, response, created_ms)
VALUES (:team, :key, :hash, :movement, :response, :now)"""
_TEAM_COLUMNS = {
    "granted_through": "granted_through_ms",
    "next_rollover": "next_rollover_ms",
    "last_charge": "last_charge_ms",
    "event_seq": "event_seq",
}
_INSERT_EVENT = """
INSERT INTO events (team_id, seq, id, type, payload, created_ms)
VALUES (:team, :seq, :id, :type, :payload, :now)"""
# The outbox: a delivery for each endpoint that wants the event, in the event's transaction.
_FAN_OUT = """
INSERT INTO webhook_deliveries (endpoint_id, team_id, event_seq, status, attempts,
                                next_attempt_ms, created_ms)
SELECT e.id, CAST(:team AS VARCHAR(36)), CAST(:seq AS BIGINT), 'pending', 0,
       CAST(:now AS BIGINT), CAST(:now AS BIGINT)
FROM webhook_endpoints e
WHERE (e.team_id = CAST(:team AS VARCHAR(36)) OR e.team_id IS NULL) AND e.disabled_ms IS NULL
  AND (e.event_types IS NULL
       OR ',' || e.event_types || ',' LIKE '%,' || CAST(:type AS VARCHAR(64)) || ',%')"""
_INSERT_FIRED = """
INSERT INTO alerts_fired (team_id, rule_id, period_start_ms, fired_ms, event_seq)
VALUES (:team, :rule, :period, :now, :seq)"""
_RULE_FIRED = """
UPDATE alert_rules SET fired_period_ms = :period WHERE team_id = :team AND id = :rule"""
_TOPPED_UP = """
UPDATE topup_rules SET period_start_ms = :period, granted = :granted
WHERE team_id = :team AND id = :rule"""
_CAP_FIRED = """
UPDATE api_keys SET cap_fired_period_ms = :period WHERE team_id = :team AND id = :key"""


def save(tx: Tx, book: Book) -> None:
    """Write everything the book's operations changed: a statement per kind of change, all
    sent together (one round trip on PostgreSQL)."""
    team, now, changes = book.team.id, book.now, book.changes
    out: Writes = []
    _save_grants(out, book, changes)
    _many(
        out,
        _INSERT_LINE,
        (
            {
                "team": team,
                "movement": line.movement_id,
                "line": line.line,
                "kind": line.kind.value,
                "amount": line.amount,
                "grant": line.grant_id,
                "key": line.key_id,
                "period": line.period_start,
                "endpoint": line.details.endpoint,
                "version": line.details.api_version,
                "job": line.details.job_id,
                "target": line.details.target,
                "note": line.note,
                "reservation": line.reservation_id,
                "occurred": line.occurred_at,
                "recorded": line.recorded_at,
            }
            for line in changes.lines
        ),
    )
    _save_usage(out, team, changes)
    _save_holds(out, team, now, changes)
    _many(
        out,
        _REMEMBER,
        (
            {
                "team": team,
                "key": key,
                "hash": r.request_hash,
                "movement": r.movement_id,
                "response": r.response,
                "now": now,
            }
            for key, r in changes.remembered
        ),
    )
    _save_events(out, team, now, changes)
    if changes.team or changes.plan_id:
        columns: dict[str, int | str | None] = {
            _TEAM_COLUMNS[name]: value for name, value in changes.team.items()
        }
        if changes.plan_id:
            columns["plan_id"] = changes.plan_id
        assignments = ", ".join(f"{column} = :{column}" for column in sorted(columns))
        out.append(
            (f"UPDATE teams SET {assignments} WHERE id = :team", [{**columns, "team": team}])
        )
    tx.write_all(out)
    book.changes = Changes()


Writes = list[tuple[str, list[Params]]]


def _many(out: Writes, sql: str, seq: Iterable[Params]) -> None:
    rows = list(seq)
    if rows:
        out.append((sql, rows))


def _save_events(out: Writes, team: str, now: Instant, changes: Changes) -> None:
    events = [
        {
            "team": team,
            "seq": e.seq,
            "id": e.id,
            "type": str(e.type),
            "payload": e.payload,
            "now": now,
        }
        for e in changes.events
    ]
    _many(out, _INSERT_EVENT, events)
    _many(
        out,
        _FAN_OUT,
        ({"team": team, "seq": e.seq, "type": str(e.type), "now": now} for e in changes.events),
    )
    fired = [
        {"team": team, "rule": f.rule_id, "period": f.period_start, "now": now, "seq": f.event_seq}
        for f in changes.fired
    ]
    _many(out, _INSERT_FIRED, fired)
    rules, caps = [], []
    for f in changes.fired:
        key_id = f.rule_id.removeprefix("cap:")
        if f.rule_id == cap_rule_id(key_id):
            caps.append({"team": team, "period": f.period_start, "key": key_id})
        else:
            rules.append({"team": team, "period": f.period_start, "rule": f.rule_id})
    _many(out, _RULE_FIRED, rules)
    _many(out, _CAP_FIRED, caps)
    _many(
        out,
        _TOPPED_UP,
        (
            {"team": team, "rule": rule, "period": period, "granted": granted}
            for rule, (period, granted) in changes.topups.items()
        ),
    )


def _save_grants(out: Writes, book: Book, changes: Changes) -> None:
    new = {g.id for g in changes.grants}
    rows = []
    for g in changes.grants:
        state = book.grants[g.id]  # its state after this batch's charges and expiries
        rows.append(
            {
                "team": g.team_id,
                "id": g.id,
                "kind": g.kind,
                "amount": g.amount,
                "remaining": state.remaining,
                "expired_amount": state.expired_amount,
                "starts": g.starts_at,
                "expires": g.expires_at,
                "period": g.period_start,
                "note": g.note,
                "created": g.created_at,
                "expired": state.expired_at,
            }
        )
    _many(out, _INSERT_GRANT, rows)
    moved = (set(changes.grant_deltas) | set(changes.grants_expired)) - new
    _many(
        out,
        _MOVE_GRANT,
        (
            {
                "team": book.team.id,
                "id": grant_id,
                "dr": changes.grant_deltas.get(grant_id, (0, 0, 0))[0],
                "de": changes.grant_deltas.get(grant_id, (0, 0, 0))[1],
                "da": changes.grant_deltas.get(grant_id, (0, 0, 0))[2],
                "expired": changes.grants_expired.get(grant_id),
            }
            for grant_id in sorted(moved)
        ),
    )


def _save_usage(out: Writes, team: str, changes: Changes) -> None:
    _many(
        out,
        _ADD_PERIOD,
        ({"team": team, "period": p, "credits": c} for p, c in changes.per_period.items()),
    )
    _many(
        out,
        _ADD_KEY,
        (
            {"team": team, "period": p, "key": k, "credits": c}
            for (p, k), c in changes.per_key.items()
        ),
    )
    _many(
        out,
        _ADD_KEY_DAY,
        (
            {"team": team, "period": p, "key": k, "day": d, "credits": c, "last": last}
            for (p, k, d), (c, last) in changes.per_key_day.items()
        ),
    )
    _many(
        out,
        _ADD_HOUR,
        ({"team": team, "hour": h, "credits": c} for h, c in changes.per_hour.items()),
    )


def _hold_row(r: Reservation) -> Params:
    return {
        "id": r.id,
        "team": r.team_id,
        "key": r.key_id,
        "amount": r.amount,
        "settled": r.settled,
        "status": str(r.status),
        "endpoint": r.endpoint,
        "version": r.api_version,
        "job": r.job_id,
        "target": r.target,
        "created": r.created_at,
        "expires": r.expires_at,
        "closed": r.closed_at,
        "owner": r.owner,
        "slots": r.slots,
    }


def _save_holds(out: Writes, team: str, now: Instant, changes: Changes) -> None:
    if changes.expire_holds:
        out.append((_EXPIRE_HOLDS, [{"team": team, "now": now}]))
    _many(out, _INSERT_HOLD, (_hold_row(r) for r in changes.new_holds))
    _many(
        out,
        _CHANGE_HOLD,
        (
            {k: v for k, v in _hold_row(r).items() if k in _CHANGED_HOLD_FIELDS}
            for r in changes.holds.values()
        ),
    )


_CHANGED_HOLD_FIELDS = {
    "team",
    "id",
    "amount",
    "settled",
    "status",
    "closed",
    "job",
    "owner",
    "expires",
    "slots",  # a queued start's hold takes its slots when it starts (TakeSlots)
}


# --- finding what an operation names, before the lock ---------------------------------------

_KEY_COLUMNS = "k.id, k.team_id, k.name, k.hint, k.cap, k.created_ms, k.revoked_ms"


def key_by_hash(tx: Tx, key_hash: str) -> ApiKey | None:
    sql = f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.key_hash = :hash"
    found = tx.rows(sql, {"hash": key_hash})
    return ApiKey(*found[0]) if found else None


def key_by_id(tx: Tx, key_id: str) -> ApiKey | None:
    sql = f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE k.id = :id"
    found = tx.rows(sql, {"id": key_id})
    return ApiKey(*found[0]) if found else None
