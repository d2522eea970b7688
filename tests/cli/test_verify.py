"""`creditgate verify` checks every stored invariant: each check is proved by tampering with a
ledger that holds one of everything (raw SQL, as a bug or a hand edit would) and reading the
exact difference it names, with a non-zero exit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from creditgate.cli import main
from creditgate.domain.book import Details
from creditgate.services import audit, jobs, ledger, processes, reservations, teams
from creditgate.services import keys as key_service
from creditgate.services.leases import Draw, TakeLease
from creditgate.services.ledger import ChargeRequest, GrantRequest
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from tests.conftest import START

LATER = START + 2_000  # past the short reservation's time-to-live


def build(db: Database) -> dict[str, Any]:
    """A ledger with one of each row `verify` reads, including the states that are legitimate
    although they look odd: an open reservation that settled more than it held, a followed job
    whose reservation is already closed, an open hold whose process is gone."""
    ids: dict[str, Any] = {"period": START, "hour": START}
    team = teams.create_team(db, "acme", START, plan_id="hobby")
    ids["team"] = team.id
    key = key_service.create_key(db, team.id, START, name="main").key
    ids["key"] = key.id
    ids["key2"] = key_service.create_key(db, team.id, START, name="spare").key.id
    ids["pack"] = ledger.grant(db, GrantRequest(team.id, 100, idempotency_key="grant-1"), START).id
    ids["charge"] = ledger.charge(
        db, ChargeRequest(key.id, 12, idempotency_key="charge-1"), START
    ).id

    def reserve(credits: int, ttl_ms: int = 3_600_000, owner: str | None = None) -> str:
        request = ReserveRequest(key.id, credits, ttl_ms=ttl_ms, idempotency_key=f"hold-{credits}")
        return reservations.reserve(db, request, START, owner=owner).id

    ids["expired"] = reserve(5, ttl_ms=1_000)
    ids["hold"] = reserve(10)
    reservations.settle(db, ids["hold"], 3, LATER, final=False)
    ids["past_hold"] = reserve(4)  # settles 8 of 4: legitimate, the overage is reported
    reservations.settle(db, ids["past_hold"], 8, LATER, final=False)
    ids["released"] = reserve(6)
    reservations.release(db, ids["released"], LATER)
    reserve(7, owner="a-process-that-is-gone")

    def job(name: str, credits: int, step: int | None = None) -> jobs.Job:
        held = reserve(credits)
        new = jobs.NewJob(
            name, team.id, held, key.id, "crawl", f"/v2/crawl/{name}", None, step, step and 50
        )
        ids[name], ids[f"{name}_hold"] = name, held
        return jobs.open_job(db, new, LATER, 1_000)

    job("job", 20, step=10)
    job("job2", 21)
    reservations.release(db, ids["job2_hold"], LATER)  # closed; the next poll marks it done
    done = job("done", 22)
    assert jobs.apply_report(db, done, 2, "completed", LATER) is jobs.Next.DONE
    processes.beat(db, "proc-1", LATER)
    lease = ledger.run(db, TakeLease(key, 8, 1, 1, LATER, owner="proc-1", max_open=10))
    ids["lease"] = lease.id
    drawn = Draw(lease.id, team.id, 0, LATER, Details("scrape", "v2", "scrape-1", None))
    ledger.run(db, drawn)  # 0 credits: the other cases' sums stay as they are

    other = teams.create_team(db, "spender", START, plan_id="free", allow_overage=True)
    ids["other_team"] = other.id
    other_key = key_service.create_key(db, other.id, START).key
    ids["other_key"] = other_key.id
    ledger.charge(db, ChargeRequest(other_key.id, 600), START)
    with db.read() as conn:
        rows = conn.execute(
            text("SELECT id, kind FROM grants WHERE team_id = :t"), {"t": team.id}
        ).all()
        ids["plan_grant"] = next(r.id for r in rows if r.kind == "plan")
        ids["other_grant"] = conn.execute(
            text("SELECT id FROM grants WHERE team_id = :t"), {"t": other.id}
        ).scalar_one()
    return ids


def verify_json(url: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["verify", "--json", "--database-url", url])
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.output
    parsed: dict[str, Any] = json.loads(lines[0])
    return result.exit_code, parsed


def entry(movement: str, kind: str, amount: int, **columns: object) -> str:
    """An INSERT of one entry line in the team's current period, at its first hour."""
    values = {
        "team_id": ":team",
        "movement_id": f"'{movement}'",
        "line": "0",
        "kind": f"'{kind}'",
        "amount": str(amount),
        "occurred_ms": ":hour",
        "recorded_ms": ":hour",
        **{k: str(v) for k, v in columns.items()},
    }
    return f"INSERT INTO entries ({', '.join(values)}) VALUES ({', '.join(values.values())})"


