"""The upgrade page in the 402 and 429 texts: Firecrawl's, byte for byte as docs/firecrawl-api.md
writes it, unless the operator names their own (CREDITGATE_UPGRADE_URL), refused at start when
clients could not be sent to it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from starlette.testclient import TestClient

from creditgate.cli import main
from creditgate.settings import Settings
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer, team_with_key

SPEC = Path(__file__).parents[2] / "docs" / "firecrawl-api.md"
OURS = "https://billing.acme.example/plans?from=creditgate"
RESETS = "Sat Aug 01 2026 00:01:00 GMT+0000 (Coordinated Universal Time)"


def spec_text(case: str) -> str:
    """The `error` cell of the spec's row for `case` (its table of exact error texts)."""
    for line in SPEC.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if cells and cells[0] == case:
            found = re.fullmatch(r"`([^`]+)`", cells[2])
            assert found is not None, line
            return found[1]
    raise AssertionError(f"no row {case!r} in {SPEC}")


def refusals(client: TestClient, db: Database, clock: Clock) -> tuple[Any, Any]:
    """A 402 (a hold beyond the balance) and a 429 (the account routes' 4th request in a
    minute), as a client gets them."""
    clock.set("2026-08-01T00:00:20Z")
    _, key, _ = team_with_key(db, clock.now)
    admin = bearer(ADMIN_TOKEN)
    broke = client.post("/admin/reservations", headers=admin, json={"key": key, "credits": 3001})
    for _ in range(3):
        assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    limited = client.get("/v1/team/queue-status", headers=bearer(key))
    assert (broke.status_code, limited.status_code) == (402, 429)
    return broke.json()["error"], limited.json()["error"]


def test_by_default_the_texts_are_firecrawls_byte_for_byte(
    ctx: AppContext, client: TestClient, db: Database, clock: Clock
) -> None:
    ctx.account_rpm = 3
    insufficient, limited = refusals(client, db, clock)
    assert insufficient == spec_text("not enough credits for the request")
    assert limited == spec_text("rate limited").format(c=3, r=0, s=40, date=RESETS)
    assert "https://firecrawl.dev/pricing" in insufficient  # the spec's own, not a copy of ours


def test_with_the_setting_the_texts_send_clients_to_the_operators_page(
    ctx: AppContext, client: TestClient, db: Database, clock: Clock
) -> None:
    ctx.account_rpm = 3
    ctx.upgrade_url = OURS
    insufficient, limited = refusals(client, db, clock)
    firecrawls = "https://firecrawl.dev/pricing"
    assert insufficient == spec_text("not enough credits for the request").replace(firecrawls, OURS)
    assert limited == spec_text("rate limited").replace(firecrawls, OURS).format(
        c=3, r=0, s=40, date=RESETS
    )


def test_serve_hands_the_setting_to_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from creditgate.app.serve import app_from_env

    seen: list[str | None] = []

    def run(*_args: Any, **_kwargs: Any) -> None:  # what each worker process would build
        app = app_from_env()
        seen.append(app.state.ctx.upgrade_url)
        app.state.ctx.db.dispose()

    monkeypatch.setattr(uvicorn, "run", run)
    done = CliRunner().invoke(
        main,
        ["serve", "--database-url", f"sqlite:///{tmp_path}/creditgate.db"],
        env={"CREDITGATE_UPGRADE_URL": OURS, "CREDITGATE_DATABASE_URL": None},
    )
    assert (done.exit_code, seen) == (0, [OURS]), done.output


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://acme.example/plans", "must be an absolute http:// or https:// URL"),
        ("/plans", "must be an absolute http:// or https:// URL"),
        ("javascript:alert(1)", "must be an absolute http:// or https:// URL"),
        ("https://", "must be an absolute http:// or https:// URL"),
        ("https://acme.example/our plans", "must not contain spaces or control characters"),
        ("https://acme.example/\nX-Injected: 1", "must not contain spaces or control characters"),
        ("https://acme.example:99999/", "not a URL (Port out of range 0-65535)"),
        ("https://acme.example/" + "p" * 2048, "at most 2048 characters"),
    ],
)
def test_a_bad_url_is_refused_at_start_with_the_reason(
    url: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bool] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_k: started.append(True))
    database = tmp_path / "creditgate.db"
    refused = CliRunner().invoke(
        main,
        ["serve", "--database-url", f"sqlite:///{database}"],
        env={"CREDITGATE_UPGRADE_URL": url, "CREDITGATE_DATABASE_URL": None},
    )
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[-1].startswith(
        f"Error: CREDITGATE_UPGRADE_URL: Value error, {reason}"
    ), refused.stderr
    assert (started, database.exists()) == ([], False)  # refused before anything else
    with pytest.raises(ValueError, match=re.escape(reason)):  # and by a worker's own start
        Settings(upgrade_url=url)
