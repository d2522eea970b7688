"""`creditgate ledger ...` and `creditgate export`: the admin API's listings and exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from creditgate.cli import ledger as ledger_cli
from creditgate.cli import main
from creditgate.storage.database import Database
from tests.cli.test_cli import envelope
from tests.conftest import Clock
from tests.ledger_fixture import Acme, acme

QUERY_NAME = {"--kind": "kind", "--key": "keyId", "--from": "from", "--status": "status"}


@pytest.fixture
def team(db: Database, clock: Clock) -> Acme:
    return acme(db, clock)


def test_each_listing_prints_every_row_as_the_admin_api_does(
    database_url: str, admin: TestClient, team: Acme
) -> None:
    for name, extra in (
        ("grants", ["--kind", "plan"]),
        ("entries", ["--key", team.ci, "--from", "2026-08-02"]),
        ("reservations", ["--status", "released"]),
        ("jobs", []),
        ("entries", []),
    ):
        printed = envelope(database_url, "ledger", name, team.team, *extra)
        pairs = zip(extra[::2], extra[1::2], strict=True)
        query = "&".join(f"{QUERY_NAME[option]}={value}" for option, value in pairs)
        api = admin.get(f"/admin/teams/{team.team}/{name}?limit=1000&{query}").json()
        assert printed == api, (name, extra)
        assert printed["hasMore"] is False


def test_a_listing_prints_one_page_with_limit_and_the_next_with_cursor(
    database_url: str, admin: TestClient, team: Acme
) -> None:
    first = envelope(database_url, "ledger", "entries", team.team, "--limit", "4")
    assert (len(first["data"]), first["hasMore"]) == (4, True)
    rest = envelope(
        database_url, "ledger", "entries", team.team, "--limit", "4", "--cursor", first["cursor"]
    )
    assert (len(rest["data"]), rest["cursor"], rest["hasMore"]) == (2, None, False)
    every = admin.get(f"/admin/teams/{team.team}/entries").json()["data"]
    assert first["data"] + rest["data"] == every
    text = CliRunner().invoke(
        main, ["ledger", "entries", team.team, "--limit", "1", "--database-url", database_url]
    )
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0].split() == [
        "occurredAt", "kind", "credits", "keyName", "endpoint", "movementId", "line"
    ]  # fmt: skip
    assert lines[2].split()[:3] == ["2026-08-01T00:00:00.000Z", "grant", "3000"]
    assert len(lines) == 3
    assert text.stderr.startswith("more: --cursor ")


def test_listing_refusals_name_the_option(database_url: str, team: Acme) -> None:
    for args, status, error in (
        (["--from", "soon"], 400, "from: not an ISO 8601 timestamp: 'soon'"),
        (["--from", "2026-08-03", "--to", "2026-08-02"], 400, "to: must be after from"),
        (["--cursor", "abc"], 400, "Invalid cursor."),
        (["--limit", "0"], 400, "limit must be an integer from 1 to 1000"),
    ):
        refused = envelope(database_url, "ledger", "entries", team.team, *args, ok=False)
        assert (refused["status"], refused["error"]) == (status, error), args
    unknown = envelope(database_url, "ledger", "jobs", "nope", ok=False)
    assert (unknown["status"], unknown["error"]) == (404, "Team nope not found")
    bad_kind = CliRunner().invoke(
        main, ["ledger", "entries", team.team, "--kind", "refund", "--database-url", database_url]
    )
    assert bad_kind.exit_code == 2 and "'refund' is not one of" in bad_kind.stderr


def test_export_writes_the_admin_routes_bytes(
    database_url: str, admin: TestClient, team: Acme, tmp_path: Path
) -> None:
    for args, query in (
        (["--what", "entries"], "what=entries"),
        (["--what", "usage", "--by", "day", "--format", "ndjson"],
         "what=usage&by=day&format=ndjson"),
        (["--what", "entries", "--from", "2026-08-02", "--to", "2026-08-04"],
         "what=entries&from=2026-08-02&to=2026-08-04"),
    ):  # fmt: skip
        api = admin.get(f"/admin/teams/{team.team}/export?{query}").content
        to_stdout = CliRunner().invoke(
            main, ["export", team.team, *args, "--database-url", database_url]
        )
        assert to_stdout.exit_code == 0, to_stdout.output
        assert to_stdout.stdout_bytes == api
        path = tmp_path / "out"
        to_file = CliRunner().invoke(
            main, ["export", team.team, *args, "-o", str(path), "--database-url", database_url]
        )
        assert path.read_bytes() == api
        rows = len(api.splitlines()) - ((b"format" not in query.encode() and 1) or 0)
        assert to_file.stderr.strip().endswith(f"{rows} rows written to {path}")
    told = envelope(database_url, "export", team.team, "--what", "usage", "-o", str(path))
    assert told == {"success": True, "data": {"file": str(path), "rows": 1, "format": "csv"}}
    assert path.read_bytes() == b"periodStart,credits\r\n2026-08-01T00:00:00.000Z,17\r\n"


def test_export_refusals(database_url: str, team: Acme) -> None:
    usage = CliRunner().invoke(
        main, ["export", team.team, "--what", "entries", "--json", "--database-url", database_url]
    )
    assert usage.exit_code == 2
    assert json.loads(usage.stdout)["error"] == (
        "--json needs -o FILE: stdout carries the one JSON object"
    )
    by = envelope(database_url, "export", team.team, "--what", "entries", "--by", "key",
                  "-o", "/dev/null", ok=False)  # fmt: skip
    assert (by["status"], by["error"]) == (400, "by: only for what=usage")
    unknown = envelope(
        database_url, "export", "nope", "--what", "usage", "-o", "/dev/null", ok=False
    )
    assert (unknown["status"], unknown["error"]) == (404, "Team nope not found")


def test_the_progress_bar_shows_on_a_terminal_only(
    database_url: str, team: Acme, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["export", team.team, "--what", "entries", "-o", str(tmp_path / "x"),
            "--database-url", database_url]  # fmt: skip
    quiet = CliRunner().invoke(main, args)
    assert "exporting" not in quiet.stderr
    monkeypatch.setattr(ledger_cli, "stderr_is_a_terminal", lambda: True)
    shown = CliRunner().invoke(main, args)
    assert shown.exit_code == 0
    assert "exporting" in shown.stderr  # click draws the bar itself on a real terminal
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert "exporting" not in as_json.stderr
