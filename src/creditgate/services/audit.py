"""`creditgate verify`: entries, balances and rollups must agree (ledger promise 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditgate.storage import audit
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
)


def verify(db: Database) -> Report:
    report = Report()
    with db.read() as conn:
        for name, query, template in CHECKS:
            report.checks.append(name)
            for row in query(conn):
                report.differences.append(Difference(name, template.format(*row)))
    return report