@dataclass(frozen=True)
class Case:
    statements: tuple[str, ...]
    differences: tuple[tuple[str, str], ...]  # (check, detail), details formatted with the ids


CASES: dict[str, Case] = {
    "grant balances": Case(
        ("UPDATE grants SET expired_amount = 7 WHERE id = :pack",),
        (
            (
                "grant balances = sum of their entries",
                "team {team} grant {pack}: remaining 100 but entries sum to 100; "
                "expired 7 but entries say 0",
            ),
        ),
    ),
    "team balances": Case(
        (entry("free-credits", "grant", 5),),
        (
            (
                "team balances = sum of all entries",
                "team {team}: entries sum to 3080 but grants hold 3075",
            ),
        ),
    ),
    "overdrawn grant": Case(
        ("UPDATE teams SET allow_overage = :false WHERE id = :other_team",),
        (
            (
                "no grant overdrawn without overage",
                "team {other_team} grant {other_grant} is at -100 and the team does not allow "
                "overage",
            ),
        ),
    ),
    "entry on a missing grant": Case(
        (entry("lost", "charge", 0, grant_id="'ghost'", key_id=":key", period_start_ms=":period"),),
        (
            (
                "every entry's grant exists",
                "team {team} movement lost line 0 names a grant that does not exist",
            ),
        ),
    ),
    "period rollup": Case(
        ("UPDATE usage_by_period SET credits = credits + 1 WHERE team_id = :team",),
        (
            (
                "per-period rollups = entries",
                "team {team} period {period}: entries say 25, rollup says 26",
            ),
        ),
    ),
    "key rollup": Case(
        ("UPDATE usage_by_key SET credits = credits + 1 WHERE key_id = :key",),
        (
            (
                "per-key rollups = entries",
                "team {team} period {period} key {key}: entries say 25, rollup says 26",
            ),
        ),
    ),
    "hour rollup": Case(
        ("UPDATE usage_by_hour SET credits = credits - 1 WHERE team_id = :team",),
        (
            (
                "per-hour rollups = entries",
                "team {team} hour {hour}: entries say 25, rollup says 24",
            ),
        ),
    ),
    "key-day rollup": Case(
        ("UPDATE usage_by_key_day SET credits = credits + 1 WHERE key_id = :key",),
        (
            (
                "per-key-per-day rollup = the charges it summarises",
                "team {team} period {period} key {key} day {period}: (credits, last charge) "
                "from entries (25, {later}), rollup says (26, {later})",
            ),
        ),
    ),
    "grant amount": Case(
        ("UPDATE grants SET amount = 101 WHERE id = :pack",),
        (
            (
                "grant amounts = their grant entries",
                "team {team} grant {pack}: amount 101 but its grant entries add 100",
            ),
        ),
    ),
    "grant shape": Case(
        (
            "UPDATE grants SET kind = 'gift' WHERE id = :pack",
            "UPDATE grants SET period_start_ms = NULL WHERE id = :plan_grant",
        ),
        tuple(
            ("grants have a known kind, credits, and a period only for plan credits", detail)
            for detail in (
                "team {team} grant {pack}: kind 'gift' is not one of plan, pack, coupon, topup",
                "team {team} grant {plan_grant}: plan credits without a period",
            )
        ),
    ),
    "entry kind and sign": Case(
        (entry("bonus", "bonus", 0), entry("empty-grant", "grant", 0)),
        tuple(
            ("entries have a known kind and its sign", detail)
            for detail in (
                "team {team} movement bonus line 0: bonus of 0 credits; kind 'bonus' is not one "
                "of grant, charge, expiry, expiry_reversal",
                "team {team} movement empty-grant line 0: grant of 0 credits; a grant entry must "
                "be > 0",
            )
        ),
    ),
    "charge of a missing reservation": Case(
        (
            entry(
                "unheld",
                "charge",
                0,
                key_id=":key",
                period_start_ms=":period",
                reservation_id="'ghost-hold'",
            ),
        ),
        (
            (
                "every charge's reservation exists",
                "team {team} movement unheld line 0 charges reservation ghost-hold, which this "
                "team does not have",
            ),
        ),
    ),
    "reservation settled": Case(
        ("UPDATE reservations SET settled = 4 WHERE id = :hold",),
        (
            (
                "reservations' settled = their charges",
                "team {team} reservation {hold}: settled 4 but its charges sum to 3",
            ),
        ),
    ),
    "reservation state": Case(
        (
            "UPDATE reservations SET closed_ms = :hour WHERE id = :hold",
            "UPDATE reservations SET closed_ms = NULL WHERE id = :released",
            "UPDATE reservations SET closed_ms = expires_ms - 1 WHERE id = :expired",
            "UPDATE reservations SET status = 'lost' WHERE id = :done_hold",
        ),
        tuple(
            ("reservation statuses are known and closed ones have a closing time", detail)
            for detail in (
                "team {team} reservation {hold}: open but closed at {hour}",
                "team {team} reservation {released}: released but never closed "
                "(closed_ms is empty)",
                "team {team} reservation {expired}: expired at {expired_early}, before its "
                "expiry {expired_at}",
                "team {team} reservation {done_hold}: status 'lost' is not one of open, "
                "settled, released, expired",
            )
        ),
    ),
    "reservation amount": Case(
        (
            "UPDATE reservations SET amount = 0 WHERE id = :hold",
            "UPDATE reservations SET expires_ms = created_ms WHERE id = :released",
        ),
        tuple(
            ("reservations hold credits and expire after they are made", detail)
            for detail in (
                "team {team} reservation {hold}: amount 0 is not positive",
                "team {team} reservation {released}: expires at {start}, not after it was made "
                "({start})",
            )
        ),
    ),
    "lease": Case(
        ("UPDATE reservations SET owner = NULL WHERE id = :lease",),
        (
            (
                "credit leases are a gateway process's and pay for no job",
                "team {team} lease {lease}: no gateway process owns it",
            ),
        ),
    ),
    "reservation key": Case(
        (
            "UPDATE reservations SET key_id = :other_key WHERE id = :released",
            "UPDATE reservations SET key_id = 'ghost-key' WHERE id = :expired",
        ),
        tuple(
            ("every reservation's key is its team's", detail)
            for detail in (
                "team {team} reservation {released}: key {other_key} is not a key of this team",
                "team {team} reservation {expired}: key ghost-key is not a key of this team",
            )
        ),
    ),
    "entry key": Case(
        (  # the charge moved to a key that does not exist, its rollup moved along with it
            "UPDATE entries SET key_id = 'ghost-key' WHERE movement_id = :charge",
            "UPDATE usage_by_key SET credits = credits - 12 WHERE team_id = :team"
            " AND key_id = :key AND period_start_ms = :period",
            "INSERT INTO usage_by_key (team_id, period_start_ms, key_id, credits)"
            " VALUES (:team, :period, 'ghost-key', 12)",
            "UPDATE usage_by_key_day SET credits = credits - 12 WHERE team_id = :team"
            " AND key_id = :key AND period_start_ms = :period",
            "INSERT INTO usage_by_key_day"
            " (team_id, period_start_ms, key_id, day_ms, credits, last_ms)"
            " VALUES (:team, :period, 'ghost-key', :period, 12, :period)",
        ),
        (
            (
                "every entry's key is its team's",
                "team {team} movement {charge} line 0: key ghost-key is not a key of this team",
            ),
        ),
    ),
    "job status": Case(
        ("UPDATE jobs SET status = 'paused' WHERE id = :job",),
        (
            (
                "job statuses are known",
                "team {team} job job: status 'paused' is not one of active, cancelling, done",
            ),
        ),
    ),
    "job reservation missing": Case(
        ("UPDATE jobs SET reservation_id = 'ghost-hold' WHERE id = :job",),
        (
            (
                "every job's reservation is its own, and closed once the job is done",
                "team {team} job job: its reservation ghost-hold does not exist in that team",
            ),
        ),
    ),
    "job reservation of another key or job": Case(
        (
            "UPDATE jobs SET key_id = :key2 WHERE id = :job",
            "UPDATE reservations SET job_id = 'job-x' WHERE id = :job2_hold",
        ),
        tuple(
            ("every job's reservation is its own, and closed once the job is done", detail)
            for detail in (
                "team {team} job job: its reservation {job_hold} is key {key}'s, not {key2}'s",
                "team {team} job job2: its reservation {job2_hold} pays for job 'job-x'",
            )
        ),
    ),
    "done job holding": Case(
        ("UPDATE reservations SET status = 'open', closed_ms = NULL WHERE id = :done_hold",),
        (
            (
                "every job's reservation is its own, and closed once the job is done",
                "team {team} job done: done, but its reservation {done_hold} is still open",
            ),
        ),
    ),
    "job hold": Case(
        (
            "UPDATE jobs SET hold_ceiling = NULL WHERE id = :job",
            "UPDATE jobs SET hold_step = 0, hold_ceiling = 0 WHERE id = :job2",
            "UPDATE jobs SET quiet_polls = -1 WHERE id = :done",
        ),
        tuple(
            ("growing holds have a step and a ceiling", detail)
            for detail in (
                "team {team} job done: -1 quiet polls",
                "team {team} job job: hold step 10 and ceiling None: both positive or both empty",
                "team {team} job job2: hold step 0 and ceiling 0: both positive or both empty",
            )
        ),
    ),
    "idempotency record": Case(
        ("UPDATE idempotency SET movement_id = 'ghost' WHERE key = 'charge-1'",),
        (
            (
                "idempotency records name a movement of their team",
                "team {team} idempotency key 'charge-1': movement ghost is neither an entry nor "
                "a reservation of this team",
            ),
        ),
    ),
    "process": Case(
        (
            "UPDATE processes SET pid = 0 WHERE id = 'proc-1'",
            "INSERT INTO processes (id, pid, hostname, started_ms, heartbeat_ms) "
            "VALUES ('proc-2', 7, '', :hour, :hour)",
        ),
        tuple(
            ("gateway processes have a pid and a host", detail)
            for detail in (
                "process proc-1: pid 0, host {hostname!r}",
                "process proc-2: pid 7, host ''",
            )
        ),
    ),
}


