"""A small ledger with known times, for the listing and export tests."""

from __future__ import annotations

from dataclasses import dataclass

from creditgate.domain.instants import parse_iso
from creditgate.services import jobs, keys, ledger, reservations
from creditgate.storage.database import Database
from tests.conftest import Clock
from tests.helpers import team_with_key


@dataclass(frozen=True)
class Acme:
    team: str
    ci: str  # key ids
    web: str
    charges: list[str]  # movement ids, in the order made
    pack: str  # the pack grant's id
    holds: list[str]  # reservation ids: the released one, then the job's (open)


def acme(db: Database, clock: Clock) -> Acme:
    """Team acme (hobby, anchored 2026-08-01): keys ci and web; charges ci 5 at 08-01 01:00,
    web 3 and ci 2 both at 08-02 00:00, ci 7 at 08-03 12:00; a pack of 100 on 08-04; a hold
    of 10 by ci released on 08-04, then a crawl job of web holding 20."""
    team, _secret, ci = team_with_key(db, clock(), anchor="2026-08-01T00:00:00Z", key_name="ci")
    web = keys.create_key(db, team.id, clock(), name="web").key.id
    clock.set("2026-08-04T00:00:00Z")
    made = []
    for key, credits, at, endpoint, target in (
        (ci, 5, "2026-08-01T01:00:00Z", "scrape", "https://example.com/a,b"),
        (web, 3, "2026-08-02T00:00:00Z", "crawl", None),
        (ci, 2, "2026-08-02T00:00:00Z", "scrape", None),
        (ci, 7, "2026-08-03T12:00:00Z", "map", 'say "hi"'),
    ):
        result = ledger.charge(
            db,
            ledger.ChargeRequest(key, credits, parse_iso(at), endpoint=endpoint, target=target),
            clock(),
        )
        made.append(result.id)
    pack = ledger.grant(db, ledger.GrantRequest(team.id, 100, note="invoice, 12"), clock())
    held = ledger.run(
        db, reservations.Reserve(reservations.ReserveRequest(ci, 10, endpoint="scrape"), clock())
    )
    clock.advance(60_000)
    ledger.run(db, reservations.Release(held.id, clock(), None))
    clock.advance(60_000)
    job_hold = ledger.run(
        db,
        reservations.Reserve(
            reservations.ReserveRequest(web, 20, endpoint="crawl", job_id="job-1"), clock()
        ),
    )
    jobs.open_job(
        db,
        jobs.NewJob("job-1", team.id, job_hold.id, web, "crawl", "/v2/crawl/job-1", None),
        clock(),
        1_000,
    )
    return Acme(team.id, ci, web, made, pack.id, [held.id, job_hold.id])
