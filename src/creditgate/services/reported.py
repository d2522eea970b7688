"""Charging what unknown upstream routes report, when the report is a running total.

A GET that creditgate does not know (a status of some newer job type, say) may report
`creditsUsed` as the total so far of the resource it reads. Charging that figure on every read
would charge the same work again and again; charging its increase per (team, path) charges
each credit once. Nothing was held before the read, so no more than the team has free is
charged (no overdraft), and a key's cap is not applied to work already done; what does not
fit is recorded as reported but is not charged.
"""

from __future__ import annotations

from dataclasses import dataclass

from creditgate.domain.instants import Instant
from creditgate.services.book import Details, TeamBook
from creditgate.storage import reported
from creditgate.storage.database import Database


@dataclass(frozen=True, slots=True)
class ReportedCharge:
    charged: int
    uncharged: int  # reported but not free to charge


def charge_reported_total(
    db: Database, key_id: str, team_id: str, path: str, total: int, now: Instant
) -> ReportedCharge:
    with db.write() as conn:
        book = TeamBook.open(conn, team_id, now)
        before = reported.charged_total(conn, team_id, path)
        increase = total - before
        if increase <= 0:
            return ReportedCharge(0, 0)
        charged = min(increase, max(book.available_now(), 0))
        if charged:
            book.charge(book.key(key_id), charged, now, Details(target=path), check_cap=False)
            book.flush()
        reported.record_total(conn, team_id, path, total, now)
        return ReportedCharge(charged, increase - charged)