CASES["event numbering"] = Case(
    ("UPDATE teams SET event_seq = event_seq + 1 WHERE id = :team",),
    (
        (
            "events are numbered 1 to n per team",
            "team {team}: its last event is numbered 3 but it has 2 events",
        ),
    ),
)
CASES["events missing"] = Case(
    (
        "INSERT INTO alerts_fired (team_id, rule_id, period_start_ms, fired_ms, event_seq) "
        "VALUES (:team, 'default-80', :period, :hour, 9)",
    ),
    (
        (
            "alerts fired and webhook deliveries name an event of their team",
            "team {team} alert default-80: event 9 does not exist",
        ),
    ),
)


def test_every_check_has_a_tampering_case() -> None:
    proved = {check for case in CASES.values() for check, _ in case.differences}
    assert proved == {name for name, _, _ in audit.CHECKS}


def test_a_ledger_with_one_of_everything_verifies(database_url: str, db: Database) -> None:
    build(db)
    code, report = verify_json(database_url)
    assert code == 0, report
    assert report == {
        "success": True,
        "data": {"checks": [name for name, _, _ in audit.CHECKS], "differences": []},
    }


@pytest.mark.corrupts_ledger
@pytest.mark.parametrize("case", list(CASES))
def test_verify_names_the_tampered_row(case: str, database_url: str, db: Database) -> None:
    import socket

    ids = build(db)
    with db.read() as conn:
        expires = conn.execute(
            text("SELECT expires_ms FROM reservations WHERE id = :id"), {"id": ids["expired"]}
        ).scalar_one()
    names = {
        **ids,
        "start": START,
        "later": LATER,
        "expired_at": expires,
        "expired_early": expires - 1,
        "hostname": socket.gethostname()[:255],
    }
    with db.write() as conn:
        for statement in CASES[case].statements:
            conn.execute(text(statement), {**ids, "false": False})
    code, report = verify_json(database_url)
    assert code == 1
    found = sorted((d["check"], d["detail"]) for d in report["differences"])
    expected = sorted((c, d.format(**names)) for c, d in CASES[case].differences)
    assert found == expected
    assert report["error"] == f"{len(expected)} difference(s) found"
